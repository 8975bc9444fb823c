-- +goose Up
-- Generations record the clean-image renormalisation they were sampled with. Earlier rows get 0, the
-- default before this column (a request could have named another value; that was not recorded).
ALTER TABLE generations ADD COLUMN clean_renorm double precision NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE generations DROP COLUMN clean_renorm;
