-- Deletions as facts (README, "Deletions").
--
-- An entity is deleted when its source says so (a delete marker, or a status its vocabulary maps to
-- deleted) or, for a source whose files are full snapshots, when a newer snapshot no longer contains it:
-- it is retired (status 'deleted', deleted_at, a new version whose old one goes to the history), and it
-- comes back if a later file holds it again. Never by an older snapshot: a retirement takes the entity's
-- place in its source's order (ingest.entity_order) like any record would.
--
-- A snapshot that would retire more than a configured share of its source's entities is held, not
-- applied (status 'held', nothing of it landed) until someone releases it (`pipeline release KEY`):
-- a truncated export must not delete half the customers.

ALTER TABLE canonical.entities
    -- When the source stopped holding the entity: the record's change time for a delete marker, the
    -- snapshot's file time for a retirement. NULL while the entity is not deleted.
    ADD COLUMN deleted_at timestamptz;
ALTER TABLE canonical.entity_history
    -- The replaced version's status (a version that was deleted and came back shows it here). NULL for
    -- versions replaced before statuses were kept.
    ADD COLUMN status text,
    ADD COLUMN deleted_at timestamptz;

-- Analytics leave deleted entities out by default: the status joins the covering canonical_id index
-- (migration 0007) so that filter keeps their scans index-only.
ALTER TABLE canonical.entities
    DROP CONSTRAINT entities_canonical_id_key,
    ADD CONSTRAINT entities_canonical_id_key UNIQUE (canonical_id)
        INCLUDE (entity_type, source_system, industry, region, country,
                 revenue, employees, lifetime_value, total_spent, revenue_per_employee, status);

ALTER TABLE ingest.files
    DROP CONSTRAINT files_status_check,
    ADD CONSTRAINT files_status_check
        CHECK (status IN ('pending', 'queued', 'loading', 'loaded', 'failed', 'skipped', 'held')),
    -- Entities a snapshot retired.
    ADD COLUMN retired integer,
    -- Set by a release: the next load of this file applies its retirements whatever their share.
    ADD COLUMN retire_released boolean NOT NULL DEFAULT false;

-- A held snapshot ends its attempt like a load or a failure does.
ALTER TABLE ingest.file_attempts
    DROP CONSTRAINT file_attempts_outcome_check,
    ADD CONSTRAINT file_attempts_outcome_check CHECK (outcome IN ('loaded', 'failed', 'held'));
DROP TRIGGER files_attempt_ended ON ingest.files;
CREATE TRIGGER files_attempt_ended AFTER UPDATE OF status ON ingest.files
    FOR EACH ROW WHEN (NEW.status IN ('loaded', 'failed', 'held') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION ingest.record_file_attempt();

-- A released snapshot's new attempt says why it started.
ALTER TABLE ingest.files
    DROP CONSTRAINT files_attempt_cause_check,
    ADD CONSTRAINT files_attempt_cause_check CHECK (attempt_cause IN ('reprocess', 'retry', 'release'));
