-- Replay: `pipeline replay` and the replay_source job apply the current source definitions to a
-- source's loaded files again, each as a new attempt of its file, so the file's history says why that
-- attempt started. It changes no other column or table: the attempt ends through the same trigger
-- (ingest.record_file_attempt, migration 0009) as every other.
ALTER TABLE ingest.files DROP CONSTRAINT files_attempt_cause_check;
ALTER TABLE ingest.files ADD CONSTRAINT files_attempt_cause_check
    CHECK (attempt_cause IN ('reprocess', 'retry', 'release', 'replay'));
