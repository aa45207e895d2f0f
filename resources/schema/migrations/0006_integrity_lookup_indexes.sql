-- data_integrity_analysis: what its lookups read, per target system.
-- Runs as the database owner (local: postgres; AWS: the RDS master user).
--
-- A pair is looked up from its earlier system only (crm < erp < legacy), so the trigram lookups only ever
-- search erp or legacy names. Through entities_name_trgm every lookup merges the posting lists of every
-- system's names; through an index of one system's names the lists are a quarter to a third as long, so
-- each lookup costs a fraction of the CPU (bench/schema_measurements.md). The candidates are exactly
-- the same rows: same operator, same threshold, the system filter applied by the index instead of after
-- it. entities_name_trgm stays: ad-hoc queries (`name % x` over every system) use it.
--
-- Ingest: CRM rows satisfy neither predicate, so CRM loads do not pay for these. An ERP or legacy row is
-- written to one more GIN index (its name's trigrams twice instead of once).
CREATE INDEX IF NOT EXISTS entities_name_trgm_erp ON canonical.entities
    USING gin (name gin_trgm_ops) WHERE source_system = 'erp';
CREATE INDEX IF NOT EXISTS entities_name_trgm_legacy ON canonical.entities
    USING gin (name gin_trgm_ops) WHERE source_system = 'legacy';

-- Not added: a btree in probe order (revenue DESC NULLS LAST, canonical_id COLLATE "C") for CRM and ERP
-- rows. It would save each call its sort of the probes, but every CRM load would pay more than the
-- calls save (bench/schema_measurements.md).
