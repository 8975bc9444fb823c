-- +goose Up
-- The job building a subject's cache (its latest build), for clients to follow.
ALTER TABLE subjects ADD COLUMN job_id bigint;
-- A job's result is answered as the worker wrote it: json keeps its text, jsonb would reorder its keys.
ALTER TABLE jobs ALTER COLUMN result TYPE json USING result::json;

-- +goose Down
ALTER TABLE jobs ALTER COLUMN result TYPE jsonb USING result::jsonb;
ALTER TABLE subjects DROP COLUMN job_id;
