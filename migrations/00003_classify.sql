-- +goose Up
-- Classification: collections of samples, their built cache models (TFUP / Tip-Adapter) and the zero-shot
-- class prototypes each model version samples once.

CREATE TABLE collections (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    labels       text[] NOT NULL CHECK (cardinality(labels) >= 2),
    alpha        double precision NOT NULL DEFAULT 0.3,
    beta         double precision NOT NULL DEFAULT 1,
    -- The cache model readers use. A rebuild writes a complete new model and moves this pointer in the
    -- same transaction, so a reader sees the old model or the new one, never a part of either.
    active_model bigint,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE collection_samples (
    id            bigserial PRIMARY KEY,
    collection_id uuid NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    label         int,              -- index into the collection's labels; NULL: unlabelled
    pixels        bytea NOT NULL,   -- the 32×32 grayscale canvas the model sees
    feature_key   text NOT NULL,    -- model id, blocks and t_ref of features
    features      vector NOT NULL,  -- pooled, L2-normalised; recomputed when the feature key changes
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX collection_samples_collection ON collection_samples (collection_id, id);

CREATE TABLE cache_models (
    id            bigserial PRIMARY KEY,
    collection_id uuid NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    feature_key   text NOT NULL,
    method        text NOT NULL CHECK (method IN ('tfup', 'tip-adapter')),
    labels        text[] NOT NULL,
    alpha         double precision NOT NULL,
    beta          double precision NOT NULL,
    head          real[] NOT NULL,  -- zero-shot head W, labels × dims, row-major
    center        real[],           -- subtracted from features before normalising (NULL: none)
    dims          int NOT NULL,
    samples       int NOT NULL,     -- samples the build saw
    per_class     int NOT NULL,     -- TFUP's K (Tip-Adapter: the most labelled samples of a class)
    entries       int NOT NULL,
    build_seconds double precision NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cache_models_collection ON cache_models (collection_id);
ALTER TABLE collections ADD CONSTRAINT collections_active_model
    FOREIGN KEY (active_model) REFERENCES cache_models (id) ON DELETE SET NULL;

-- features is the entry's full feature (scoring is exact on it). key is what the HNSW index searches:
-- the feature zero-padded to 1536 values when it fits (padding changes no cosine), else a fixed
-- count-sketch of it (an unbiased inner-product sketch); one fixed dimension lets one index serve every
-- feature layout, and HNSW indexes at most 2000 dimensions.
CREATE TABLE cache_entries (
    model_id  bigint NOT NULL REFERENCES cache_models (id) ON DELETE CASCADE,
    idx       int NOT NULL,
    sample_id bigint,                 -- the sample it came from (kept as a number: samples may go)
    label     int NOT NULL,           -- (pseudo-)label, an index into the model's labels
    probs     real[],                 -- TFUP: the sample's zero-shot distribution
    features  vector NOT NULL,
    key       vector(1536) NOT NULL,
    PRIMARY KEY (model_id, idx)
);
CREATE INDEX cache_entries_key ON cache_entries USING hnsw (key vector_cosine_ops);

CREATE TABLE zero_shot_prototypes (
    feature_key text NOT NULL,
    head_key    text NOT NULL,  -- sampling settings: images per label, steps, guidance, seed
    label       text NOT NULL,
    prompt      text NOT NULL,
    prototype   real[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (feature_key, head_key, label)
);

-- +goose Down
DROP TABLE zero_shot_prototypes;
ALTER TABLE collections DROP CONSTRAINT collections_active_model;
DROP TABLE cache_entries;
DROP TABLE cache_models;
DROP TABLE collection_samples;
DROP TABLE collections;
