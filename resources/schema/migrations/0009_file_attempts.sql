-- A file's attempts, and the two kinds of failure.
--
-- Liveness: a file is `loading` only while its loader's session holds a session-level advisory lock
-- keyed by the file (resources/ingest/registry.py takes it before the file becomes `loading` and lets
-- it go after the file's outcome is committed). PostgreSQL releases it when that session ends, however
-- the loader died (worker killed, task stopped, connection cut), so a `loading` file whose lock nobody
-- holds has provably lost its loader; nothing of it landed, because its transaction ended with the
-- session. `ingest.loader_alive(file_id)` is that test, in one place.
--
-- failure_kind: 'data' failures (the file's content or the object: malformed JSON, a refused record
-- set the database rejects, a missing or changed object, access refused) wait for a person
-- (`pipeline reprocess`); 'infrastructure' failures (the loader, its run or its connection died) are
-- retried by the landing sensor with backoff, `retries` counting the automatic ones of this attempt
-- series (a reprocess starts a new series).
ALTER TABLE ingest.files
    ADD COLUMN failure_kind text CHECK (failure_kind IN ('data', 'infrastructure')),
    ADD COLUMN retries integer NOT NULL DEFAULT 0,
    -- Why the current attempt started: NULL (the file arrived), 'reprocess' or 'retry'.
    ADD COLUMN attempt_cause text CHECK (attempt_cause IN ('reprocess', 'retry'));

-- The landing sensor's retry sweep reads only these rows.
CREATE INDEX files_retryable_idx ON ingest.files (finished_at)
    WHERE status = 'failed' AND failure_kind = 'infrastructure';

-- Every ending of an attempt, whichever code path ended it (the trigger below): the file's history.
CREATE TABLE ingest.file_attempts (
    file_attempt_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file_id         bigint NOT NULL REFERENCES ingest.files (file_id) ON DELETE CASCADE,
    attempt         integer NOT NULL,
    cause           text,
    run_id          text,
    batch_id        text,
    started_at      timestamptz,
    finished_at     timestamptz NOT NULL DEFAULT now(),
    outcome         text NOT NULL CHECK (outcome IN ('loaded', 'failed')),
    failure_kind    text,
    reason          text
);
CREATE INDEX file_attempts_file_idx ON ingest.file_attempts (file_id, file_attempt_id);
-- The landing sensor looks up recent infrastructure failures' runs at every tick.
CREATE INDEX file_attempts_infrastructure_idx ON ingest.file_attempts (finished_at)
    WHERE failure_kind = 'infrastructure';

CREATE FUNCTION ingest.record_file_attempt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ingest.file_attempts (file_id, attempt, cause, run_id, batch_id, started_at, finished_at,
                                      outcome, failure_kind, reason)
    VALUES (NEW.file_id, NEW.attempt, NEW.attempt_cause, NEW.run_id, NEW.batch_id, NEW.started_at,
            coalesce(NEW.finished_at, now()), NEW.status, NEW.failure_kind, NEW.reason);
    RETURN NULL;
END
$$;

CREATE TRIGGER files_attempt_ended AFTER UPDATE OF status ON ingest.files
    FOR EACH ROW WHEN (NEW.status IN ('loaded', 'failed') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION ingest.record_file_attempt();

-- The loader's lock: key 1 (727002) names "an ingest.files loader" among advisory locks, key 2 is the
-- file id (past 2^32 it wraps: two files 2^32 apart are never loading at the same moment).
CREATE FUNCTION ingest.loader_lock_key(file_id bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (CASE WHEN file_id % 4294967296 < 2147483648 THEN file_id % 4294967296
                 ELSE file_id % 4294967296 - 4294967296 END)::integer;

-- VOLATILE: it reads the lock table, which no snapshot holds still.
CREATE FUNCTION ingest.loader_alive(file_id bigint) RETURNS boolean
    LANGUAGE sql VOLATILE
    RETURN EXISTS (
        SELECT 1 FROM pg_catalog.pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
          AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
          AND l.classid = 727002::oid AND l.objid = (file_id % 4294967296)::oid);

GRANT SELECT, INSERT, UPDATE, DELETE ON ingest.file_attempts TO pipeline_writer;
GRANT EXECUTE ON FUNCTION ingest.loader_lock_key(bigint), ingest.loader_alive(bigint) TO pipeline_writer;
