-- Sources as data (resources/sources/): a source system is a definition, not code, so the store no
-- longer lists them. A fourth source is one definition file, with no migration: this is the last one a
-- new source needs.
--
-- canonical.entities.source_system was CHECKed against ('crm', 'erp', 'legacy') since 0001. It stays
-- NOT NULL; which names exist is the definitions' to say (the loader only writes a defined source's).
-- The per-system trigram indexes of 0006 (erp, legacy) stay: a source without its own is looked up
-- through entities_name_trgm, filtered by system (resources/analytics/integrity.py).
ALTER TABLE canonical.entities DROP CONSTRAINT IF EXISTS entities_source_system_check;
