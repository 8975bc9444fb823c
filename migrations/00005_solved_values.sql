-- +goose Up
-- Tip-Adapter caches may solve their values (classify.ValuesSolved): the model records the kind and the
-- ridge it was solved with, each entry its value vector over the labels (NULL: the one-hot of its label).
ALTER TABLE cache_models ADD COLUMN values_kind text NOT NULL DEFAULT 'labels' CHECK (values_kind IN ('labels', 'solved'));
ALTER TABLE cache_models ADD COLUMN ridge_lambda double precision;
ALTER TABLE cache_entries ADD COLUMN solved_values real[];

-- +goose Down
ALTER TABLE cache_entries DROP COLUMN solved_values;
ALTER TABLE cache_models DROP COLUMN ridge_lambda;
ALTER TABLE cache_models DROP COLUMN values_kind;
