-- +goose Up
-- Propagated caches (classify.Propagate): every sample is a key, its solved_values the label
-- distribution propagated over the pool's neighbourhood graph.
ALTER TABLE cache_models DROP CONSTRAINT cache_models_values_kind_check;
ALTER TABLE cache_models ADD CONSTRAINT cache_models_values_kind_check CHECK (values_kind IN ('labels', 'solved', 'propagated'));

-- +goose Down
DELETE FROM cache_models WHERE values_kind = 'propagated';
ALTER TABLE cache_models DROP CONSTRAINT cache_models_values_kind_check;
ALTER TABLE cache_models ADD CONSTRAINT cache_models_values_kind_check CHECK (values_kind IN ('labels', 'solved'));
