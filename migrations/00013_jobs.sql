-- +goose Up
-- Model work runs as River jobs (river_job, created by River's own migrations, which run first). This table
-- is Cachet's view of each job: its progress, the result or error a client reads, and the idempotency key
-- its POST carried. Rows go with their River job when River's cleaner removes it.
CREATE TABLE jobs (
    id              bigint PRIMARY KEY REFERENCES river_job (id) ON DELETE CASCADE,
    kind            text NOT NULL,
    -- queued until a worker starts it; running; then succeeded, failed or canceled (written by the worker
    -- or, for a job canceled before it ran, derived from River's row).
    state           text NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
    step            int NOT NULL DEFAULT 0,
    steps           int NOT NULL DEFAULT 0,
    -- What the job makes or changes, as an API path (a subject, a collection); empty for generations.
    target          text NOT NULL DEFAULT '',
    idempotency_key text UNIQUE,
    request_sha256  text,
    result          jsonb,
    error_code      text,
    error_message   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_created_idx ON jobs (created_at);

-- +goose Down
DROP TABLE jobs;
