-- +goose Up
-- pgvector: the feature store for subjects, collection caches and classification keys.
CREATE EXTENSION IF NOT EXISTS vector;

-- +goose Down
DROP EXTENSION IF EXISTS vector;
