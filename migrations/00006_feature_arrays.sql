-- +goose Up
-- Full features move from pgvector's vector (at most 16,000 values) to real[]: they are only read back for
-- exact scoring, never indexed (the HNSW index is on cache_entries.key), and finer layouts (a block's every
-- token: 64 × 256 = 16,384 values) need more room.
ALTER TABLE collection_samples ALTER COLUMN features TYPE real[] USING features::real[];
ALTER TABLE cache_entries ALTER COLUMN features TYPE real[] USING features::real[];

-- +goose Down
-- (Fails while any stored feature is longer than 16,000 values: rebuild those collections with a coarser grid first.)
ALTER TABLE cache_entries ALTER COLUMN features TYPE vector USING features::vector;
ALTER TABLE collection_samples ALTER COLUMN features TYPE vector USING features::vector;
