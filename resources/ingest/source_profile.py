"""`ingest.source_fields`: what a source's loaded files looked like (migration 0012), read and written in
the loading file's own transaction, so a failed file changes nothing.

A transaction-level advisory lock per source serialises the end of concurrent loads of one source: each
compares its file with the profile the previous one left, and writes it back, before the other reads it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import psycopg

from resources.ingest.drift import KnownField

# Key 1 names "a source's field profile" among advisory locks (727002 is the file loader's).
_LOCK_SOURCE = "SELECT pg_advisory_xact_lock(727003, hashtext(%s))"


def lock_source(conn: psycopg.Connection, source: str) -> None:
    """Hold the source's profile until the transaction ends (call inside the file's transaction)."""
    conn.execute(_LOCK_SOURCE, (source,))


def read_profile(conn: psycopg.Connection, source: str) -> dict[str, KnownField]:
    rows = conn.execute(
        """SELECT field, first_seen_file_id, last_seen_file_id, files_seen, always_present, types
           FROM ingest.source_fields WHERE source_system = %s""",
        (source,),
    ).fetchall()
    return {
        name: KnownField(first or 0, last or 0, seen, always, frozenset(types))
        for name, first, last, seen, always, types in rows
    }


def write_profile(conn: psycopg.Connection, source: str, changed: Mapping[str, KnownField]) -> None:
    """Write the fields a loaded file changed (`drift.profile_after`), in one statement."""
    if not changed:
        return
    rows = [
        {
            "field": name,
            "first": f.first_seen_file_id,
            "last": f.last_seen_file_id,
            "seen": f.files_seen,
            "always": f.always_present,
            "types": sorted(f.types),
        }
        for name, f in changed.items()
    ]
    conn.execute(
        """INSERT INTO ingest.source_fields AS s (source_system, field, first_seen_file_id, last_seen_file_id,
                                               files_seen, always_present, types)
           SELECT %s, r.field, nullif(r.first, 0), nullif(r.last, 0), r.seen, r.always,
                  ARRAY(SELECT jsonb_array_elements_text(r.types))
           FROM jsonb_to_recordset(%s::jsonb) AS r(field text, first bigint, last bigint, seen integer,
                                                  always boolean, types jsonb)
           ON CONFLICT (source_system, field) DO UPDATE
           SET last_seen_file_id = EXCLUDED.last_seen_file_id, files_seen = EXCLUDED.files_seen,
               always_present = EXCLUDED.always_present, types = EXCLUDED.types""",
        (source, json.dumps(rows)),
    )
