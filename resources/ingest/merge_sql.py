"""The statements of one file's merge, in the order the merge sends them.

Each is a named constant, or composed by a small function from named parts where several statements
share them (the entity rows, the SET list of a changed entity). Parameters are psycopg's named
placeholders: source_key, run_id, file_id, file_at, transformation_version, and xid (the transaction id
an earlier chunk of this file wrote with, '0' when the file is merged whole).
"""

from __future__ import annotations

from typing import NamedTuple

# attributes are staged as text: most records of a reload leave staging at the claim (unchanged), and
# only those the merge writes pay for the jsonb parse.
STAGING_DDL = """
CREATE TEMP TABLE staging_entities (
    ord integer NOT NULL, canonical_id text NOT NULL, source_system text NOT NULL, source_id text NOT NULL,
    entity_type text NOT NULL, name text NOT NULL, industry text, revenue numeric, employees bigint,
    attributes text NOT NULL, attributes_hash bytea NOT NULL, data_quality real NOT NULL,
    parent_canonical_id text, changed_at timestamptz, status text NOT NULL
) ON COMMIT DROP;
CREATE TEMP TABLE staging_metrics (
    ord integer NOT NULL, canonical_id text NOT NULL, metric_type text NOT NULL,
    observed_at timestamptz NOT NULL, value numeric NOT NULL
) ON COMMIT DROP;
CREATE TEMP TABLE staging_keep (canonical_id text NOT NULL, fresh boolean NOT NULL) ON COMMIT DROP;
CREATE TEMP TABLE file_lost (canonical_id text NOT NULL) ON COMMIT DROP;
"""
COPY_STAGING_ENTITIES = "COPY staging_entities FROM STDIN"
COPY_STAGING_METRICS = "COPY staging_metrics FROM STDIN"
COPY_REJECTED_RECORDS = (
    "COPY ingest.rejected_records (file_id, attempt, record_index, source_id, reasons, record) FROM STDIN"
)
TRUNCATE_STAGING = "TRUNCATE staging_entities, staging_metrics, staging_keep"
# Temporary tables are never auto-analyzed; without statistics the merge may pick a nested loop.
ANALYZE_STAGING_ENTITIES = "ANALYZE staging_entities"
ANALYZE_STAGING_KEEP = "ANALYZE staging_keep"
# The xid this (sub)transaction writes with, as tuples carry it: a row with it was written by an earlier
# chunk of this file.
CURRENT_XID = "SELECT xmin::text FROM staging_entities LIMIT 1"
BUMP_DATA_VERSION = "UPDATE ingest.data_version SET version = version + 1, updated_at = now()"

# Per-chunk claims do not take their row locks in one global order, so a chunked load must not run beside
# another load of entities: chunked loads take this lock exclusively, whole-file loads share it.
CHUNKED_LOAD_LOCK = "SELECT pg_advisory_xact_lock(hashtext('ingest.entity_order chunked loads'))"
WHOLE_LOAD_LOCK = "SELECT pg_advisory_xact_lock_shared(hashtext('ingest.entity_order chunked loads'))"
# The summary of the metric points (analytics.time_series_cells, migration 0005) is kept by triggers that
# take this lock before they read, so that concurrent writers count an entity once; held to the commit.
# Taken here before the partitions' lock (canonical.ensure_time_series_partitions) so that every load
# takes its locks in one order: the load lock, entity_order rows, entity rows (whose industry change
# takes this lock in its trigger), this one, the partitions', then rows no other load holds.
SUMMARY_LOCK = "SELECT pg_advisory_xact_lock(hashtext('analytics.time_series_cells'))"

# --- source order --------------------------------------------------------------------------------------

# Each staged record claims its entity's source position, and with it the content hash it brings (so
# ingest.entity_order.attributes_hash is always the current version's). ORDER BY: every run takes these
# row locks in one global order (bytewise: cheap to sort, the same on every server), so two runs over
# the same ids cannot deadlock. `>=`: the same file again (a reprocess) is not older than itself. A run
# that meets another's uncommitted claim waits, then compares against the committed position (READ
# COMMITTED re-checks the WHERE on the latest row version): the result is the same in any interleaving.
# Then staging keeps only what the merge must write: the records that won their claim with new content.
# Those that lost (superseded: older than the position held) change no entity, parent link or metric
# point; those that won with the content the store already holds (unchanged) leave too, so the merge
# never probes the entities for them.
# Answers (distinct ids, claimed, kept, repeats of an earlier chunk, fresh among the kept).
CLAIM_SOURCE_ORDER = """
WITH incoming AS MATERIALIZED (
    -- one record per id: the newest by its own change time, the file's last among equals
    SELECT DISTINCT ON (canonical_id COLLATE "C") canonical_id,
           coalesce(changed_at, %(file_at)s::timestamptz) AS changed_at, attributes_hash
    FROM staging_entities
    ORDER BY canonical_id COLLATE "C", coalesce(changed_at, %(file_at)s::timestamptz) DESC, ord DESC
), claimed AS (
    INSERT INTO ingest.entity_order AS o (canonical_id, changed_at, file_at, file_id, attributes_hash)
    SELECT canonical_id, changed_at, %(file_at)s::timestamptz, %(file_id)s::bigint, attributes_hash FROM incoming
    ON CONFLICT (canonical_id) DO UPDATE
        SET changed_at = EXCLUDED.changed_at, file_at = EXCLUDED.file_at, file_id = EXCLUDED.file_id,
            attributes_hash = EXCLUDED.attributes_hash
        WHERE (EXCLUDED.changed_at, EXCLUDED.file_at, EXCLUDED.file_id) >= (o.changed_at, o.file_at, o.file_id)
    RETURNING new.canonical_id,
              old.canonical_id IS NULL OR old.attributes_hash IS DISTINCT FROM new.attributes_hash AS writes,
              -- claimed before by this very transaction: an earlier chunk of the file (xid 0 when whole)
              old.xmin = %(xid)s::xid AS repeat,
              old.canonical_id IS NULL AS fresh
), kept AS (
    INSERT INTO staging_keep SELECT canonical_id, fresh FROM claimed WHERE writes RETURNING fresh
)
SELECT (SELECT count(*) FROM incoming), (SELECT count(*) FROM claimed), (SELECT count(*) FROM kept),
       (SELECT count(*) FROM claimed WHERE repeat), (SELECT count(*) FROM kept WHERE fresh)
"""
# The same id more than once in the staged rows: keep one occurrence, the newest by its own change time,
# the last one among equals (the file's own order).
DROP_SUPERSEDED_DUPLICATES = """DELETE FROM staging_entities s
           USING (SELECT DISTINCT ON (canonical_id) canonical_id, ord AS keep_ord
                  FROM staging_entities
                  WHERE canonical_id IN (SELECT canonical_id FROM staging_entities
                                         GROUP BY canonical_id HAVING count(*) > 1)
                  ORDER BY canonical_id, coalesce(changed_at, %(file_at)s::timestamptz) DESC, ord DESC) d
           WHERE s.canonical_id = d.canonical_id AND s.ord <> d.keep_ord"""
# A chunk's records that lost their claim: remembered (a later chunk naming one of them must not be
# merged apart from it), and counted where the position that beat them is this transaction's own, i.e.
# an earlier chunk's occurrence of the same id. A winner's row holds exactly the position it brought; a
# loser's holds a newer one.
CHUNK_LOSERS = """
WITH incoming AS (
    SELECT DISTINCT ON (canonical_id COLLATE "C") canonical_id,
           coalesce(changed_at, %(file_at)s::timestamptz) AS changed_at
    FROM staging_entities
    ORDER BY canonical_id COLLATE "C", coalesce(changed_at, %(file_at)s::timestamptz) DESC, ord DESC
), lost AS (
    SELECT i.canonical_id, o.xmin = %(xid)s::xid AS ours
    FROM incoming i JOIN ingest.entity_order o ON o.canonical_id = i.canonical_id COLLATE "C"
    WHERE (o.changed_at, o.file_at, o.file_id)
          IS DISTINCT FROM (i.changed_at, %(file_at)s::timestamptz, %(file_id)s::bigint)
), saved AS (
    INSERT INTO file_lost SELECT canonical_id FROM lost
)
SELECT count(*) FILTER (WHERE ours) FROM lost
"""
NAMES_AN_EARLIER_LOSER = """
SELECT EXISTS (SELECT 1 FROM staging_entities s JOIN file_lost l ON l.canonical_id = s.canonical_id)
"""
KEEP_ONLY_WRITES = """
DELETE FROM staging_entities s WHERE NOT EXISTS (SELECT 1 FROM staging_keep k WHERE k.canonical_id = s.canonical_id)
"""

# --- entities ------------------------------------------------------------------------------------------

# What a changed entity takes from the incoming row (EXCLUDED), shared by every upsert of entities.
ENTITY_UPDATE_SET = (
    "entity_type = EXCLUDED.entity_type, name = EXCLUDED.name, industry = EXCLUDED.industry, "
    "revenue = EXCLUDED.revenue, employees = EXCLUDED.employees, attributes = EXCLUDED.attributes, "
    "attributes_hash = EXCLUDED.attributes_hash, metadata = EXCLUDED.metadata, "
    "source_changed_at = EXCLUDED.source_changed_at, source_file_at = EXCLUDED.source_file_at, "
    "source_file_id = EXCLUDED.source_file_id, status = EXCLUDED.status, deleted_at = EXCLUDED.deleted_at"
)
_ENTITY_COLUMNS = """(entity_type, source_system, canonical_id, name, industry, revenue, employees, status,
         deleted_at, attributes, attributes_hash, metadata, source_changed_at, source_file_at, source_file_id)"""
# The staged rows as canonical.entities rows (alias s: the filters below refer to it).
_ENTITY_ROWS = """
    SELECT s.entity_type, s.source_system, s.canonical_id, s.name, s.industry, s.revenue, s.employees,
           -- the status its vocabulary gives the record's own; deleted as of the record's place in its
           -- source's order
           s.status, CASE WHEN s.status = 'deleted' THEN coalesce(s.changed_at, %(file_at)s::timestamptz) END,
           s.attributes::jsonb, s.attributes_hash,
           jsonb_build_object('source_key', %(source_key)s::text, 'source_id', s.source_id,
                              'run_id', %(run_id)s::text, 'file_id', %(file_id)s::bigint,
                              'data_quality', s.data_quality,
                              'transformation_version', %(transformation_version)s::text),
           coalesce(s.changed_at, %(file_at)s::timestamptz), %(file_at)s::timestamptz, %(file_id)s::bigint
    FROM staging_entities s"""
# The claim marked a staged record fresh when its id had never been claimed.
_IS_FRESH = "SELECT 1 FROM staging_keep k WHERE k.canonical_id = s.canonical_id AND k.fresh"
ONLY_FRESH = f"WHERE EXISTS ({_IS_FRESH})"
ONLY_NOT_FRESH = f"WHERE NOT EXISTS ({_IS_FRESH})"


def insert_entities(where: str | None = None) -> str:
    """A plain INSERT of the staged rows (`where` narrows them). For fresh records only: their id was
    never claimed, so never merged (only the loader writes entities, after claiming). No speculative
    insertion and no RETURNING old.*, which cost backend CPU. Not guarded by a NOT EXISTS on
    canonical.entities: that anti-join's plan depends on the table's statistics, and planned as a nested
    loop over a table vacuumed while empty it re-reads the rows this very statement inserts. An entity
    written around ingest instead trips the unique canonical_id (ENTITIES_CANONICAL_ID_KEY)."""
    narrowed = f" {where}" if where else ""
    return f"INSERT INTO canonical.entities {_ENTITY_COLUMNS}{_ENTITY_ROWS}{narrowed}"


def upsert_entities(where: str | None = None) -> str:
    """The staged rows (`where` narrows them) inserted, or a new version where the content changed, the
    replaced version handed to entity_history in the same statement (PostgreSQL 18's `RETURNING old.*`,
    under the row lock the upsert already holds). Answers (inserted, updated, moved back)."""
    narrowed = f"\n    {where}" if where else ""
    return f"""
WITH merged AS (
    INSERT INTO canonical.entities AS e
        {_ENTITY_COLUMNS}{_ENTITY_ROWS}{narrowed}
    ON CONFLICT (canonical_id) DO UPDATE
        SET {ENTITY_UPDATE_SET}, version = e.version + 1, updated_at = now()
        WHERE e.attributes_hash IS DISTINCT FROM EXCLUDED.attributes_hash
    RETURNING old.entity_id AS old_entity_id, old.canonical_id AS old_canonical_id, old.version AS old_version,
              old.entity_type AS old_entity_type, old.attributes AS old_attributes,
              old.metadata AS old_metadata, old.updated_at AS old_updated_at,
              old.source_changed_at AS old_changed_at, old.source_file_at AS old_file_at,
              old.source_file_id AS old_file_id, old.status AS old_status, old.deleted_at AS old_deleted_at,
              -- measured by the database at write time, so the asset check can fail if the rule breaks
              (old.source_changed_at, old.source_file_at, old.source_file_id)
                  > (new.source_changed_at, new.source_file_at, new.source_file_id) AS moved_back
), history AS (
    INSERT INTO canonical.entity_history
        (entity_id, canonical_id, version, entity_type, attributes, metadata, valid_from,
         source_changed_at, source_file_at, source_file_id, status, deleted_at)
    SELECT old_entity_id, old_canonical_id, old_version, old_entity_type, old_attributes, old_metadata,
           old_updated_at, old_changed_at, old_file_at, old_file_id, old_status, old_deleted_at
    FROM merged WHERE old_entity_id IS NOT NULL
)
SELECT count(*) FILTER (WHERE old_entity_id IS NULL), count(*) FILTER (WHERE old_entity_id IS NOT NULL),
       count(*) FILTER (WHERE moved_back)
FROM merged
"""


class EntityPlan(NamedTuple):
    """How the staged entities are written: the fresh plain-INSERTed, the rest upserted (None: no such
    rows)."""

    insert_fresh: str | None
    upsert: str | None


NO_FRESH_PLAN = EntityPlan(insert_fresh=None, upsert=upsert_entities())
ALL_FRESH_PLAN = EntityPlan(insert_fresh=insert_entities(), upsert=None)
SOME_FRESH_PLAN = EntityPlan(insert_fresh=insert_entities(ONLY_FRESH), upsert=upsert_entities(ONLY_NOT_FRESH))
ENTITIES_CANONICAL_ID_KEY = "entities_canonical_id_key"


def entity_plan(fresh: int, kept: int) -> EntityPlan:
    """The plan for `kept` staged rows of which `fresh` were never claimed."""
    if not fresh:
        return NO_FRESH_PLAN
    return ALL_FRESH_PLAN if fresh == kept else SOME_FRESH_PLAN


# --- relationships -------------------------------------------------------------------------------------

# A child named in this file gets the parent the file names; a child the file names without a
# parent loses its current one. Closed links stay as history.
CLOSE_CHANGED_PARENTS = """
UPDATE canonical.entity_relationships r SET effective_to = now()
FROM staging_entities s
WHERE r.child_canonical_id = s.canonical_id AND r.relationship_type = 'parent_of' AND r.effective_to IS NULL
  AND r.parent_canonical_id IS DISTINCT FROM s.parent_canonical_id
"""
INSERT_PARENTS = """
INSERT INTO canonical.entity_relationships (parent_canonical_id, child_canonical_id, relationship_type, properties)
SELECT s.parent_canonical_id, s.canonical_id, 'parent_of', jsonb_build_object('source_key', %(source_key)s::text)
FROM staging_entities s
WHERE s.parent_canonical_id IS NOT NULL
ON CONFLICT (child_canonical_id, relationship_type) WHERE effective_to IS NULL DO NOTHING
"""

# --- metric points -------------------------------------------------------------------------------------

ENSURE_PARTITIONS = (
    "SELECT canonical.ensure_time_series_partitions(array_agg(DISTINCT date_trunc('month', "
    "observed_at AT TIME ZONE 'UTC')::date)) FROM staging_metrics "
    "WHERE observed_at >= '1900-01-01' AND observed_at < '2200-01-01'"
)
# Only the points of the records still staged (joined on ord): a dropped duplicate, superseded or
# unchanged record brings none.
MERGE_METRICS = """
INSERT INTO canonical.time_series_data AS t (entity_canonical_id, metric_type, observed_at, value, source_key)
SELECT DISTINCT ON (m.canonical_id, m.metric_type, m.observed_at)
       m.canonical_id, m.metric_type, m.observed_at, m.value, %(source_key)s::text
FROM staging_metrics m
JOIN staging_entities s ON s.canonical_id = m.canonical_id AND s.ord = m.ord
ORDER BY m.canonical_id, m.metric_type, m.observed_at, m.ord DESC
ON CONFLICT (entity_canonical_id, metric_type, observed_at) DO UPDATE
    SET value = EXCLUDED.value, source_key = EXCLUDED.source_key, loaded_at = now()
    WHERE t.value IS DISTINCT FROM EXCLUDED.value
"""
