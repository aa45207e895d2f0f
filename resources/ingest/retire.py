"""Retirement: the entities a full snapshot of their source no longer holds are deleted (README,
"Deletions"). Runs in the snapshot's own transaction, after its records are merged.

An entity is absent from the snapshot when its place in the source's order (ingest.entity_order) is
older than the snapshot and was not taken by this file, and the file did not refuse a record of it (a
refused record still says the account exists). An entity a newer file (or a record with a newer change
time) already placed is left alone: an older snapshot never retires anything newer than itself.

Retiring takes the entity's place in the order like a record would, with an empty content hash (no
record hashes to it), so a later file that holds the entity again writes it back (status from that
record, a new version), and an older file cannot.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from resources.ingest.merge_sql import BUMP_DATA_VERSION

# The source's entities not yet deleted, and those the snapshot does not hold. `o` is absent for an
# entity written around ingest: nothing places it, so a snapshot without it retires it.
_ABSENT = """(o.canonical_id IS NULL
      OR (o.file_id <> %(file_id)s::bigint
          AND (o.changed_at, o.file_at, o.file_id) < (%(file_at)s::timestamptz, %(file_at)s::timestamptz, %(file_id)s::bigint)))
  AND NOT EXISTS (SELECT 1 FROM ingest.rejected_records r
                  WHERE r.file_id = %(file_id)s::bigint AND r.attempt = %(attempt)s::integer
                    AND r.source_id IS NOT NULL AND %(source)s::text || '_' || r.source_id = e.canonical_id)"""
_SOURCE_ENTITIES = """canonical.entities e
LEFT JOIN ingest.entity_order o ON o.canonical_id = e.canonical_id COLLATE "C"
WHERE e.source_system = %(source)s::text AND e.status <> 'deleted'"""

COUNT_ABSENT = f"""
SELECT count(*) FILTER (WHERE {_ABSENT}), count(*)
FROM {_SOURCE_ENTITIES}
"""

# ORDER BY: row locks in the one global order every claim takes them in (resources/ingest/merge_sql.py).
# The claim's WHERE re-checks the position against the latest committed row, so a newer file that
# placed the entity meanwhile keeps it. The retired version is a new version: the replaced one goes to
# the history with its status, as every replaced version does.
RETIRE_ABSENT = f"""
WITH gone AS (
    SELECT e.canonical_id FROM {_SOURCE_ENTITIES} AND {_ABSENT}
), claimed AS (
    INSERT INTO ingest.entity_order AS o (canonical_id, changed_at, file_at, file_id, attributes_hash)
    SELECT canonical_id, %(file_at)s::timestamptz, %(file_at)s::timestamptz, %(file_id)s::bigint, ''::bytea
    FROM gone ORDER BY canonical_id COLLATE "C"
    ON CONFLICT (canonical_id) DO UPDATE
        SET changed_at = EXCLUDED.changed_at, file_at = EXCLUDED.file_at, file_id = EXCLUDED.file_id,
            attributes_hash = EXCLUDED.attributes_hash
        WHERE (EXCLUDED.changed_at, EXCLUDED.file_at, EXCLUDED.file_id) >= (o.changed_at, o.file_at, o.file_id)
    RETURNING o.canonical_id
), retired AS (
    UPDATE canonical.entities e
    SET status = 'deleted', deleted_at = %(file_at)s::timestamptz, attributes_hash = ''::bytea,
        version = e.version + 1, updated_at = now(),
        metadata = e.metadata || jsonb_build_object(
            'source_key', %(source_key)s::text, 'run_id', %(run_id)s::text, 'file_id', %(file_id)s::bigint,
            'deleted_by', jsonb_build_object('file_id', %(file_id)s::bigint, 'source_key', %(source_key)s::text,
                                             'reason', 'absent from a newer snapshot of its source')),
        source_changed_at = %(file_at)s::timestamptz, source_file_at = %(file_at)s::timestamptz,
        source_file_id = %(file_id)s::bigint
    FROM claimed c
    WHERE e.canonical_id = c.canonical_id AND e.status <> 'deleted'
    RETURNING old.entity_id, old.canonical_id, old.version, old.entity_type, old.attributes, old.metadata,
              old.updated_at, old.source_changed_at, old.source_file_at, old.source_file_id, old.status,
              old.deleted_at
), history AS (
    INSERT INTO canonical.entity_history
        (entity_id, canonical_id, version, entity_type, attributes, metadata, valid_from,
         source_changed_at, source_file_at, source_file_id, status, deleted_at)
    SELECT * FROM retired
)
SELECT count(*) FROM retired
"""


class SnapshotHeld(Exception):
    """The snapshot would retire more of its source than allowed: roll it back and hold the file."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def held_reason(absent: int, entities: int, source: str, max_share: float, key: str) -> str:
    return (
        f"this snapshot would retire {absent} of the {entities} {source} entities not yet deleted "
        f"({absent / entities:.0%}), more than the {max_share:.0%} allowed (INGEST_SNAPSHOT_MAX_RETIRE_SHARE); "
        f"nothing of it was applied. `pipeline release {key}` applies it."
    )


def retire_absent(
    conn: psycopg.Connection,
    *,
    source: str,
    file_id: int,
    attempt: int,
    file_at: datetime,
    source_key: str,
    run_id: str,
    max_share: float,
    released: bool,
) -> int:
    """Retire what the snapshot does not hold; the number retired. Raises SnapshotHeld (nothing written)
    when that is more than `max_share` of the source's entities not yet deleted, unless `released`."""
    params: dict[str, Any] = {
        "source": source,
        "file_id": file_id,
        "attempt": attempt,
        "file_at": file_at,
        "source_key": source_key,
        "run_id": run_id,
    }
    with conn.cursor() as cur:
        row = cur.execute(COUNT_ABSENT, params).fetchone()
        absent, entities = row if row else (0, 0)
        if not absent:
            return 0
        if not released and absent > max_share * entities:
            raise SnapshotHeld(held_reason(absent, entities, source, max_share, source_key))
        retired_row = cur.execute(RETIRE_ABSENT, params).fetchone()
        retired = int(retired_row[0]) if retired_row else 0
        if retired:
            cur.execute(BUMP_DATA_VERSION)
        return retired
