"""`ingest.files`: the registry of what arrived in the raw bucket and what became of it.

Key + ETag identify a file version: the same object delivered twice (queue and listing, or a
restarted moto re-uploading samples) is recorded once; a changed object under the same key is a new
row and new work. Status moves pending → queued → loading → loaded | failed; files we will not
process are recorded as skipped with the reason; a queued file whose run was lost goes back to pending,
and `pipeline reprocess` puts a finished file back to pending as its next attempt; a replay takes a
loaded file straight to loading as its next attempt. Every one of these transitions is a function of
this module.

A file is `loading` only while its loader's session holds the file's advisory lock (taken before the
file becomes `loading`, let go after its outcome is committed; PostgreSQL drops it when the session
ends, however the loader died). A `loading` file whose lock nobody holds has lost its loader: it is
failed as an infrastructure failure and retried with backoff, a bounded number of times; data failures
wait for a person. Every attempt's ending is kept in `ingest.file_attempts` (a trigger of migration 0009). Dagster-free: the sensor, the ingest asset, the CLI and the
REST app share it.
"""

from __future__ import annotations

import contextlib
import hashlib
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb

from resources.clients.postgres import scalar
from resources.contract import IN_FLIGHT_STATUSES, FileStatus
from resources.sources.catalogue import get_sources
from resources.sources.compiled import SourceSystem


@dataclass(frozen=True, slots=True)
class FileObject:
    """An object seen in the raw bucket (from an S3 event or a listing)."""

    key: str
    etag: str
    size: int
    last_modified: datetime | None = None

    @staticmethod
    def normalise_etag(etag: str) -> str:
        # Listings quote ETags, event notifications do not.
        return etag.strip().strip('"')


@dataclass(frozen=True, slots=True)
class Classification:
    source_system: SourceSystem | None
    skip_reason: str | None


def classify(key: str, size: int) -> Classification:
    """Which source system a key belongs to (its definition's prefixes), or why it will not be processed."""
    sources = get_sources()
    found = sources.of_key(key)
    if found is None:
        return Classification(None, f"unknown prefix: expected one of {', '.join(sources.prefixes)}")
    source = found.name
    if key.endswith("/"):
        return Classification(source, "folder marker, not a file")
    if not key.lower().endswith(found.suffixes):
        return Classification(source, f"unsupported extension: expected one of {', '.join(found.suffixes)}")
    if size == 0:
        return Classification(source, "empty file (0 bytes)")
    return Classification(source, None)


@dataclass(frozen=True, slots=True)
class FileRow:
    file_id: int
    s3_key: str
    etag: str
    size_bytes: int
    source_system: str | None
    status: str
    reason: str | None
    attempt: int
    launches: int
    batch_id: str | None
    run_id: str | None
    received: int | None
    inserted: int | None
    updated: int | None
    unchanged: int | None
    rejected: int | None
    duplicates: int | None
    superseded: int | None
    moved_back: int | None
    seconds: float | None
    discovered_at: datetime
    finished_at: datetime | None
    last_modified: datetime | None  # S3 LastModified (or the event's time), as registered
    source_file_at: datetime | None  # the file's place in its source's history, set when it loads
    failure_kind: str | None = None  # 'data' (waits for a person) | 'infrastructure' (retried by itself)
    retries: int = 0  # automatic retries of this attempt series
    # why the current attempt started: None (arrival), 'reprocess', 'retry', 'release', 'replay'
    attempt_cause: str | None = None
    retired: int | None = None  # entities a snapshot retired
    # a person released the held snapshot: apply its retirements whatever their share
    retire_released: bool = False
    # its findings against its source's earlier loaded files (drift.Drift.as_json)
    drift: dict[str, Any] | None = None
    # per vocabulary, the coded values no entry matched: {"country": {"count": n, "examples": [...]}}
    unmapped: dict[str, Any] | None = None


_FILE_COLUMNS = ", ".join(FileRow.__slots__)


def _status_list(statuses: Sequence[FileStatus]) -> str:
    """A tuple of the contract's statuses as an SQL list: constants of ours, never input, written into the
    statement so the planner sees them as it sees the partial index's predicate."""
    return ", ".join(f"'{s}'" for s in statuses)


_IN_FLIGHT = _status_list(IN_FLIGHT_STATUSES)


def register_files(conn: psycopg.Connection, objects: Iterable[FileObject], via: str) -> list[FileRow]:
    """Record objects not seen before (by key + ETag); return the rows created now."""
    rows: list[tuple[Any, ...]] = []
    seen: set[tuple[str, str]] = set()
    for obj in objects:
        etag = FileObject.normalise_etag(obj.etag)
        if (obj.key, etag) in seen:
            continue
        seen.add((obj.key, etag))
        c = classify(obj.key, obj.size)
        status = "skipped" if c.skip_reason else "pending"
        rows.append((obj.key, etag, obj.size, obj.last_modified, c.source_system, status, c.skip_reason, via))
    if not rows:
        return []
    with conn.cursor(row_factory=class_row(FileRow)) as cur:
        cur.execute(
            f"""
            INSERT INTO ingest.files (s3_key, etag, size_bytes, last_modified, source_system, status, reason,
                                      discovered_via)
            SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::timestamptz[], %s::text[],
                                 %s::text[], %s::text[], %s::text[])
            ON CONFLICT (s3_key, etag) DO NOTHING
            RETURNING {_FILE_COLUMNS}
            """,
            [list(col) for col in zip(*rows, strict=True)],
        )
        return cur.fetchall()


@dataclass(frozen=True, slots=True)
class Batch:
    batch_id: str
    files: tuple[FileRow, ...]

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)


def batch_id_for(files: Sequence[FileRow]) -> str:
    """Deterministic for the same files, attempt and launch count; a re-batched file gets a new id
    (and so a new Dagster run key, which Dagster would otherwise skip as already requested)."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.file_id):
        h.update(f"{f.file_id}:{f.attempt}:{f.launches};".encode())
    return h.hexdigest()[:20]


def claim_batches(
    conn: psycopg.Connection, *, max_files: int, max_bytes: int, max_batches: int
) -> list[Batch]:
    """Move pending files into batches (queued), each bounded by file count and bytes.

    A file larger than max_bytes still gets a batch of its own. Files are taken oldest first.
    """
    with conn.cursor(row_factory=class_row(FileRow)) as cur:
        cur.execute(
            f"""SELECT {_FILE_COLUMNS} FROM ingest.files WHERE status = 'pending'
                ORDER BY file_id LIMIT %s FOR UPDATE SKIP LOCKED""",
            (max_files * max_batches,),
        )
        pending = cur.fetchall()
    batches: list[Batch] = []
    current: list[FileRow] = []
    current_bytes = 0
    for f in pending:
        if current and (len(current) >= max_files or current_bytes + f.size_bytes > max_bytes):
            batches.append(Batch(batch_id_for(current), tuple(current)))
            current, current_bytes = [], 0
            if len(batches) >= max_batches:
                break
        current.append(f)
        current_bytes += f.size_bytes
    if current and len(batches) < max_batches:
        batches.append(Batch(batch_id_for(current), tuple(current)))
    for b in batches:
        conn.execute(
            """UPDATE ingest.files SET status = 'queued', batch_id = %s, queued_at = now(),
                      launches = launches + 1
               WHERE file_id = ANY(%s)""",
            (b.batch_id, [f.file_id for f in b.files]),
        )
    return batches


def get_files(conn: psycopg.Connection, file_ids: Sequence[int]) -> list[FileRow]:
    with conn.cursor(row_factory=class_row(FileRow)) as cur:
        cur.execute(
            f"SELECT {_FILE_COLUMNS} FROM ingest.files WHERE file_id = ANY(%s) ORDER BY file_id",
            (list(file_ids),),
        )
        return cur.fetchall()


def list_files(
    conn: psycopg.Connection,
    *,
    status: str | None = None,
    source: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
    after_id: int | None = None,
) -> list[FileRow]:
    """Newest first; `after_id` pages (pass the last file_id of the previous page)."""
    with conn.cursor(row_factory=class_row(FileRow)) as cur:
        cur.execute(
            f"""SELECT {_FILE_COLUMNS} FROM ingest.files
                WHERE (%(status)s::text IS NULL OR status = %(status)s)
                  AND (%(source)s::text IS NULL OR source_system = %(source)s)
                  AND (%(since)s::timestamptz IS NULL OR discovered_at >= %(since)s)
                  AND (%(after)s::bigint IS NULL OR file_id < %(after)s)
                ORDER BY file_id DESC LIMIT %(limit)s""",
            {"status": status, "source": source, "since": since, "after": after_id, "limit": limit},
        )
        return cur.fetchall()


def latest_for_key(conn: psycopg.Connection, key: str) -> FileRow | None:
    with conn.cursor(row_factory=class_row(FileRow)) as cur:
        cur.execute(
            f"SELECT {_FILE_COLUMNS} FROM ingest.files WHERE s3_key = %s ORDER BY file_id DESC LIMIT 1",
            (key,),
        )
        return cur.fetchone()


class ReprocessError(LookupError):
    """The key is unknown, or its latest version is still being processed."""


def request_reprocess(conn: psycopg.Connection, key: str) -> FileRow:
    """Run the latest version of a key again on purpose: next attempt, back to pending, a new series of
    automatic retries. A `loading` file whose loader is gone is failed first, so it can be."""
    fail_lost_loaders(conn)
    row = _latest(conn, key)
    out = _to_next_attempt(conn, row.file_id, "reprocess", f"status NOT IN ({_IN_FLIGHT})", released=False)
    if out is None:
        busy = latest_for_key(conn, key) or row
        raise ReprocessError(f"{key!r} is {busy.status} (batch {busy.batch_id}); wait for it to finish")
    return out


def _latest(conn: psycopg.Connection, key: str) -> FileRow:
    row = latest_for_key(conn, key)
    if row is None:
        raise ReprocessError(f"no file with key {key!r} has been recorded")
    return row


def _to_next_attempt(
    conn: psycopg.Connection, file_id: int, cause: str, allowed: str, *, released: bool
) -> FileRow | None:
    """→ pending as the next attempt (a new series of automatic retries) while `allowed` (an SQL condition
    of ours, never input) holds; None when it does not."""
    with conn.cursor(row_factory=class_row(FileRow)) as cur:
        cur.execute(
            f"""UPDATE ingest.files
                SET status = 'pending', attempt = attempt + 1, retries = 0, attempt_cause = %s,
                    launches = 0, reason = NULL, failure_kind = NULL, batch_id = NULL, retire_released = %s,
                    queued_at = NULL, started_at = NULL, finished_at = NULL
                WHERE file_id = %s AND {allowed} RETURNING {_FILE_COLUMNS}""",
            (cause, released, file_id),
        )
        return cur.fetchone()


def request_release(conn: psycopg.Connection, key: str) -> FileRow:
    """Apply a held snapshot after all: its next attempt retires what it lacks whatever the share. Only
    the latest version of the key, and only while it is held (ReprocessError otherwise); no commit."""
    row = _latest(conn, key)
    out = _to_next_attempt(conn, row.file_id, "release", "status = 'held'", released=True)
    if out is None:
        raise ReprocessError(f"{key!r} is {row.status}, not held: there is nothing to release")
    return out


def rejected_sample(
    conn: psycopg.Connection, file_id: int, attempt: int, limit: int = 20
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """SELECT record_index, source_id, reasons, record FROM ingest.rejected_records
               WHERE file_id = %s AND attempt = %s ORDER BY record_index LIMIT %s""",
            (file_id, attempt, limit),
        )
        return cur.fetchall()


# ---- the transitions of a file's load (the runner and the landing sensor call these) ------------------

# Counts a loaded file records (FileLoadResult's fields of the same names).
LOADED_COUNTS = (
    "received",
    "inserted",
    "updated",
    "unchanged",
    "rejected",
    "duplicates",
    "superseded",
    "moved_back",
    "retired",
    "relationships",
    "time_series",
    "seconds",
)


# The loader's lock on a file (migration 0009 names the key; `ingest.loader_alive` tests it).
_TAKE_LOADER_LOCK = "SELECT pg_try_advisory_lock(727002, ingest.loader_lock_key(%s))"
_DROP_LOADER_LOCK = "SELECT pg_advisory_unlock(727002, ingest.loader_lock_key(%s))"
LOADER_LOST = "its loader ended without finishing; nothing of it landed"

FailureKind = Literal["data", "infrastructure"]


def start_loading(conn: psycopg.Connection, file_id: int, run_id: str) -> str | None:
    """pending | queued → loading for this run, holding the file's loader lock; commits.

    Also taken again by the same run after its loader was lost (a retried step: `loading`, or failed
    for an infrastructure reason and not yet retried). Returns None when this run now loads the file
    (call `finish_loading` once its outcome is committed), else why not (another run has or had it)."""
    _notice_a_dead_client_soon(conn)
    if not scalar(conn, _TAKE_LOADER_LOCK, (file_id,)):
        conn.commit()
        return "its loader lock is held by another session (a live loader has it)"
    claimed = conn.execute(
        """UPDATE ingest.files SET status = 'loading', run_id = %(run)s, started_at = now(), reason = NULL,
                  failure_kind = NULL, finished_at = NULL, drift = NULL
           WHERE file_id = %(id)s
             AND (status IN ('pending', 'queued') OR (status = 'loading' AND run_id = %(run)s)
                  OR (status = 'failed' AND failure_kind = 'infrastructure' AND run_id = %(run)s))""",
        {"run": run_id, "id": file_id},
    ).rowcount
    row = (
        None
        if claimed
        else conn.execute("SELECT status, run_id FROM ingest.files WHERE file_id = %s", (file_id,)).fetchone()
    )
    conn.commit()
    if claimed:
        return None
    finish_loading(conn, file_id)
    status, by = row if row else ("gone", None)
    return f"already {status}" + (f" by run {by}" if by else "") + " (not pending or queued any more)"


# The server ends a dead loader's session (and so drops its lock) when it notices the client is gone:
# at once for a killed process on the same host, but a vanished host or task sends nothing, so the
# session probes its client: TCP keepalives while it waits for the client (idle 30 s, then 3 probes 10 s
# apart), and a check of the socket every 10 s while a statement runs. Settings a server refuses (the
# socket check needs kernel support some platforms, Windows among them, lack) keep their defaults.
_CLIENT_WATCH = (
    "SET tcp_keepalives_idle = 30",
    "SET tcp_keepalives_interval = 10",
    "SET tcp_keepalives_count = 3",
    "SET client_connection_check_interval = '10s'",
)


_WATCHED: weakref.WeakSet[psycopg.Connection] = weakref.WeakSet()  # sessions already set up


def _notice_a_dead_client_soon(conn: psycopg.Connection) -> None:
    if conn in _WATCHED:
        return
    try:
        with conn.transaction():
            conn.execute("; ".join(_CLIENT_WATCH))
    except (psycopg.errors.InvalidParameterValue, psycopg.errors.CantChangeRuntimeParam):
        for statement in _CLIENT_WATCH:  # one by one: keep what this server accepts
            with (
                contextlib.suppress(
                    psycopg.errors.InvalidParameterValue, psycopg.errors.CantChangeRuntimeParam
                ),
                conn.transaction(),
            ):
                conn.execute(statement)
    conn.commit()
    _WATCHED.add(conn)


def finish_loading(conn: psycopg.Connection, file_id: int) -> None:
    """Let go of the file's loader lock (its outcome is committed, or it was never ours). A connection
    that broke has lost the lock with its session already."""
    if conn.closed or conn.broken:
        return
    try:
        conn.execute(_DROP_LOADER_LOCK, (file_id,))
        conn.commit()
    except psycopg.OperationalError:
        pass  # the session is gone, and the lock with it


def mark_loaded(
    conn: psycopg.Connection,
    file_id: int,
    counts: Mapping[str, Any],
    source_file_at: datetime,
    drift: Mapping[str, Any] | None = None,
) -> None:
    """loading → loaded with the file's counts, drift findings and unmapped values (`counts["unmapped"]`),
    inside the file's own transaction (no commit)."""
    conn.execute(
        f"""UPDATE ingest.files SET status = 'loaded', reason = NULL, failure_kind = NULL, source_file_at = %s,
                   finished_at = now(), drift = %s, {", ".join(f"{c} = %s" for c in LOADED_COUNTS)}, unmapped = %s
            WHERE file_id = %s""",
        (
            source_file_at,
            Jsonb(drift) if drift else None,
            *(counts[c] for c in LOADED_COUNTS),
            Jsonb(counts.get("unmapped") or {}),
            file_id,
        ),
    )


def mark_failed(
    conn: psycopg.Connection,
    file_id: int,
    reason: str,
    *,
    kind: FailureKind = "data",
    from_status: str | None = None,
    drift: Mapping[str, Any] | None = None,
) -> bool:
    """→ failed with the reason and its kind; nothing of the file landed, so no counts (no commit); `drift`:
    the findings that failed it, if its shape did. With `from_status`, only from that status. Returns
    whether the row changed."""
    return (
        conn.execute(
            f"""UPDATE ingest.files SET status = 'failed', reason = %s, failure_kind = %s, finished_at = now(),
                   drift = %s, {", ".join(f"{c} = NULL" for c in LOADED_COUNTS)}, unmapped = NULL
            WHERE file_id = %s AND (%s::text IS NULL OR status = %s)""",
            (reason[:2000], kind, Jsonb(drift) if drift else None, file_id, from_status, from_status),
        ).rowcount
        > 0
    )


def mark_held(conn: psycopg.Connection, file_id: int, reason: str) -> None:
    """loading → held: a snapshot that would retire too much of its source; nothing of it landed, so no
    counts (no commit). It waits for `request_release`."""
    conn.execute(
        f"""UPDATE ingest.files SET status = 'held', reason = %s, failure_kind = NULL, finished_at = now(),
               {", ".join(f"{c} = NULL" for c in LOADED_COUNTS)}
            WHERE file_id = %s""",
        (reason[:2000], file_id),
    )


def fail_lost_loaders(conn: psycopg.Connection) -> list[FileRow]:
    """`loading` files whose loader's session is gone → failed (infrastructure); no commit.

    The lock is tested in the UPDATE itself, against the newest row: a file whose loader finished (or
    whose same run took it again) in the meantime is left as it is."""
    with conn.cursor(row_factory=class_row(FileRow)) as cur:
        cur.execute(
            f"""UPDATE ingest.files SET status = 'failed', reason = %s, failure_kind = 'infrastructure',
                       finished_at = now(), {", ".join(f"{c} = NULL" for c in LOADED_COUNTS)}, unmapped = NULL
                WHERE status = 'loading' AND NOT ingest.loader_alive(file_id)
                RETURNING {_FILE_COLUMNS}""",
            (LOADER_LOST,),
        )
        return cur.fetchall()


def retry_due(conn: psycopg.Connection, *, max_attempts: int, backoff_seconds: float) -> list[FileRow]:
    """Infrastructure failures whose backoff has passed → pending as the next attempt (no commit).

    A series of attempts (the file's arrival or a reprocess, then its automatic retries) has at most
    `max_attempts`; the n-th retry waits backoff_seconds × 2^(n-1) after the failure."""
    with conn.cursor(row_factory=class_row(FileRow)) as cur:
        cur.execute(
            f"""UPDATE ingest.files
                SET status = 'pending', attempt = attempt + 1, retries = retries + 1, attempt_cause = 'retry',
                    launches = 0, reason = NULL, failure_kind = NULL, batch_id = NULL, queued_at = NULL,
                    started_at = NULL, finished_at = NULL
                WHERE status = 'failed' AND failure_kind = 'infrastructure' AND retries + 1 < %(max)s
                  AND finished_at <= now() - make_interval(secs => %(base)s * power(2, retries))
                RETURNING {_FILE_COLUMNS}""",
            {"max": max_attempts, "base": backoff_seconds},
        )
        return cur.fetchall()


def runs_with_lost_loaders(conn: psycopg.Connection, *, within_seconds: float) -> list[str]:
    """Runs whose loader of some file was found gone in the last `within_seconds`."""
    rows = conn.execute(
        """SELECT DISTINCT run_id FROM ingest.file_attempts
           WHERE failure_kind = 'infrastructure' AND reason = %s AND run_id IS NOT NULL
             AND finished_at > now() - make_interval(secs => %s)""",
        (LOADER_LOST, within_seconds),
    ).fetchall()
    return sorted(r[0] for r in rows)


@dataclass(frozen=True, slots=True)
class AttemptRow:
    attempt: int
    cause: str | None
    run_id: str | None
    started_at: datetime | None
    finished_at: datetime
    outcome: str
    failure_kind: str | None
    reason: str | None


def attempts_of(conn: psycopg.Connection, file_id: int) -> list[AttemptRow]:
    """Every ended attempt of a file, oldest first: its history."""
    with conn.cursor(row_factory=class_row(AttemptRow)) as cur:
        cur.execute(
            f"""SELECT {", ".join(f.name for f in fields(AttemptRow))} FROM ingest.file_attempts
                WHERE file_id = %s ORDER BY file_attempt_id""",
            (file_id,),
        )
        return cur.fetchall()


@dataclass(frozen=True, slots=True)
class QueuedFile:
    file_id: int
    s3_key: str
    batch_id: str | None
    launches: int
    age_seconds: float  # since it was queued


def queued_files(conn: psycopg.Connection) -> list[QueuedFile]:
    """Every queued file and how long ago it was queued: the landing sensor releases or fails those whose
    run ended (or never started) without reaching them."""
    rows = conn.execute(
        """SELECT file_id, s3_key, batch_id, launches, extract(epoch FROM now() - queued_at) AS age
           FROM ingest.files WHERE status = 'queued'"""
    ).fetchall()
    return [
        QueuedFile(file_id, key, batch_id, launches, float(age or 0))
        for file_id, key, batch_id, launches, age in rows
    ]


def batches_in_flight(conn: psycopg.Connection) -> int:
    """How many batches runs hold (files queued or loading): the landing sensor launches up to its bound."""
    row = conn.execute(
        f"SELECT count(DISTINCT batch_id) FROM ingest.files WHERE status IN ({_IN_FLIGHT})"
    ).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True, slots=True)
class NewestLoaded:
    arrived: datetime | None  # the newest loaded file's LastModified (else when it was discovered)
    age_hours: float | None  # None: no file is loaded


def newest_loaded(conn: psycopg.Connection) -> NewestLoaded:
    """When the newest loaded file arrived, and how long ago: the ingest freshness check."""
    row = conn.execute(
        """SELECT max(coalesce(last_modified, discovered_at)),
                  extract(epoch FROM now() - max(coalesce(last_modified, discovered_at))) / 3600
           FROM ingest.files WHERE status = 'loaded'"""
    ).fetchone()
    arrived, age = row if row else (None, None)
    return NewestLoaded(arrived, float(age) if age is not None else None)


def release_to_pending(conn: psycopg.Connection, file_id: int) -> bool:
    """queued → pending: its run was never launched, so a new batch takes it (no commit)."""
    return (
        conn.execute(
            "UPDATE ingest.files SET status = 'pending', batch_id = NULL, queued_at = NULL "
            "WHERE file_id = %s AND status = 'queued'",
            (file_id,),
        ).rowcount
        > 0
    )


def source_summary(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    """Per source system: files by status and the newest file's age (hours), for the raw-files asset."""
    rows = conn.execute(
        """SELECT coalesce(source_system, 'unknown'), status, count(*),
                  extract(epoch FROM now() - max(coalesce(last_modified, discovered_at))) / 3600
           FROM ingest.files GROUP BY 1, 2 ORDER BY 1, 2"""
    ).fetchall()
    out: dict[str, dict[str, Any]] = {}
    for source, status, count, age in rows:
        entry = out.setdefault(source, {"files": 0, "newest_file_age_hours": None})
        entry[status] = int(count)
        entry["files"] += int(count)
        if age is not None:
            hours = round(float(age), 2)
            previous = entry["newest_file_age_hours"]
            entry["newest_file_age_hours"] = hours if previous is None else min(previous, hours)
    return out


# ---- replay: the current definitions applied again to a source's loaded files ---------------------------


def loaded_in_source_order(
    conn: psycopg.Connection, source: str, *, since: datetime | None = None
) -> list[FileRow]:
    """A source's loaded files, oldest first in its history (the file's time, then registration order:
    the order the merge's claim compares); `since`: only files whose time is at or after it."""
    with conn.cursor(row_factory=class_row(FileRow)) as cur:
        cur.execute(
            f"""SELECT {_FILE_COLUMNS} FROM ingest.files
                WHERE source_system = %(source)s AND status = 'loaded'
                  AND (%(since)s::timestamptz IS NULL
                       OR coalesce(source_file_at, last_modified, discovered_at) >= %(since)s)
                ORDER BY coalesce(source_file_at, last_modified, discovered_at), file_id""",
            {"source": source, "since": since},
        )
        return cur.fetchall()


def start_replay(conn: psycopg.Connection, file_id: int, run_id: str, *, attempt: int) -> str | None:
    """loaded → loading as attempt `attempt` (cause 'replay') for this run, holding the file's loader
    lock; commits. Only while the file is still loaded at the attempt before (as the replay listed it):
    one that another run or a reprocess took since is theirs. Returns None when this run now loads the
    file (call `finish_loading` once its outcome is committed), else why not."""
    _notice_a_dead_client_soon(conn)
    if not scalar(conn, _TAKE_LOADER_LOCK, (file_id,)):
        conn.commit()
        return "its loader lock is held by another session (a live loader has it)"
    claimed = conn.execute(
        """UPDATE ingest.files
           SET status = 'loading', attempt = %(attempt)s, retries = 0, attempt_cause = 'replay',
               launches = 0, run_id = %(run)s, batch_id = NULL, queued_at = NULL, started_at = now(),
               reason = NULL, failure_kind = NULL, finished_at = NULL
           WHERE file_id = %(id)s AND status = 'loaded' AND attempt = %(attempt)s - 1""",
        {"run": run_id, "id": file_id, "attempt": attempt},
    ).rowcount
    row = (
        None
        if claimed
        else conn.execute(
            "SELECT status, attempt FROM ingest.files WHERE file_id = %s", (file_id,)
        ).fetchone()
    )
    conn.commit()
    if claimed:
        return None
    finish_loading(conn, file_id)
    status, now_at = row if row else ("gone", None)
    return f"now {status} at attempt {now_at} (not loaded at attempt {attempt - 1} any more)"
