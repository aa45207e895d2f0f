-- Canonical model, ingest registry and roles.
-- Runs as the database owner (local: postgres; AWS: the RDS master user).

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE SCHEMA IF NOT EXISTS canonical;
CREATE SCHEMA IF NOT EXISTS ingest;

-- Roles are created NOLOGIN: the environment decides how they log in (local bootstrap sets a
-- password; on AWS the passwords come from Secrets Manager).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pipeline_writer') THEN
        CREATE ROLE pipeline_writer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pipeline_reader') THEN
        CREATE ROLE pipeline_reader NOLOGIN;
    END IF;
END
$$;

CREATE TABLE canonical.entities (
    entity_id      uuid PRIMARY KEY DEFAULT uuidv7(),
    entity_type    text NOT NULL CHECK (entity_type IN ('large_enterprise', 'medium_business', 'small_business')),
    source_system  text NOT NULL CHECK (source_system IN ('crm', 'erp', 'legacy')),
    canonical_id   text NOT NULL UNIQUE,
    -- The canonical keys are also in attributes; these copies are what analytics group, sum and
    -- fuzzy-match on without unpacking jsonb for every row.
    name           text NOT NULL,
    industry       text,
    revenue        numeric,
    employees      bigint,
    attributes     jsonb NOT NULL,
    -- md5 of the attributes as mapped: the merge compares 16 bytes instead of two jsonb values.
    attributes_hash bytea NOT NULL,
    metadata       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    version        integer NOT NULL DEFAULT 1,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'deleted'))
);
CREATE INDEX entities_source_system_idx ON canonical.entities (source_system);
CREATE INDEX entities_entity_type_idx ON canonical.entities (entity_type);
CREATE INDEX entities_industry_idx ON canonical.entities (industry);
-- No GIN on attributes: no catalogue operation filters by containment (they group and aggregate
-- over typed columns or a few attributes, which scans anyway), and measured at 200k records it was
-- the dearest index of all: first load 12.9k records/s with it (jsonb_path_ops; 10.8k with the
-- default jsonb_ops), 19.7k without (bench/results.md). A deployment whose users run containment
-- queries can add `CREATE INDEX … USING gin (attributes jsonb_path_ops)` in a migration of its own.
-- Fuzzy matching across systems (pg_trgm similarity / % operator).
CREATE INDEX entities_name_trgm ON canonical.entities USING gin (name gin_trgm_ops);

CREATE TABLE canonical.entity_history (
    history_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entity_id      uuid NOT NULL REFERENCES canonical.entities (entity_id) ON DELETE CASCADE,
    canonical_id   text NOT NULL,
    version        integer NOT NULL,
    entity_type    text NOT NULL,
    attributes     jsonb NOT NULL,
    metadata       jsonb NOT NULL,
    valid_from     timestamptz NOT NULL,
    valid_to       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (entity_id, version)
);

CREATE TABLE canonical.entity_relationships (
    relationship_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Canonical ids, not uuids: a child may arrive before its parent.
    parent_canonical_id  text NOT NULL,
    child_canonical_id   text NOT NULL,
    relationship_type    text NOT NULL,
    properties           jsonb NOT NULL DEFAULT '{}'::jsonb,
    effective_from       timestamptz NOT NULL DEFAULT now(),
    effective_to         timestamptz,
    CHECK (parent_canonical_id <> child_canonical_id)
);
-- One current parent per child and relationship type; history kept by closing effective_to.
CREATE UNIQUE INDEX entity_relationships_current_uq
    ON canonical.entity_relationships (child_canonical_id, relationship_type) WHERE effective_to IS NULL;
CREATE INDEX entity_relationships_parent_idx
    ON canonical.entity_relationships (parent_canonical_id) WHERE effective_to IS NULL;

CREATE TABLE canonical.time_series_data (
    entity_canonical_id  text NOT NULL,
    metric_type          text NOT NULL,
    observed_at          timestamptz NOT NULL,
    value                numeric NOT NULL,
    source_key           text,
    loaded_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (entity_canonical_id, metric_type, observed_at)
) PARTITION BY RANGE (observed_at);
CREATE TABLE canonical.time_series_data_default PARTITION OF canonical.time_series_data DEFAULT;
CREATE INDEX time_series_metric_time_idx ON canonical.time_series_data (metric_type, observed_at);

-- Monthly partitions on demand. SECURITY DEFINER so the writer can add partitions without owning
-- the table; the advisory lock serialises concurrent ingest runs that see the same new month.
CREATE FUNCTION canonical.ensure_time_series_partitions(months date[])
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, canonical
-- Month boundaries in UTC whatever the caller's session time zone (the loader computes UTC months).
SET TimeZone = 'UTC'
AS $$
DECLARE
    m date;
    created integer := 0;
    part text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('canonical.time_series_data partitions'));
    FOREACH m IN ARRAY months LOOP
        m := date_trunc('month', m)::date;
        part := format('time_series_data_%s', to_char(m, 'YYYY_MM'));
        IF to_regclass(format('canonical.%I', part)) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE canonical.%I PARTITION OF canonical.time_series_data FOR VALUES FROM (%L) TO (%L)',
                part, m::timestamptz, (m + interval '1 month')::timestamptz);
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END
$$;
REVOKE ALL ON FUNCTION canonical.ensure_time_series_partitions(date[]) FROM PUBLIC;

-- What arrived in the raw bucket and what became of it: the registry of files (a Dagster dynamic
-- partition per file would not scale past ~100k files).
CREATE TABLE ingest.files (
    file_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    s3_key         text NOT NULL,
    etag           text NOT NULL,
    size_bytes     bigint NOT NULL DEFAULT 0,
    last_modified  timestamptz,
    source_system  text,
    status         text NOT NULL CHECK (status IN ('pending', 'queued', 'loading', 'loaded', 'failed', 'skipped')),
    reason         text,
    discovered_via text NOT NULL DEFAULT 'listing',
    attempt        integer NOT NULL DEFAULT 1,
    -- Runs launched for this attempt: a file whose runs keep dying before reaching it is failed, not retried forever.
    launches       integer NOT NULL DEFAULT 0,
    batch_id       text,
    run_id         text,
    received       integer,
    inserted       integer,
    updated        integer,
    unchanged      integer,
    rejected       integer,
    duplicates     integer,
    relationships  integer,
    time_series    integer,
    seconds        double precision,
    discovered_at  timestamptz NOT NULL DEFAULT now(),
    queued_at      timestamptz,
    started_at     timestamptz,
    finished_at    timestamptz,
    UNIQUE (s3_key, etag)
);
CREATE INDEX files_open_status_idx ON ingest.files (status, file_id)
    WHERE status IN ('pending', 'queued', 'loading');
CREATE INDEX files_discovered_idx ON ingest.files (discovered_at);

CREATE TABLE ingest.rejected_records (
    rejected_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file_id        bigint NOT NULL REFERENCES ingest.files (file_id) ON DELETE CASCADE,
    attempt        integer NOT NULL,
    record_index   integer NOT NULL,
    source_id      text,
    reasons        jsonb NOT NULL,
    -- JSON text with non-ASCII escaped: always storable, even when the record holds NUL characters
    -- or lone surrogates that jsonb refuses.
    record         text NOT NULL,
    rejected_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rejected_records_file_idx ON ingest.rejected_records (file_id, attempt);

-- Bumped by every ingest that changed canonical rows; the API's cache keys include it.
CREATE TABLE ingest.data_version (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version    bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO ingest.data_version (version) VALUES (0);

-- Grants. The writer loads; the reader sees canonical.* and nothing else.
GRANT USAGE ON SCHEMA canonical, ingest TO pipeline_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA canonical, ingest TO pipeline_writer;
GRANT EXECUTE ON FUNCTION canonical.ensure_time_series_partitions(date[]) TO pipeline_writer;
ALTER DEFAULT PRIVILEGES IN SCHEMA canonical, ingest
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO pipeline_writer;

GRANT USAGE ON SCHEMA canonical TO pipeline_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA canonical TO pipeline_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA canonical GRANT SELECT ON TABLES TO pipeline_reader;
ALTER ROLE pipeline_reader SET default_transaction_read_only = on;
ALTER ROLE pipeline_reader SET statement_timeout = '30s';
ALTER ROLE pipeline_reader SET lock_timeout = '2s';
ALTER ROLE pipeline_reader SET search_path = canonical;
