-- Source order: an entity never moves back in time (README "Order of truth").
--
-- Every version of an entity carries the position, in its source's history, of the record that
-- produced it: (source_changed_at, source_file_at, source_file_id), compared in that order.
--   source_changed_at  the record's own change time where its source has one (INGEST_CHANGE_TIME_FIELDS),
--                      else the file's time
--   source_file_at     the file's time: the export's own metadata.exportDate, else S3 LastModified,
--                      else when the file was registered
--   source_file_id     ingest.files.file_id: registration order, the tie break
-- Rows loaded before this rule existed take their file's position from ingest.files.

ALTER TABLE canonical.entities
    ADD COLUMN source_changed_at timestamptz NOT NULL DEFAULT '-infinity',
    ADD COLUMN source_file_at    timestamptz NOT NULL DEFAULT '-infinity',
    ADD COLUMN source_file_id    bigint      NOT NULL DEFAULT 0;
ALTER TABLE canonical.entity_history
    ADD COLUMN source_changed_at timestamptz NOT NULL DEFAULT '-infinity',
    ADD COLUMN source_file_at    timestamptz NOT NULL DEFAULT '-infinity',
    ADD COLUMN source_file_id    bigint      NOT NULL DEFAULT 0;

UPDATE canonical.entities e
SET source_changed_at = coalesce(f.last_modified, f.discovered_at),
    source_file_at = coalesce(f.last_modified, f.discovered_at),
    source_file_id = f.file_id
FROM ingest.files f
WHERE f.file_id = (e.metadata->>'file_id')::bigint;
UPDATE canonical.entity_history h
SET source_changed_at = coalesce(f.last_modified, f.discovered_at),
    source_file_at = coalesce(f.last_modified, f.discovered_at),
    source_file_id = f.file_id
FROM ingest.files f
WHERE f.file_id = (h.metadata->>'file_id')::bigint;

-- The newest source position seen for each entity, whether or not that record changed anything
-- (an unchanged record from a newer export still outranks a late one), and the content hash of the
-- entity's current version (so ingest tells unchanged records apart without reading the entities).
-- Ingest takes this row's lock before it touches the entity, in canonical_id order, so concurrent runs
-- over the same entities queue on it instead of overwriting each other or deadlocking. Narrow and
-- never indexed beyond its key, so the update each load makes is a HOT update when its page has room.
-- It mirrors canonical.entities: a row deleted there by hand must be deleted here too.
CREATE TABLE ingest.entity_order (
    canonical_id    text COLLATE "C" PRIMARY KEY,  -- bytewise: the claim sorts and probes by it
    changed_at      timestamptz NOT NULL,
    file_at         timestamptz NOT NULL,
    file_id         bigint NOT NULL,
    attributes_hash bytea
) WITH (fillfactor = 50);
INSERT INTO ingest.entity_order (canonical_id, changed_at, file_at, file_id, attributes_hash)
SELECT canonical_id, source_changed_at, source_file_at, source_file_id, attributes_hash FROM canonical.entities;

ALTER TABLE ingest.files
    -- The file's place in its source's history (see above); set when the file loads.
    ADD COLUMN source_file_at timestamptz,
    -- Records older than what the store already holds for their entity: kept out, counted here.
    ADD COLUMN superseded integer,
    -- Entities this file moved back in source order: the asset check fails on anything but 0.
    ADD COLUMN moved_back integer;

GRANT SELECT, INSERT, UPDATE, DELETE ON ingest.entity_order TO pipeline_writer;
