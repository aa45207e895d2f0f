-- data_integrity_analysis (issue 14): what its lookups read, per target system.
-- Runs as the database owner (local: postgres; AWS: the RDS master user).
--
-- A pair is looked up from its earlier system only (crm < erp < legacy), so the trigram lookups only ever
-- search erp or legacy names. Through entities_name_trgm every lookup merged the posting lists of all
-- 1M names (~25-45 ms a probe at 1M); through an index of one system's names the lists are a quarter to
-- a third as long and a lookup is ~4-5x cheaper in CPU (bench/analytics_bench.py). The candidates are
-- exactly the same rows: same operator, same threshold, the system filter applied by the index instead
-- of after it. entities_name_trgm stays: ad-hoc queries (`name % x` over every system) use it.
--
-- Ingest: CRM rows satisfy neither predicate and pay nothing for these two; an ERP or legacy row is
-- written to one more GIN index (its name's trigrams twice instead of once).
CREATE INDEX IF NOT EXISTS entities_name_trgm_erp ON canonical.entities
    USING gin (name gin_trgm_ops) WHERE source_system = 'erp';
CREATE INDEX IF NOT EXISTS entities_name_trgm_legacy ON canonical.entities
    USING gin (name gin_trgm_ops) WHERE source_system = 'legacy';

--
-- Not added: a btree in probe order (revenue DESC NULLS LAST, canonical_id COLLATE "C") for CRM and ERP
-- rows. It would save each call ~0.55 CPU-s of sorting at 1M entities, but it made a 200k-record CRM
-- first load use 15 % more PostgreSQL CPU (8.3-8.4 s against 7.2-7.3 s, alternating A/B).
