-- data_integrity_analysis (issue 14): what its lookups read, per target system.
-- Runs as the database owner (local: postgres; AWS: the RDS master user).
--
-- A pair is looked up from its earlier system only (crm < erp < legacy), so the trigram lookups only ever
-- search erp or legacy names. Through entities_name_trgm every lookup merged the posting lists of all
-- 1M names; through an index of one system's names the lists are a quarter to a third as long. Measured
-- at 1M: a legacy lookup 8 instead of 43 CPU-ms at min_similarity 0.5 (5 instead of 24 at 0.6), a whole
-- call 2-2.7x less CPU (limit 1000 at 0.5: 28 -> 12 CPU-s in the server). The candidates are
-- exactly the same rows: same operator, same threshold, the system filter applied by the index instead
-- of after it. entities_name_trgm stays: ad-hoc queries (`name % x` over every system) use it.
--
-- Ingest: CRM rows satisfy neither predicate (a 200k-record CRM first load: 7.06-7.41 s PostgreSQL CPU
-- with these, 6.68-7.24 without, alternating on a busy machine: no difference above the noise). An ERP
-- or legacy row is written to one more GIN index (its name's trigrams twice instead of once): inserting
-- 100k ERP rows took 3.3-3.9 s backend CPU instead of 2.5 s.
CREATE INDEX IF NOT EXISTS entities_name_trgm_erp ON canonical.entities
    USING gin (name gin_trgm_ops) WHERE source_system = 'erp';
CREATE INDEX IF NOT EXISTS entities_name_trgm_legacy ON canonical.entities
    USING gin (name gin_trgm_ops) WHERE source_system = 'legacy';

-- Not added: a btree in probe order (revenue DESC NULLS LAST, canonical_id COLLATE "C") for CRM and ERP
-- rows. It would save each call ~0.55 CPU-s of sorting at 1M entities, but it made a 200k-record CRM
-- first load use 15 % more PostgreSQL CPU (8.3-8.4 s against 7.2-7.3 s, alternating A/B).
