-- Analytics projection of canonical.entities: every segment dimension and metric the catalogue offers
-- (resources/analytics/params.py GROUP_BY_SQL / METRIC_SQL) as a plain column, and all of them in the
-- canonical_id index, so customer_analysis, revenue_analysis, count_analysis and simple_demo read a
-- narrow index (index-only scan, parallel) instead of the heap with its wide jsonb attributes.
--
-- Why: scanning the heap costs CPU before any column is read, reaching the columns after `attributes`
-- costs more, and every jsonb extraction (a metric appears in six aggregates) more again; the covering
-- index makes the same pass a fraction of that (bench/schema_measurements.md).
--
-- Stored, not virtual: PostgreSQL 18 cannot index a virtual generated column. Computed on every write
-- of a row from values the row already holds (no detoasting: attributes are stored inline), so ingest
-- pays a few jsonb key lookups per changed entity.

-- The expressions are the ones the operations used on the jsonb (and their NULL rules): only JSON
-- numbers count as a metric value, a source that wrote "n/a" gives NULL.
ALTER TABLE canonical.entities
    ADD COLUMN region text
        GENERATED ALWAYS AS (attributes ->> 'region') STORED,
    ADD COLUMN country text
        GENERATED ALWAYS AS (attributes ->> 'country') STORED,
    ADD COLUMN lifetime_value numeric
        GENERATED ALWAYS AS (CASE WHEN jsonb_typeof(attributes -> 'lifetime_value') = 'number'
                                  THEN (attributes ->> 'lifetime_value')::numeric END) STORED,
    ADD COLUMN total_spent numeric
        GENERATED ALWAYS AS (CASE WHEN jsonb_typeof(attributes -> 'total_spent') = 'number'
                                  THEN (attributes ->> 'total_spent')::numeric END) STORED,
    ADD COLUMN revenue_per_employee numeric
        GENERATED ALWAYS AS (round(revenue / NULLIF(employees, 0), 2)) STORED;

-- The unique index ingest already maintains (ON CONFLICT (canonical_id)) carries the projection: wider
-- entries in an index every write touches anyway, instead of one more index per write. Same name, so
-- the constraint reads as before. revenue_analysis ranks ties by canonical_id, which is the key.
ALTER TABLE canonical.entities
    DROP CONSTRAINT entities_canonical_id_key,
    ADD CONSTRAINT entities_canonical_id_key UNIQUE (canonical_id)
        INCLUDE (entity_type, source_system, industry, region, country,
                 revenue, employees, lifetime_value, total_spent, revenue_per_employee);

-- Index-only scans skip the heap only on pages the visibility map marks all-visible, and the rewrite
-- above cleared it; autovacuum may not come back to the table for a long while. On a loaded database,
-- run `VACUUM (ANALYZE) canonical.entities` once after this migration. Not here (VACUUM cannot run in
-- a transaction), and not automatically after it: on a fresh database it marks the empty table as
-- known-empty, and the first load's plans then assume an empty table throughout, which makes that load
-- many times slower (bench/schema_measurements.md).
