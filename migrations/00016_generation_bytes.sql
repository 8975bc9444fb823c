-- +goose Up
-- A stored image's size, for a tenant's stored-bytes quota (rows from before count 0).
ALTER TABLE generations ADD COLUMN bytes bigint NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE generations DROP COLUMN bytes;
