-- Analytics read the entity resolution: data_integrity_analysis its scored pairs, the segment operations
-- its golden entities (entity_scope 'golden'). Runs as the database owner (local: postgres; AWS: the RDS
-- master user).

-- data_integrity_analysis reports the most probable pairs first, at least min_similarity probable, at most
-- `limit` of them: a range scan of this index in its order, stopped at the limit, whatever the number of
-- pairs (resources/analytics/integrity.py). The ids in "C" order, as the operation breaks ties.
CREATE INDEX IF NOT EXISTS pairs_probability_idx ON golden.pairs
    (match_probability DESC, match_weight DESC, canonical_id_l COLLATE "C", canonical_id_r COLLATE "C");

-- Golden scope counts a golden entity's live members as its member count less its deleted members: the
-- deleted records, found here without reading the others (resources/analytics/scope.py). Only deleted
-- records are written to it, so ingest of live ones does not pay for it.
CREATE INDEX IF NOT EXISTS entities_deleted_idx ON canonical.entities (canonical_id) WHERE status = 'deleted';

-- The name trigram indexes served data_integrity_analysis's fuzzy lookups (migrations 0001, 0006), which
-- the resolution's pairs replace; no other catalogue operation filters names by similarity. Every write
-- of an entity paid for them (its name's trigrams in one GIN index, twice for an ERP or legacy record).
-- pg_trgm stays: similarity() scores the reported pairs' names, and a custom query may call it (over the
-- table, without an index: a user's own query).
DROP INDEX IF EXISTS canonical.entities_name_trgm;
DROP INDEX IF EXISTS canonical.entities_name_trgm_erp;
DROP INDEX IF EXISTS canonical.entities_name_trgm_legacy;
