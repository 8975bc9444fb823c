-- +goose Up
-- How many views of each reference a subject's cache holds (featurecache's Views: 1, the image as uploaded;
-- 2, also its small centred render). Caches built before this column hold one view.
ALTER TABLE subjects ADD COLUMN views int NOT NULL DEFAULT 1 CHECK (views BETWEEN 1 AND 2);

-- +goose Down
ALTER TABLE subjects DROP COLUMN views;
