-- Vocabularies (resources/vocabularies/): coded values (industry, country, status, currency) are mapped
-- to canonical ones; a value no vocabulary entry matches is kept as it came and counted here, per file:
-- {"country": {"count": 3, "examples": ["Narnia"]}, ...}, '{}' when every value mapped. NULL until the
-- file loads (and for files loaded before this migration).
ALTER TABLE ingest.files ADD COLUMN unmapped jsonb;
