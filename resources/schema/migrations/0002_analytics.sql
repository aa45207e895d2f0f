-- Analytics: the read-only role hardened for caller-written queries (custom_complex_query).
-- Runs as the database owner (local: postgres; AWS: the RDS master user).
--
-- The role already has (0001): SELECT on canonical.* only, default_transaction_read_only, statement_timeout,
-- lock_timeout, search_path. Here:

-- 1. No temporary objects. TEMP is granted to PUBLIC on every database by default; the read-only role
--    must not create temporary tables (a place to stage data, and disk use outside canonical.*).
--    The writer keeps it: ingest stages each file in temporary tables.
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO pipeline_writer', current_database());
END
$$;

-- 2. No server roles: pg_read_server_files, pg_signal_backend, pg_read_all_data, ... each would widen
--    what a caller's query can reach. Revoke any that was granted by hand.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT g.rolname FROM pg_auth_members m
        JOIN pg_roles g ON g.oid = m.roleid
        JOIN pg_roles u ON u.oid = m.member
        WHERE u.rolname = 'pipeline_reader' AND (g.rolname LIKE 'pg\_%' OR g.rolname LIKE 'rds\_%')
    LOOP
        EXECUTE format('REVOKE %I FROM pipeline_reader', r.rolname);
    END LOOP;
END
$$;

-- 3. Nothing to create anywhere: PostgreSQL 15+ no longer grants CREATE on schema public to PUBLIC;
--    say so explicitly for clusters upgraded from older versions.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- 4. Role-level limits: whatever a session forgets to set, these hold. The runner sets a shorter
--    statement_timeout per call with SET LOCAL.
ALTER ROLE pipeline_reader SET statement_timeout = '30s';
ALTER ROLE pipeline_reader SET lock_timeout = '2s';
ALTER ROLE pipeline_reader SET idle_in_transaction_session_timeout = '60s';
ALTER ROLE pipeline_reader SET search_path = canonical;
ALTER ROLE pipeline_reader SET default_transaction_read_only = on;
-- Bounded sorts and hashes per query node (the analytics runner raises it per operation with SET LOCAL).
ALTER ROLE pipeline_reader SET work_mem = '16MB';
-- Temporary files a reader's query may write (huge sorts, hash joins): only a superuser may set this
-- one, which the RDS master user is not; skip it there.
DO $$
BEGIN
    ALTER ROLE pipeline_reader SET temp_file_limit = '2GB';
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'temp_file_limit for pipeline_reader not set: needs a superuser';
END
$$;

-- 5. Indexes: none added here. What 0001 has serves the operations (bench/analytics_results.md):
--    - relationship_network: entity_relationships_parent_idx (current links by parent) and the unique
--      canonical_id index;
--    - time_series_patterns: time_series_metric_time_idx (metric_type, observed_at);
--    - data_integrity_analysis: entities_name_trgm (GIN, the % operator) — one lookup per probe. A GiST
--      trigram index for KNN (`ORDER BY name <-> x LIMIT k`) is slower per lookup than the GIN % lookup,
--      so it would cost ingest for nothing (bench/schema_measurements.md);
--    - the segment operations read every entity once (the median and the top-n ranking avoid sorting
--      every row); one covering index per whitelisted combination would tax every ingest (0007 adds one
--      for all of them instead).
