"""One merge of what staging holds into the canonical tables, step by step: claim each entity's place in
its source's order, drop what must not be written, then write entities, parent links and metric points.

A load merges once per chunk (chunked) or once for the whole file; `Merger` keeps what one merge tells
the next (the lock held, the records that lost their claim) and adds each merge's counts to the file's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import psycopg

from resources.ingest import merge_sql as sql
from resources.ingest.copy_text import WORKER_COPY_PIECE, Spool
from resources.ingest.outcomes import ChunkedMergeRefused, FileLoadResult, FreshInsertRefused


class Claim(NamedTuple):
    """What CLAIM_SOURCE_ORDER answers about the staged records."""

    distinct: int  # canonical ids staged
    claimed: int  # ids whose claim won: not older than the store's position
    kept: int  # won with content the store does not hold: staging keeps them
    repeats: int  # ids an earlier chunk of this file claimed
    fresh: int  # kept ids never claimed before


class Merger:
    """The merges of one load. Used by one thread at a time: the worker while chunks are read, then the
    caller."""

    def __init__(
        self,
        out: FileLoadResult,
        *,
        file_id: int,
        source_key: str,
        run_id: str,
        transformation_version: str,
        fresh_inserts: bool,
    ) -> None:
        self.out = out
        self.params: dict[str, Any] = {
            "source_key": source_key,
            "run_id": run_id,
            "file_id": file_id,
            "xid": "0",
            "transformation_version": transformation_version,
        }
        self.fresh_inserts = fresh_inserts
        self.lost = 0  # records that lost their claim in earlier chunks (file_lost rows)
        self._analyzed = False
        self._lock: str | None = None

    def place_file_at(self, file_at: datetime) -> None:
        """The file's place in its source's history, which every claim compares."""
        self.params["file_at"] = file_at

    def merge(
        self,
        cur: psycopg.Cursor,
        staged: int,
        *,
        chunked: bool,
        metrics: Spool | None = None,
        metric_rows: int = 0,
    ) -> None:
        """Claim, then merge what staging holds (`staged` entity rows). Chunked: `metrics` holds the
        chunk's metric rows, COPYed into staging once the entities are merged; whole: staging already
        holds `metric_rows` of them."""
        self._take_load_lock(cur, chunked=chunked)
        if chunked and self.params["xid"] == "0":
            self._note_xid(cur)
        self._analyze_once(cur)
        if chunked and self.lost:
            self._refuse_an_earlier_loser(cur)
        claim = self._claim(cur)
        if claim.distinct < staged:  # the same id more than once (rare): keep the one claimed
            self._drop_duplicates(cur)
        if claim.claimed < claim.distinct:
            self._count_superseded(cur, claim, chunked=chunked)
        if claim.kept < claim.distinct:
            self._keep_only_writes(cur)
        self._write_entities(cur, claim)
        self._write_relationships(cur)
        if metrics is not None:
            metrics.copy_into(cur, sql.COPY_STAGING_METRICS, WORKER_COPY_PIECE)
            metric_rows = metrics.rows
        if metric_rows:
            self._write_metrics(cur)

    def _take_load_lock(self, cur: psycopg.Cursor, *, chunked: bool) -> None:
        lock = sql.CHUNKED_LOAD_LOCK if chunked else sql.WHOLE_LOAD_LOCK
        if self._lock != lock:
            cur.execute(lock)
            self._lock = lock

    def _note_xid(self, cur: psycopg.Cursor) -> None:
        row = cur.execute(sql.CURRENT_XID).fetchone()
        self.params["xid"] = row[0] if row else "0"

    def _analyze_once(self, cur: psycopg.Cursor) -> None:
        # Later chunks look like the first: their statistics would not change the plans.
        if not self._analyzed:
            cur.execute(sql.ANALYZE_STAGING_ENTITIES)
            self._analyzed = True

    def _refuse_an_earlier_loser(self, cur: psycopg.Cursor) -> None:
        if _one(cur.execute(sql.NAMES_AN_EARLIER_LOSER)):
            raise ChunkedMergeRefused("a record repeats one that lost its claim in an earlier chunk")

    def _claim(self, cur: psycopg.Cursor) -> Claim:
        claim = Claim(*cur.execute(sql.CLAIM_SOURCE_ORDER, self.params).fetchone())  # type: ignore[misc]  # the claim's statement returns one row
        if claim.repeats:
            raise ChunkedMergeRefused(
                f"{claim.repeats} canonical ids repeat ones merged from an earlier chunk"
            )
        return claim

    def _drop_duplicates(self, cur: psycopg.Cursor) -> None:
        cur.execute(sql.DROP_SUPERSEDED_DUPLICATES, self.params)
        self.out.duplicates += cur.rowcount

    def _count_superseded(self, cur: psycopg.Cursor, claim: Claim, *, chunked: bool) -> None:
        lost = claim.distinct - claim.claimed
        if chunked:
            if _one(cur.execute(sql.CHUNK_LOSERS, self.params)):
                raise ChunkedMergeRefused("a record lost its claim to an earlier chunk of the file")
            self.lost += lost
        self.out.superseded += lost

    def _keep_only_writes(self, cur: psycopg.Cursor) -> None:
        cur.execute(sql.ANALYZE_STAGING_KEEP)
        cur.execute(sql.KEEP_ONLY_WRITES)

    def _write_entities(self, cur: psycopg.Cursor, claim: Claim) -> None:
        plan = sql.entity_plan(claim.fresh if self.fresh_inserts else 0, claim.kept)
        if plan.insert_fresh is not None:
            self._insert_fresh(cur, plan.insert_fresh)
        if plan.upsert is not None:
            self._upsert(cur, plan.upsert)

    def _insert_fresh(self, cur: psycopg.Cursor, statement: str) -> None:
        try:
            self.out.inserted += cur.execute(statement, self.params).rowcount
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name != sql.ENTITIES_CANONICAL_ID_KEY:
                raise
            raise FreshInsertRefused(str(exc).splitlines()[0]) from exc

    def _upsert(self, cur: psycopg.Cursor, statement: str) -> None:
        row = cur.execute(statement, self.params).fetchone()
        assert row is not None
        self.out.inserted += row[0]
        self.out.updated += row[1]
        self.out.moved_back += row[2]

    def _write_relationships(self, cur: psycopg.Cursor) -> None:
        cur.execute(sql.CLOSE_CHANGED_PARENTS)
        cur.execute(sql.INSERT_PARENTS, self.params)
        self.out.relationships += cur.rowcount

    def _write_metrics(self, cur: psycopg.Cursor) -> None:
        # Held to the commit: see SUMMARY_LOCK for the order every load takes its locks in.
        cur.execute(sql.SUMMARY_LOCK)
        cur.execute(sql.ENSURE_PARTITIONS)
        cur.execute(sql.MERGE_METRICS, self.params)
        self.out.time_series += cur.rowcount


def _one(cur: psycopg.Cursor) -> Any:
    """The single value of a statement that answers one row of one column."""
    row = cur.fetchone()
    assert row is not None
    return row[0]
