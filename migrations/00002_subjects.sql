-- +goose Up
-- Subjects: a named set of reference images, their DreamCache feature cache in S3 and pooled features.
-- A subject is 'ready' only once its cache object is durable; 'pending' while it is being built; 'failed'
-- (with a reason) when building stopped, retryable from its stored originals.
CREATE TABLE subjects (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL,
    class        text,
    status       text NOT NULL CHECK (status IN ('pending', 'ready', 'failed')),
    error        text,
    ref_count    int NOT NULL CHECK (ref_count BETWEEN 1 AND 64),
    model_id     text,
    blocks       int[],
    t_ref        double precision,
    cache_key    text,
    cache_sha256 text,
    cache_bytes  bigint,
    -- Mean of the references' pooled features, L2-normalised (Features.Pooled over every cached block).
    pooled       vector,
    dims         int GENERATED ALWAYS AS (vector_dims(pooled)) STORED,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (status <> 'ready' OR (cache_key IS NOT NULL AND pooled IS NOT NULL AND model_id IS NOT NULL))
);
CREATE INDEX subjects_created_idx ON subjects (created_at DESC, id DESC);
-- HNSW needs a fixed dimension: the default model pools 6 blocks × 256 = 1536 values. Subjects of other
-- models (other dimensions) are searched exactly.
CREATE INDEX subjects_pooled_1536_idx ON subjects
    USING hnsw ((pooled::vector(1536)) vector_cosine_ops) WITH (m = 16, ef_construction = 64)
    WHERE dims = 1536;

CREATE TABLE subject_refs (
    subject_id   uuid NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
    n            int NOT NULL,
    object_key   text NOT NULL,
    sha256       text NOT NULL,
    bytes        bigint NOT NULL,
    width        int NOT NULL,
    height       int NOT NULL,
    format       text NOT NULL, -- the uploaded format (png or jpeg); the stored original is PNG
    pooled       vector,        -- this reference's pooled features, set with the cache
    PRIMARY KEY (subject_id, n)
);

-- Generations whose images were stored in S3 (inline answers are not recorded).
CREATE TABLE generations (
    id          uuid PRIMARY KEY,
    batch_id    uuid NOT NULL,
    idx         int NOT NULL,
    subject_id  uuid REFERENCES subjects (id) ON DELETE SET NULL,
    prompt      text NOT NULL,
    seed        bigint NOT NULL,
    steps       int NOT NULL,
    guidance    double precision NOT NULL,
    cache       jsonb NOT NULL,
    object_key  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX generations_batch_idx ON generations (batch_id, idx);
CREATE INDEX generations_subject_idx ON generations (subject_id);

-- +goose Down
DROP TABLE generations;
DROP TABLE subject_refs;
DROP TABLE subjects;
