-- +goose Up
-- The built-in zero-shot head's whitened space (classify.FitWhitening over the model's own prototype
-- samples), kept like the prototypes: once per feature layout, sampling settings, rank and power.
CREATE TABLE zero_shot_whitening (
    feature_key text NOT NULL,
    head_key    text NOT NULL,
    rank        integer NOT NULL,
    power       double precision NOT NULL,
    mean        real[] NOT NULL,
    basis       real[] NOT NULL,  -- rank × features, row by row
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (feature_key, head_key, rank, power)
);

-- +goose Down
DROP TABLE zero_shot_whitening;
