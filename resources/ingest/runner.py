"""Ingest one registered file: stream it from S3, map, load, record the outcome. Dagster-free.

Each file is its own transaction: it lands whole (data, refused records, its `ingest.files` row, its
source's field profile) or not at all, and one bad file never blocks or half-loads another.

Every record's shape is profiled as it is mapped; once the file is read, before the commit, its shape is
compared with its source's earlier loaded files (`drift`): the findings are kept with the file, and a
file whose id or name is gone from (nearly) every record fails with that one finding instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

import psycopg
from botocore.exceptions import BotoCoreError, ClientError
from psycopg import errors as pg_errors
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from resources.canonical.coded import coding
from resources.canonical.mapping import map_record
from resources.canonical.model import CanonicalRecord, Refusal
from resources.ingest import defaults
from resources.ingest.defaults import MAX_RETIRE_SHARE
from resources.ingest.drift import Drift, ShapeRefused, compare, profile_after, profiler_for
from resources.ingest.loader import ChunkedMergeRefused, FileLoadResult, FreshInsertRefused, load_records
from resources.ingest.parsing import (
    NDJSON_SUFFIXES,
    TAIL_BYTES,
    DocumentInfo,
    MalformedLine,
    ParseError,
    iter_records,
)
from resources.ingest.registry import (
    FailureKind,
    FileRow,
    finish_loading,
    mark_failed,
    mark_held,
    mark_loaded,
    start_loading,
)
from resources.ingest.retire import SnapshotHeld, retire_absent
from resources.ingest.shapes import ShapeProfiler
from resources.ingest.source_profile import lock_source, read_profile, write_profile
from resources.sources.catalogue import get_sources
from resources.sources.compiled import CompiledSource

# Conflicts another transaction caused, gone once it commits: the file's transaction is run again.
TRANSIENT_ERRORS = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure, pg_errors.LockNotAvailable)
TRANSIENT_ATTEMPTS = 6
INTERRUPTED = "its run was interrupted while loading it; nothing of it landed"
# The attempt cause of a replay (resources/ingest/replay.py): the file was profiled when it first loaded.
REPLAY = "replay"
# S3 answers that say "not now" rather than "never": the file fails as an infrastructure failure and is
# retried by itself; any other refusal (access denied, no such bucket) waits for a person.
S3_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "500",
        "503",
    }
)


@dataclass(frozen=True, slots=True)
class FileOutcome:
    file: FileRow
    result: FileLoadResult | None = None
    error: str | None = None  # why the file failed; nothing of it landed
    failure_kind: FailureKind | None = None  # 'data' waits for a person; 'infrastructure' is retried
    skipped: str | None = None  # why this run did not touch the file (another run has it)
    drift: Drift | None = None  # its shape against its source's earlier loaded files
    held: str | None = None  # why the snapshot waits for a release; nothing of it landed

    @property
    def ok(self) -> bool:
        return self.error is None


class FileUnavailable(RuntimeError):
    """The object cannot be read as registered (gone, or changed since)."""


def _open_body(s3: Any, bucket: str, file: FileRow) -> IO[bytes]:
    try:
        # IfMatch: load exactly the version that was registered; a newer one is its own row.
        body: IO[bytes] = s3.get_object(Bucket=bucket, Key=file.s3_key, IfMatch=file.etag)["Body"]
        return body
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("PreconditionFailed", "412"):
            raise FileUnavailable(
                "the object changed after it was registered; its new version is "
                "registered and loaded separately"
            ) from exc
        if code in ("NoSuchKey", "404"):
            raise FileUnavailable("the object no longer exists in the bucket") from exc
        raise


def _read_tail(s3: Any, bucket: str, file: FileRow) -> bytes:
    """The object's last TAIL_BYTES (all of it when smaller), the registered version only."""
    tail: bytes = s3.get_object(
        Bucket=bucket, Key=file.s3_key, IfMatch=file.etag, Range=f"bytes=-{TAIL_BYTES}"
    )["Body"].read()
    return tail


def _compiled(source: str, change_time_keys: tuple[str, ...] | None) -> CompiledSource:
    # The source's definition, compiled once per file (ValueError for a source no definition has).
    compiled = get_sources().source(source)
    return compiled if change_time_keys is None else compiled.with_change_time(change_time_keys)


def _mapped(
    source: str | CompiledSource,
    records: Iterator[Any],
    change_time_keys: tuple[str, ...] | None,
    json_types_only: bool,
    profiler: ShapeProfiler | None = None,
) -> Iterator[CanonicalRecord | Refusal | MalformedLine]:
    compiled = _compiled(source, change_time_keys) if isinstance(source, str) else source
    coded = coding(compiled)  # its coded fields' reader and vocabularies, once per file too
    for record in records if profiler is None else profiler.watch(records):
        yield (
            record
            if isinstance(record, MalformedLine)
            else map_record(compiled, record, json_types_only=json_types_only, coded=coded)
        )


def file_time(file: FileRow, export_date: datetime | None) -> datetime:
    """The file's place in its source's history: the export's own date, else S3 LastModified, else
    when it was registered (README, "Order of truth")."""
    return export_date or file.last_modified or file.discovered_at


def early_file_time(file: FileRow, info: DocumentInfo) -> datetime | None:
    """`file_time` before the file's last record is read, when the document already tells its export
    date (or that it has none); None when only the end of the file can tell."""
    known, export_date = info.early()
    return file_time(file, export_date) if known else None


def ingest_file(
    conn: psycopg.Connection,
    s3: Any,
    bucket: str,
    file: FileRow,
    run_id: str,
    change_time_fields: Mapping[str, Sequence[str]] | None = None,
    *,
    max_retire_share: float = MAX_RETIRE_SHARE,
    start: Callable[[psycopg.Connection, int, str], str | None] = start_loading,
    drift_required_min_share: float = defaults.DRIFT_REQUIRED_MIN_SHARE,
) -> FileOutcome:
    """Load one file. `conn` must not be in a transaction; it is left idle.

    `change_time_fields` names, per source system, the record fields holding the record's own change
    time (default: each source's definition; an empty list turns record times off). `start` takes the
    file for this run under its loader lock, or says why not (`start_loading`: a pending or queued
    file; a replay takes a loaded one as `file`'s attempt).
    `max_retire_share`: a snapshot that would retire more of its source is held, not applied.
    `drift_required_min_share`: a file whose id or name is carried by fewer of its records fails with
    that finding (INGEST_DRIFT_REQUIRED_MIN_SHARE)."""
    not_ours = start(conn, file.file_id, run_id)
    if not_ours:
        return FileOutcome(file, skipped=not_ours)
    source = file.source_system or ""
    named = (change_time_fields or {}).get(source)
    keys = None if named is None else tuple(named)
    try:
        for attempt in Retrying(
            retry=retry_if_exception_type(TRANSIENT_ERRORS),
            wait=wait_random_exponential(multiplier=0.2, max=5),
            stop=stop_after_attempt(TRANSIENT_ATTEMPTS),
            reraise=True,
        ):
            with attempt:
                result, drift = _load(
                    conn, s3, bucket, file, run_id, keys, max_retire_share, drift_required_min_share
                )
        return FileOutcome(file, result=result, drift=drift)
    except ShapeRefused as exc:
        return _fail(conn, file, str(exc), "data", drift=exc.drift)
    except SnapshotHeld as held:
        mark_held(conn, file.file_id, held.reason)
        conn.commit()
        return FileOutcome(file, held=held.reason)
    except (ParseError, FileUnavailable, psycopg.DataError, psycopg.IntegrityError) as exc:
        return _fail(conn, file, str(exc), "data")
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        kind: FailureKind = "infrastructure" if code in S3_TRANSIENT_CODES else "data"
        return _fail(conn, file, f"could not read s3://{bucket}/{file.s3_key}: {exc}", kind)
    except BotoCoreError as exc:  # no answer from S3 at all: connection, timeout
        return _fail(conn, file, f"could not read s3://{bucket}/{file.s3_key}: {exc}", "infrastructure")
    except BaseException as exc:
        if not isinstance(exc, Exception):  # the worker is being interrupted (SIGINT/SIGTERM, run canceled)
            _fail_interrupted(conn, file)
        raise
    finally:
        finish_loading(conn, file.file_id)


def _load(
    conn: psycopg.Connection,
    s3: Any,
    bucket: str,
    file: FileRow,
    run_id: str,
    change_time_keys: tuple[str, ...] | None,
    max_retire_share: float,
    drift_required_min_share: float,
) -> tuple[FileLoadResult, Drift]:
    # Each refusal rolls the transaction back and narrows what the next attempt may do (rare: see
    # resources/ingest/loader.py), so there are at most three attempts.
    chunked = fresh_inserts = True
    while True:
        try:
            return _load_once(
                conn,
                s3,
                bucket,
                file,
                run_id,
                change_time_keys,
                max_retire_share,
                drift_required_min_share,
                chunked=chunked,
                fresh_inserts=fresh_inserts,
            )
        except ChunkedMergeRefused:
            if not chunked:
                raise
            chunked = False  # this file must be merged whole
        except FreshInsertRefused:
            if not fresh_inserts:
                raise
            fresh_inserts = False  # an entity was written around ingest: upsert every record


def _load_once(
    conn: psycopg.Connection,
    s3: Any,
    bucket: str,
    file: FileRow,
    run_id: str,
    change_time_keys: tuple[str, ...] | None,
    max_retire_share: float,
    drift_required_min_share: float,
    *,
    chunked: bool,
    fresh_inserts: bool,
) -> tuple[FileLoadResult, Drift]:
    info = DocumentInfo()
    source = _compiled(file.source_system or "", change_time_keys)
    profiler = profiler_for(source)
    with conn.transaction():
        records = iter_records(
            file.s3_key,
            lambda: _open_body(s3, bucket, file),
            info,
            read_tail=(lambda: _read_tail(s3, bucket, file)) if chunked else None,
        )
        # ijson builds JSON types only (Decimal for non-integers); NDJSON's json.loads also builds
        # float NaN/Infinity, which only the json module path refuses as it should.
        json_types_only = not file.s3_key.lower().endswith(NDJSON_SUFFIXES)
        result = load_records(
            conn,
            _mapped(source, records, change_time_keys, json_types_only, profiler),
            file_id=file.file_id,
            attempt=file.attempt,
            source_key=file.s3_key,
            run_id=run_id,
            transformation_version=get_sources().source(file.source_system or "").transformation_version,
            file_at=lambda: file_time(file, info.export_date),
            early_file_at=(lambda: early_file_time(file, info)) if chunked else None,
            fresh_inserts=fresh_inserts,
        )
        # Decided here, before the commit: it needs the whole file's counts (chunked loads too commit once),
        # and before a snapshot retires anything: a file whose name is gone must not retire its source.
        drift = _judge_shape(conn, file, source, profiler, drift_required_min_share)
        file_at = file_time(file, info.export_date)
        if get_sources().source(file.source_system or "").snapshot:
            result.retired = retire_absent(
                conn,
                source=file.source_system or "",
                file_id=file.file_id,
                attempt=file.attempt,
                file_at=file_at,
                source_key=file.s3_key,
                run_id=run_id,
                max_share=max_retire_share,
                released=file.retire_released,
            )
        mark_loaded(
            conn,
            file.file_id,
            result.as_dict(),
            file_at,
            file.drift if file.attempt_cause == REPLAY else (drift.as_json() if drift.drifted else None),
        )
    return result, drift


def _judge_shape(
    conn: psycopg.Connection,
    file: FileRow,
    source: CompiledSource,
    profiler: ShapeProfiler,
    min_share: float,
) -> Drift:
    """The file's drift against its source's profile, which it then joins; raises ShapeRefused (the
    transaction rolls back: nothing landed, the profile unchanged) when a required field is gone.

    A replayed file is in its source's profile already, since its first load: only its required
    fields are checked against the current definition; its findings stay those of its first load."""
    shape = profiler.finish()
    if file.attempt_cause == REPLAY:
        drift = compare(
            shape, {}, source, required_min_share=min_share, min_records=defaults.DRIFT_MIN_RECORDS
        )
        if drift.required:
            raise ShapeRefused(drift)
        return Drift()
    lock_source(conn, source.name)
    profile = read_profile(conn, source.name)
    drift = compare(
        shape, profile, source, required_min_share=min_share, min_records=defaults.DRIFT_MIN_RECORDS
    )
    if drift.required:
        raise ShapeRefused(drift)
    write_profile(conn, source.name, profile_after(profile, shape, file.file_id))
    return drift


def _fail_interrupted(conn: psycopg.Connection, file: FileRow) -> None:
    """Say so at once when we can; when we cannot, the lock rule finds the file once the session ends."""
    with contextlib.suppress(psycopg.Error):
        conn.rollback()
        mark_failed(conn, file.file_id, INTERRUPTED, kind="infrastructure", from_status="loading")
        conn.commit()


def _fail(
    conn: psycopg.Connection, file: FileRow, reason: str, kind: FailureKind, drift: Drift | None = None
) -> FileOutcome:
    mark_failed(conn, file.file_id, reason, kind=kind, drift=drift.as_json() if drift else None)
    conn.commit()
    return FileOutcome(file, error=reason, failure_kind=kind, drift=drift)
