"""The golden store's writer: one resolution in one transaction (psycopg, dagster-free, splink-free).

`write_resolution` takes what the matching engine produced (scored pairs, a clustering of every record
it resolved, the review-band pairs, the model version) and:

1. takes the resolution lock (one writer at a time) and records the run;
2. makes the clustering obey the steward decisions (`decisions.enforce`);
3. reads the previous membership (a full run: all of it; an incremental run: the golden entities its
   records belonged to, whose other members keep their previous grouping) and gives ids (`ids.assign_ids`);
4. rebuilds the golden records that need it: those whose members changed, whose members' content
   changed since their record was built (fingerprints), or that were built under other survivorship
   rules. A new model alone rebuilds nothing: survivorship does not depend on it;
5. writes membership, records, retirements, history and pairs through COPY into staging tables, each
   merged in one statement, and finishes the run with its counts.

Writing the same clustering again changes no id, writes no history and rebuilds no record.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import orjson
import psycopg
from psycopg.types.json import Jsonb

from resources.clients.postgres import scalar
from resources.golden import store_sql as sql
from resources.golden.decisions import Constraints, Enforced, Link, enforce, ordered
from resources.golden.ids import Assignment, Move, assign_ids, number_of
from resources.golden.survivorship import (
    ATTRIBUTE_FIELDS,
    COLUMN_FIELDS,
    GoldenRecord,
    Member,
    SurvivorshipRules,
    build_record,
    compile_rules,
)
from resources.ingest.copy_text import NULL, text_field
from resources.sources.catalogue import Sources, get_sources

Mode = Literal["full", "incremental"]

# Members per fetch while golden records are rebuilt: what the client holds at once.
REBUILD_BATCH = 50_000
_RECORD_FIELDS = frozenset(COLUMN_FIELDS + ATTRIBUTE_FIELDS)


@dataclass(frozen=True, slots=True)
class ScoredPair:
    """A pair the model scored. `comparisons`: each comparison's match weight (name, city, ...)."""

    canonical_id_l: str
    canonical_id_r: str
    match_weight: float
    match_probability: float
    comparisons: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredModel:
    model_version: str
    parameters: dict[str, Any]
    trained_at: datetime


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_id: str
    mode: Mode
    entities: int
    clusters: int
    pairs: int
    review_pairs: int
    ids_created: int
    ids_retired: int
    members_moved: int
    records_written: int
    conflicts: tuple[Link, ...]  # steward decisions that contradict each other (left unenforced)


def source_priorities(sources: Sources | None = None) -> dict[str, int]:
    """Each source's survivorship priority, from its definition (higher wins)."""
    return {name: d.priority for name, d in (sources or get_sources()).definitions.items()}


def model_version_of(parameters: Mapping[str, Any]) -> str:
    """A model's version: the sha256 of its parameters as canonical JSON (same model, same version)."""
    text = json.dumps(parameters, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def save_model(
    conn: psycopg.Connection[Any],
    parameters: Mapping[str, Any],
    *,
    trained_at: datetime | None = None,
    activate: bool = True,
) -> str:
    """Store a trained model (once per version) and, by default, make it the active one."""
    version = model_version_of(parameters)
    with conn.transaction():
        conn.execute(sql.UPSERT_MODEL, (version, Jsonb(dict(parameters)), trained_at or datetime.now(UTC)))
        if activate:
            conn.execute(sql.DEACTIVATE_MODELS, (version,))
            conn.execute(sql.ACTIVATE_MODEL, (version,))
    return version


def active_model(conn: psycopg.Connection[Any]) -> StoredModel | None:
    row = conn.execute(sql.ACTIVE_MODEL).fetchone()
    return StoredModel(row[0], row[1], row[2]) if row else None


def stored_model(conn: psycopg.Connection[Any], version: str) -> StoredModel | None:
    row = conn.execute(sql.MODEL, (version,)).fetchone()
    return StoredModel(row[0], row[1], row[2]) if row else None


def steward_constraints(conn: psycopg.Connection[Any]) -> Constraints:
    """The decisions in force (the latest per pair) as must-link and cannot-link pairs for the engine."""
    must: list[Link] = []
    cannot: list[Link] = []
    for l_id, r_id, decision_id, kind, by, leaving in conn.execute(sql.DECISIONS_IN_FORCE).fetchall():
        link = Link(l_id, r_id, decision_id, kind, by, leaving)
        (must if kind == "same" else cannot).append(link)
    return Constraints(tuple(must), tuple(cannot))


def write_resolution(
    conn: psycopg.Connection[Any],
    *,
    run_id: str,
    mode: Mode,
    clustering: Mapping[str, Hashable],
    pairs: Iterable[ScoredPair],
    review_pairs: Iterable[tuple[str, str]],
    model_version: str | None,
    priorities: Mapping[str, int],
    rules: SurvivorshipRules | None = None,
    started_at: datetime | None = None,
    timings: dict[str, float] | None = None,
) -> RunSummary:
    """Write one resolution (see the module doc). `conn` must not be inside a transaction; the whole
    write commits or nothing does. `priorities`: source name -> its definition's priority
    (`source_priorities()`). `timings`, when given, receives the wall seconds of each step."""
    clock = _Clock(timings)
    rules = rules or SurvivorshipRules()
    rules_version = rules.version(priorities)
    review = {ordered(a, b) for a, b in review_pairs}
    pair_list = [_ordered_pair(p) for p in pairs]
    with conn.transaction():
        conn.execute(sql.LOCK, (sql.RESOLUTION_LOCK,))
        conn.execute(sql.INSERT_RUN, (run_id, mode, model_version, started_at))
        enforced = enforce(clustering, steward_constraints(conn))
        clock.lap("enforce")
        scope = enforced.clustering
        if mode == "full":
            previous = dict(conn.execute(sql.ALL_MEMBERS).fetchall())
            full = scope
        else:
            _stage_scope(conn, scope.keys())
            previous = dict(conn.execute(sql.MEMBERS_OF_SCOPE).fetchall())
            # Members of the touched golden entities that the engine did not resolve again keep their
            # previous grouping.
            full = {**{c: ("kept", g) for c, g in previous.items() if c not in scope}, **scope}
        next_free = int(scalar(conn, sql.NEXT_NUMBER))
        assignment = assign_ids(previous, full, next_free)
        if assignment.created:
            conn.execute(sql.ADVANCE_SEQUENCE, (assignment.next_free - 1,))
        clock.lap("assign_ids")

        dirty = set(assignment.changed) | set(assignment.created)
        kept_ids = sorted(set(assignment.membership.values()) - dirty)
        if mode == "full":
            dirty |= {g for (g,) in conn.execute(sql.CONTENT_CHANGED).fetchall()}
            dirty |= {g for (g,) in conn.execute(sql.RULES_CHANGED, (rules_version,)).fetchall()}
        elif kept_ids:
            dirty |= {g for (g,) in conn.execute(sql.CONTENT_CHANGED_IN, (kept_ids,)).fetchall()}
            dirty |= {g for (g,) in conn.execute(sql.RULES_CHANGED_IN, (kept_ids, rules_version)).fetchall()}
        dirty -= {r.golden_id for r in assignment.retired}
        clock.lap("find_dirty")

        records = _rebuild(conn, assignment, dirty, priorities, rules, rules_version, run_id, clock)
        removed = [c for m in assignment.moves if m.kind == "removed" for c in m.members]
        if removed:
            conn.execute(sql.DELETE_MEMBERS, (removed,))
        for r in assignment.retired:
            conn.execute(sql.RETIRE, (r.successor_id, run_id, r.golden_id))
        _write_history(conn, run_id, assignment, previous, pair_list, enforced)
        clock.lap("retire_and_history")
        written_pairs = _write_pairs(conn, mode, run_id, pair_list, review)
        clock.lap("write_pairs")
        summary = RunSummary(
            run_id=run_id,
            mode=mode,
            entities=len(scope),
            clusters=len(set(scope.values())),
            pairs=written_pairs,
            review_pairs=sum(1 for p in pair_list if (p.canonical_id_l, p.canonical_id_r) in review),
            ids_created=len(assignment.created),
            ids_retired=len(assignment.retired),
            members_moved=sum(len(m.members) for m in assignment.moves if m.kind in ("merge", "split")),
            records_written=records,
            conflicts=enforced.conflicts,
        )
        conn.execute(
            sql.FINISH_RUN,
            (
                summary.entities,
                summary.clusters,
                summary.pairs,
                summary.review_pairs,
                summary.ids_created,
                summary.ids_retired,
                summary.members_moved,
                summary.records_written,
                run_id,
            ),
        )
    clock.lap("commit")
    return summary


class _Clock:
    """Wall seconds per step into a caller's dict (nothing when it gives none)."""

    def __init__(self, into: dict[str, float] | None) -> None:
        self.into = into
        self.last = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        if self.into is not None:
            self.into[step] = self.into.get(step, 0.0) + now - self.last
        self.last = now


def _ordered_pair(p: ScoredPair) -> ScoredPair:
    if p.canonical_id_l < p.canonical_id_r:
        return p
    return ScoredPair(p.canonical_id_r, p.canonical_id_l, p.match_weight, p.match_probability, p.comparisons)


def _stage_scope(conn: psycopg.Connection[Any], ids: Collection[str]) -> None:
    conn.execute(sql.CREATE_SCOPE)
    with conn.cursor() as cur, cur.copy(sql.COPY_SCOPE) as copy:
        for cid in ids:
            copy.write_row((cid,))


def _rebuild(
    conn: psycopg.Connection[Any],
    assignment: Assignment,
    dirty: set[str],
    priorities: Mapping[str, int],
    rules: SurvivorshipRules,
    rules_version: str,
    run_id: str,
    clock: _Clock,
) -> int:
    """Build and write the golden records of `dirty`, and their members' rows (membership and the
    fingerprints the records were built from). Returns the records written."""
    if not dirty:
        return 0
    conn.execute(sql.CREATE_REBUILD)
    with conn.cursor() as cur, cur.copy(sql.COPY_REBUILD) as copy:
        for cid, gid in assignment.membership.items():
            if gid in dirty:
                copy.write_row((cid, gid))
    conn.execute(sql.ANALYZE_REBUILD)
    # The members' rows and the fingerprints their records are built from, without a trip through Python.
    conn.execute(sql.CREATE_STAGED_MEMBERS)
    conn.execute(sql.STAGE_REBUILT_MEMBERS)
    conn.execute(sql.MERGE_MEMBERS, {"run": run_id})
    clock.lap("rebuild_members")

    # The members stream in golden id order, a batch at a time; each golden entity complete in the
    # client is built and copied between two fetches (the cursor stays open across the COPYs), so
    # the client holds one batch, not the whole rebuild.
    plan = compile_rules(rules)
    conn.execute(sql.CREATE_STAGED_RECORDS)
    written = 0
    pending: list[Member] = []
    pending_gid: str | None = None
    with conn.cursor(name="golden_rebuild_members") as members, conn.cursor() as cur:
        members.execute(sql.REBUILD_MEMBERS)
        while True:
            batch = members.fetchmany(REBUILD_BATCH)
            rows: list[str] = []
            for gid, cid, source, name, industry, revenue, employees, attrs, *times_and_status in batch:
                if gid != pending_gid:
                    if pending_gid is not None:
                        rows.append(
                            _record_row(pending_gid, len(pending), build_record(pending, priorities, plan))
                        )
                    pending, pending_gid = [], gid
                # The rest of the row (changed, file_at, file_id, status) is Member's tail, in its order.
                pending.append(
                    Member(
                        cid, source, name, industry, revenue, employees, _attributes(attrs), *times_and_status
                    )
                )
            if not batch and pending_gid is not None:
                rows.append(_record_row(pending_gid, len(pending), build_record(pending, priorities, plan)))
            if rows:
                with cur.copy(sql.COPY_STAGED_RECORDS) as copy:
                    copy.write("".join(rows))
                written += len(rows)
            if not batch:
                break
    clock.lap("rebuild_build_records")
    conn.execute(sql.MERGE_RECORDS, {"rules": rules_version, "run": run_id})
    clock.lap("rebuild_write_records")
    return written


def _attributes(text: str | None) -> dict[str, Any]:
    """A member's attributes from their JSON text (orjson: several times the json module's speed; the
    json module for what orjson refuses, integers past 64 bits)."""
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = json.loads(text)
    return value if isinstance(value, dict) else {}


def _json_text(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _record_row(gid: str, member_count: int, record: GoldenRecord) -> str:
    """The record's row of golden_staged_records as a line of COPY text, formatted here: psycopg's
    per-value adaptation costs more than the record's survivorship."""
    v = record.values
    extra = {k: _json_value(x) for k, x in v.items() if k not in _RECORD_FIELDS}
    fields = [
        text_field(gid),
        str(number_of(gid)),
        str(member_count),
        *(_copy_value(v[c]) for c in sql.RECORD_COLUMNS),
        text_field(_json_text(extra)),
        text_field(_json_text(record.lineage)),
    ]
    return "\t".join(fields) + "\n"


def _copy_value(value: Any) -> str:
    if value is None:
        return NULL
    if isinstance(value, str):
        return text_field(value)
    return str(value)  # revenue (Decimal) and employees (int)


def _json_value(x: Any) -> Any:
    return str(x) if isinstance(x, Decimal) else x


def _write_history(
    conn: psycopg.Connection[Any],
    run_id: str,
    assignment: Assignment,
    previous: Mapping[str, str],
    pairs: Sequence[ScoredPair],
    enforced: Enforced,
) -> None:
    if not (assignment.moves or assignment.retired):
        return
    evidence = _Evidence(assignment, previous, pairs, enforced)
    with conn.cursor() as cur, cur.copy(sql.COPY_HISTORY) as copy:
        for m in assignment.moves:
            copy.write_row(
                (run_id, m.kind, m.golden_id, m.other_golden_id, list(m.members), _json_text(evidence.why(m)))
            )
        for r in assignment.retired:
            reason = {
                "rule": "max_overlap",
                "detail": "no cluster kept this id; most of its members went to the successor",
            }
            copy.write_row((run_id, "retired", r.golden_id, r.successor_id, [], _json_text(reason)))


class _Evidence:
    """Why members moved: the steward decision that moved them, else the strongest scored pair between
    them and the members they joined (merge) or left (split)."""

    def __init__(
        self,
        assignment: Assignment,
        previous: Mapping[str, str],
        pairs: Sequence[ScoredPair],
        enforced: Enforced,
    ) -> None:
        self.previous = previous
        moved = {c for m in assignment.moves if m.kind in ("merge", "split") for c in m.members}
        self.membership = assignment.membership
        self.by_id: dict[str, list[ScoredPair]] = {}
        for p in pairs:
            for cid in (p.canonical_id_l, p.canonical_id_r):
                if cid in moved:
                    self.by_id.setdefault(cid, []).append(p)
        self.decisions: dict[str, list[Link]] = {}
        for link in enforced.applied:
            for cid in (link.canonical_id_l, link.canonical_id_r):
                self.decisions.setdefault(cid, []).append(link)

    def why(self, m: Move) -> dict[str, Any]:
        if m.kind == "new":
            return {"rule": "first_seen", "detail": "records resolved for the first time"}
        if m.kind == "removed":
            return {
                "rule": "absent",
                "detail": "the records were not in the resolution: they no longer exist",
            }
        moved = set(m.members)
        for cid in m.members:
            for link in self.decisions.get(cid, []):
                other = link.canonical_id_r if link.canonical_id_l == cid else link.canonical_id_l
                if other not in moved:
                    return {
                        "steward": {
                            "decision_id": link.decision_id,
                            "kind": link.kind,
                            "decided_by": link.decided_by,
                        },
                        "pair": [link.canonical_id_l, link.canonical_id_r],
                    }
        # merge: the link to the members they joined; split: the best remaining link to those they left.
        target = m.golden_id if m.kind == "merge" else m.other_golden_id
        best: ScoredPair | None = None
        for cid in m.members:
            for p in self.by_id.get(cid, []):
                other = p.canonical_id_r if p.canonical_id_l == cid else p.canonical_id_l
                if other in moved:
                    continue
                if m.kind == "merge" and self.membership.get(other) != target:
                    continue
                if m.kind == "split" and self.previous.get(other) != target:
                    continue
                if best is None or p.match_weight > best.match_weight:
                    best = p
        rule = "linked" if m.kind == "merge" else "not_linked"
        if best is None:
            return {"rule": rule, "detail": "no scored pair between them in this resolution"}
        return {
            "rule": rule,
            "pair": [best.canonical_id_l, best.canonical_id_r],
            "match_weight": best.match_weight,
            "match_probability": best.match_probability,
        }


def _write_pairs(
    conn: psycopg.Connection[Any],
    mode: Mode,
    run_id: str,
    pairs: Sequence[ScoredPair],
    review: set[tuple[str, str]],
) -> int:
    if mode == "full":
        conn.execute(sql.DELETE_ALL_PAIRS)
    else:
        conn.execute(sql.DELETE_PAIRS_OF)
    if not pairs:
        return 0
    conn.execute(sql.CREATE_STAGED_PAIRS)
    with conn.cursor() as cur, cur.copy(sql.COPY_STAGED_PAIRS) as copy:
        for p in pairs:
            band = "review" if (p.canonical_id_l, p.canonical_id_r) in review else "auto"
            copy.write_row(
                (
                    p.canonical_id_l,
                    p.canonical_id_r,
                    float(p.match_weight),
                    float(p.match_probability),
                    band,
                    _json_text({k: float(v) for k, v in p.comparisons.items()}),
                    run_id,
                )
            )
    conn.execute(sql.MERGE_PAIRS)
    return len(pairs)
