-- +goose Up
-- Keys of whitened models (at most 128 values) get their own indexed column: searching them zero-padded
-- to 1,536 values cost 12× the distance work (40 ms a query over a 10,000-entry propagated cache).
-- Each entry holds exactly one of the two keys.
ALTER TABLE cache_entries ALTER COLUMN key DROP NOT NULL;
ALTER TABLE cache_entries ADD COLUMN small_key vector(128);
UPDATE cache_entries
SET small_key = (features || array_fill(0::real, ARRAY[128 - array_length(features, 1)]))::vector(128), key = NULL
WHERE array_length(features, 1) <= 128;
ALTER TABLE cache_entries ADD CONSTRAINT cache_entries_one_key CHECK ((key IS NULL) <> (small_key IS NULL));
CREATE INDEX cache_entries_small_key ON cache_entries USING hnsw (small_key vector_cosine_ops);

-- +goose Down
DROP INDEX cache_entries_small_key;
ALTER TABLE cache_entries DROP CONSTRAINT cache_entries_one_key;
UPDATE cache_entries
SET key = (features || array_fill(0::real, ARRAY[1536 - array_length(features, 1)]))::vector(1536)
WHERE key IS NULL;
ALTER TABLE cache_entries DROP COLUMN small_key;
ALTER TABLE cache_entries ALTER COLUMN key SET NOT NULL;
