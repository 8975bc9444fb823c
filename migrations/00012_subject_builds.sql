-- +goose Up
-- Adapters may read up to six views of each reference (the image and its small renders at every position),
-- so a subject's cache may hold that many.
ALTER TABLE subjects DROP CONSTRAINT subjects_views_check;
ALTER TABLE subjects ADD CONSTRAINT subjects_views_check CHECK (views BETWEEN 1 AND 6);
-- Each build of a subject's cache (the first one and every retry) has its own id: only the build that owns
-- the row may mark it ready or failed, and it refreshes updated_at while it runs, so a retry takes over a
-- pending subject only when its build stopped.
ALTER TABLE subjects ADD COLUMN build_id uuid;
CREATE INDEX subjects_pending_idx ON subjects (updated_at) WHERE status = 'pending';

-- +goose Down
DROP INDEX subjects_pending_idx;
ALTER TABLE subjects DROP COLUMN build_id;
ALTER TABLE subjects DROP CONSTRAINT subjects_views_check;
ALTER TABLE subjects ADD CONSTRAINT subjects_views_check CHECK (views BETWEEN 1 AND 2);
