-- Schema drift (README, "Schema drift"): what a source's loaded files looked like, and how each file
-- differed from the files before it.
--
-- ingest.source_fields: per source, every field its loaded files carried (top-level keys, and the keys
-- of the objects its definition reads into, dotted: `financials.annualRevenue`). Written in the loading
-- file's own transaction, so a file that fails changes nothing here. `always_present`: in every record
-- of every loaded file since the field was first seen; `types`: the JSON types seen (string, number,
-- bool, object, array, null). A file row deleted by hand leaves the profile as it was (the file ids
-- become NULL).
CREATE TABLE ingest.source_fields (
    source_system      text NOT NULL,
    field              text NOT NULL,
    first_seen_file_id bigint REFERENCES ingest.files (file_id) ON DELETE SET NULL,
    last_seen_file_id  bigint REFERENCES ingest.files (file_id) ON DELETE SET NULL,
    files_seen         integer NOT NULL CHECK (files_seen > 0),
    always_present     boolean NOT NULL,
    types              text[] NOT NULL,
    PRIMARY KEY (source_system, field)
);
-- The foreign keys' lookups when a file is deleted.
CREATE INDEX source_fields_first_seen_idx ON ingest.source_fields (first_seen_file_id);
CREATE INDEX source_fields_last_seen_idx ON ingest.source_fields (last_seen_file_id);

-- A file's findings against its source's earlier loaded files (new fields, fields gone missing, type
-- changes, a required field gone), set with its outcome; NULL when it had none.
ALTER TABLE ingest.files ADD COLUMN drift jsonb;

GRANT SELECT, INSERT, UPDATE, DELETE ON ingest.source_fields TO pipeline_writer;
