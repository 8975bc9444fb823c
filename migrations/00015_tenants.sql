-- +goose Up
-- API keys: only a SHA-256 of each key is kept; the key itself is shown once, at creation.
CREATE TABLE api_keys (
    id         uuid PRIMARY KEY,
    tenant     text NOT NULL CHECK (tenant ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name       text NOT NULL DEFAULT '',
    prefix     text NOT NULL,
    sha256     text NOT NULL UNIQUE,
    admin      boolean NOT NULL DEFAULT false,
    limits     jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant);

-- Every row belongs to a tenant. The server sets cachet.tenant (and cachet.admin for admin keys and its
-- own background work) on each connection it hands out; a row written without naming a tenant takes the
-- connection's, or "default" on a connection that never set one (psql, migrations).
CREATE FUNCTION cachet_tenant() RETURNS text LANGUAGE sql STABLE AS
    $$ SELECT coalesce(nullif(current_setting('cachet.tenant', true), ''), 'default') $$;
-- A connection sees a row when it is the row's tenant's, when it is admin, or when it never set a tenant
-- (an operator's psql, the migrations): the server always sets one.
CREATE FUNCTION cachet_visible(row_tenant text) RETURNS boolean LANGUAGE sql STABLE AS
    $$ SELECT current_setting('cachet.tenant', true) IS NULL
              OR current_setting('cachet.admin', true) = 'on'
              OR row_tenant = current_setting('cachet.tenant', true) $$;

-- +goose StatementBegin
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['subjects', 'subject_refs', 'generations', 'collections', 'collection_samples',
                             'cache_models', 'cache_entries', 'jobs'] LOOP
        EXECUTE format('ALTER TABLE %I ADD COLUMN tenant text NOT NULL DEFAULT cachet_tenant()', t);
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_rows ON %I USING (cachet_visible(tenant)) WITH CHECK (cachet_visible(tenant))', t);
        EXECUTE format('CREATE INDEX %I ON %I (tenant)', t || '_tenant_idx', t);
    END LOOP;
END $$;
-- +goose StatementEnd

-- Superusers and owners skip row-level security (FORCE covers owners, nothing covers superusers), so a
-- connection working for a tenant switches to this role, which has the table rights and no way around the
-- policies. Roles are the cluster's: another database may have made it already.
-- +goose StatementBegin
DO $$ BEGIN
    CREATE ROLE cachet_scoped NOLOGIN NOSUPERUSER NOBYPASSRLS;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
-- +goose StatementEnd
GRANT cachet_scoped TO CURRENT_USER;
GRANT USAGE ON SCHEMA public TO cachet_scoped;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO cachet_scoped;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO cachet_scoped;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO cachet_scoped;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO cachet_scoped;

-- Names and idempotency keys are unique per tenant, not across them.
ALTER TABLE collections DROP CONSTRAINT collections_name_key;
ALTER TABLE collections ADD CONSTRAINT collections_tenant_name_key UNIQUE (tenant, name);
ALTER TABLE jobs DROP CONSTRAINT jobs_idempotency_key_key;
ALTER TABLE jobs ADD CONSTRAINT jobs_tenant_idempotency_key_key UNIQUE (tenant, idempotency_key);

-- +goose Down
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM cachet_scoped;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM cachet_scoped;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM cachet_scoped;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM cachet_scoped;
REVOKE USAGE ON SCHEMA public FROM cachet_scoped;
ALTER TABLE jobs DROP CONSTRAINT jobs_tenant_idempotency_key_key;
ALTER TABLE jobs ADD CONSTRAINT jobs_idempotency_key_key UNIQUE (idempotency_key);
ALTER TABLE collections DROP CONSTRAINT collections_tenant_name_key;
ALTER TABLE collections ADD CONSTRAINT collections_name_key UNIQUE (name);
-- +goose StatementBegin
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['subjects', 'subject_refs', 'generations', 'collections', 'collection_samples',
                             'cache_models', 'cache_entries', 'jobs'] LOOP
        EXECUTE format('DROP POLICY tenant_rows ON %I', t);
        EXECUTE format('ALTER TABLE %I NO FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I DISABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I DROP COLUMN tenant', t);
    END LOOP;
END $$;
-- +goose StatementEnd
DROP FUNCTION cachet_visible(text);
DROP FUNCTION cachet_tenant();
DROP TABLE api_keys;
