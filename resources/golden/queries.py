"""What the REST app reads from and records in schema golden (psycopg only: dagster-free, splink-free).

Reads run on the read-only role; `record_decision` on the writer. Refusals are values (`Refused`) with a
code the API turns into its status: unknown ids, a pair of one record, nothing to move.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

from resources.golden.decisions import DecisionKind, ordered
from resources.golden.survivorship import GOLDEN_FIELDS

HISTORY_LIMIT = 500

RefusalCode = Literal["unknown_entity", "not_resolved", "same_record", "nothing_to_move", "bad_cursor"]


@dataclass(frozen=True, slots=True)
class Refused:
    code: RefusalCode
    reason: str


@dataclass(frozen=True, slots=True)
class EntityGolden:
    canonical_id: str
    golden_id: str | None  # None: not resolved yet
    record: dict[str, Any] | None


def _record(row: dict[str, Any]) -> dict[str, Any]:
    """A golden.entities row as the API shows it: the fields, their lineage, and the id's state."""
    return {
        "goldenId": row["golden_id"],
        "status": row["status"],
        "successorId": row["successor_id"],
        "memberCount": row["member_count"],
        "fields": {**{f: row[f] for f in GOLDEN_FIELDS}, **row["attributes"]},
        "lineage": row["lineage"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "retiredAt": row["retired_at"],
    }


_RECORD_COLUMNS = (
    "golden_id, status, successor_id, member_count, "
    + ", ".join(GOLDEN_FIELDS)
    + ", attributes, lineage, created_at, updated_at, retired_at"
)


def entity_golden(conn: psycopg.Connection[Any], canonical_id: str) -> EntityGolden | Refused:
    """The golden id and record of a canonical record."""
    with conn.cursor(row_factory=dict_row) as cur:
        exists = cur.execute(
            "SELECT 1 FROM canonical.entities WHERE canonical_id = %s", (canonical_id,)
        ).fetchone()
        member = cur.execute(
            "SELECT golden_id FROM golden.members WHERE canonical_id = %s", (canonical_id,)
        ).fetchone()
        if exists is None and member is None:
            return Refused("unknown_entity", f"no canonical entity {canonical_id!r}")
        if member is None:
            return EntityGolden(canonical_id, None, None)
        row = cur.execute(
            f"SELECT {_RECORD_COLUMNS} FROM golden.entities WHERE golden_id = %s", (member["golden_id"],)
        ).fetchone()
    return EntityGolden(canonical_id, member["golden_id"], _record(row) if row else None)


def golden_entity(conn: psycopg.Connection[Any], golden_id: str) -> dict[str, Any] | Refused:
    """A golden entity: its record with lineage, its members, the scored pairs between them (the match
    evidence, with per-comparison weights) and its history (newest first)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {_RECORD_COLUMNS} FROM golden.entities WHERE golden_id = %s", (golden_id,)
        ).fetchone()
        if row is None:
            return Refused("unknown_entity", f"no golden entity {golden_id!r}")
        members = cur.execute(
            """SELECT m.canonical_id AS "canonicalId", e.source_system AS source, e.name, e.status,
                      m.since_run_id AS "sinceRunId", m.since
               FROM golden.members m LEFT JOIN canonical.entities e USING (canonical_id)
               WHERE m.golden_id = %s ORDER BY m.canonical_id""",
            (golden_id,),
        ).fetchall()
        evidence = cur.execute(
            """SELECT p.canonical_id_l AS "canonicalIdL", p.canonical_id_r AS "canonicalIdR",
                      p.match_weight AS "matchWeight", p.match_probability AS "matchProbability", p.band,
                      p.comparisons, p.run_id AS "runId"
               FROM golden.members m
               JOIN golden.pairs p ON p.canonical_id_l = m.canonical_id
               JOIN golden.members o ON o.canonical_id = p.canonical_id_r AND o.golden_id = m.golden_id
               WHERE m.golden_id = %s
               ORDER BY p.match_weight DESC, p.canonical_id_l, p.canonical_id_r""",
            (golden_id,),
        ).fetchall()
        history = cur.execute(
            """SELECT history_id AS "historyId", run_id AS "runId", at, kind, golden_id AS "goldenId",
                      other_golden_id AS "otherGoldenId", members, reason
               FROM golden.history WHERE golden_id = %s OR other_golden_id = %s
               ORDER BY history_id DESC LIMIT %s""",
            (golden_id, golden_id, HISTORY_LIMIT),
        ).fetchall()
    return {"record": _record(row), "members": members, "evidence": evidence, "history": history}


def _encode_cursor(weight: float, l_id: str, r_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([weight, l_id, r_id]).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[float, str, str] | None:
    try:
        weight, l_id, r_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(weight), str(l_id), str(r_id)
    except (ValueError, TypeError, binascii.Error):
        return None


def review_queue(
    conn: psycopg.Connection[Any], *, limit: int, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None] | Refused:
    """A page of the review queue, strongest match first, and the cursor of the next page (None at the end)."""
    after = _decode_cursor(cursor) if cursor is not None else None
    if cursor is not None and after is None:
        return Refused(
            "bad_cursor", "cursor is not one this API gave (metadata.nextCursor of a previous page)"
        )
    where = ""
    params: list[Any] = []
    if after is not None:
        where = """WHERE q.match_weight < %s
                      OR (q.match_weight = %s AND (q.canonical_id_l, q.canonical_id_r) > (%s, %s))"""
        params = [after[0], after[0], after[1], after[2]]
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"""SELECT q.canonical_id_l AS "canonicalIdL", q.canonical_id_r AS "canonicalIdR",
                       q.match_weight AS "matchWeight", q.match_probability AS "matchProbability",
                       q.comparisons, q.run_id AS "runId",
                       ml.golden_id AS "goldenIdL", mr.golden_id AS "goldenIdR",
                       el.name AS "nameL", er.name AS "nameR"
                FROM golden.review_queue q
                LEFT JOIN golden.members ml ON ml.canonical_id = q.canonical_id_l
                LEFT JOIN golden.members mr ON mr.canonical_id = q.canonical_id_r
                LEFT JOIN canonical.entities el ON el.canonical_id = q.canonical_id_l
                LEFT JOIN canonical.entities er ON er.canonical_id = q.canonical_id_r
                {where}
                ORDER BY q.match_weight DESC, q.canonical_id_l, q.canonical_id_r
                LIMIT %s""",
            [*params, limit + 1],
        ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    next_cursor = (
        _encode_cursor(last["matchWeight"], last["canonicalIdL"], last["canonicalIdR"])
        if more and last
        else None
    )
    return rows, next_cursor


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: int
    kind: DecisionKind
    canonical_id_l: str
    canonical_id_r: str | None
    golden_id: str | None
    apart_from: list[str]
    decided_by: str
    decided_at: datetime
    note: str | None


def record_decision(
    conn: psycopg.Connection[Any],
    *,
    kind: DecisionKind,
    canonical_id: str,
    other_canonical_id: str | None,
    decided_by: str,
    note: str | None = None,
) -> Decision | Refused:
    """Record a steward's decision (in the caller's transaction). It takes effect at the next
    resolution: the engine gets it as a constraint and the store enforces it."""
    if kind == "move_out":
        return _move_out(conn, canonical_id, decided_by, note)
    if other_canonical_id is None:
        return Refused("same_record", f"a {kind} decision names two records: give other_canonical_id")
    if other_canonical_id == canonical_id:
        return Refused("same_record", "a pair needs two different records")
    unknown = _unknown(conn, [canonical_id, other_canonical_id])
    if unknown:
        return Refused("unknown_entity", f"no canonical entity {', '.join(map(repr, unknown))}")
    l_id, r_id = ordered(canonical_id, other_canonical_id)
    return _insert(conn, kind, l_id, r_id, None, [], decided_by, note)


def _move_out(
    conn: psycopg.Connection[Any], canonical_id: str, decided_by: str, note: str | None
) -> Decision | Refused:
    row = conn.execute(
        "SELECT golden_id FROM golden.members WHERE canonical_id = %s FOR SHARE", (canonical_id,)
    ).fetchone()
    if row is None:
        if _unknown(conn, [canonical_id]):
            return Refused("unknown_entity", f"no canonical entity {canonical_id!r}")
        return Refused(
            "not_resolved", f"{canonical_id!r} belongs to no golden entity yet: nothing to move it out of"
        )
    golden_id = row[0]
    others = [
        c
        for (c,) in conn.execute(
            "SELECT canonical_id FROM golden.members WHERE golden_id = %s AND canonical_id <> %s ORDER BY 1",
            (golden_id, canonical_id),
        ).fetchall()
    ]
    if not others:
        return Refused("nothing_to_move", f"{canonical_id!r} is the only member of {golden_id}")
    return _insert(conn, "move_out", canonical_id, None, golden_id, others, decided_by, note)


def _unknown(conn: psycopg.Connection[Any], ids: list[str]) -> list[str]:
    found = {
        c
        for (c,) in conn.execute(
            "SELECT canonical_id FROM canonical.entities WHERE canonical_id = ANY(%s)", (ids,)
        )
    }
    return [c for c in ids if c not in found]


def _insert(
    conn: psycopg.Connection[Any],
    kind: DecisionKind,
    l_id: str,
    r_id: str | None,
    golden_id: str | None,
    apart_from: list[str],
    decided_by: str,
    note: str | None,
) -> Decision:
    row = conn.execute(
        """INSERT INTO golden.decisions (kind, canonical_id_l, canonical_id_r, golden_id, apart_from, decided_by, note)
           VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING decision_id, decided_at""",
        (kind, l_id, r_id, golden_id, apart_from, decided_by, note),
    ).fetchone()
    assert row is not None  # INSERT … RETURNING always returns its row
    return Decision(row[0], kind, l_id, r_id, golden_id, apart_from, decided_by, row[1], note)
