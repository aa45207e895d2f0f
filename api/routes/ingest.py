"""What happened to uploaded files: GET /ingest/files[/{key}], reprocess, and presigned uploads."""

from __future__ import annotations

import datetime as dt
import json
import posixpath
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from api.analytics_service import now_iso
from api.deps import JobsScope, ReadScope, State
from api.models import (
    IngestFileResponse,
    IngestFilesResponse,
    SourceName,
    UploadRequest,
    UploadResponse,
    problem_responses,
)
from api.problems import ApiProblem
from resources.contract import FileStatus
from resources.ingest.registry import (
    AttemptRow,
    FileRow,
    ReprocessError,
    attempts_of,
    latest_for_key,
    list_files,
    rejected_sample,
    request_release,
    request_reprocess,
)
from resources.sources.catalogue import get_sources

router = APIRouter(tags=["ingest"])


def _iso(v: dt.datetime | None) -> str | None:
    return v.isoformat() if v else None


def file_view(f: FileRow) -> dict[str, Any]:
    return {
        "fileId": f.file_id,
        "key": f.s3_key,
        "etag": f.etag,
        "sizeBytes": f.size_bytes,
        "source": f.source_system,
        "status": f.status,
        "reason": f.reason,
        "attempt": f.attempt,
        "batchId": f.batch_id,
        "runId": f.run_id,
        "counts": {
            "received": f.received,
            "inserted": f.inserted,
            "updated": f.updated,
            "unchanged": f.unchanged,
            "rejected": f.rejected,
            "duplicates": f.duplicates,
            "superseded": f.superseded,
            "retired": f.retired,
        },
        "seconds": f.seconds,
        "discoveredAt": _iso(f.discovered_at),
        "finishedAt": _iso(f.finished_at),
        "sourceFileAt": _iso(f.source_file_at),
        "failureKind": f.failure_kind,
        "retries": f.retries,
        "attemptCause": f.attempt_cause,
        "drift": f.drift,
    }


def attempt_view(a: AttemptRow) -> dict[str, Any]:
    return {
        "attempt": a.attempt,
        "cause": a.cause,
        "runId": a.run_id,
        "startedAt": _iso(a.started_at),
        "finishedAt": a.finished_at.isoformat(),
        "outcome": a.outcome,
        "failureKind": a.failure_kind,
        "reason": a.reason,
    }


@router.get(
    "/ingest/files",
    response_model=IngestFilesResponse,
    summary="Files received, newest first",
    responses=problem_responses(401, 403, 422, 503),
)
def files(
    _: ReadScope,
    state: State,
    status: FileStatus | None = None,
    source: SourceName | None = None,
    since: Annotated[
        dt.datetime | None, Query(description="ISO timestamp: files discovered at or after it")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="metadata.nextCursor of the previous page")
    ] = None,
) -> JSONResponse:
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    with state.connection("writer") as conn:
        rows = list_files(conn, status=status, source=source, since=since, limit=limit + 1, after_id=cursor)
    more = len(rows) > limit
    rows = rows[:limit]
    return JSONResponse(
        {
            "success": True,
            "data": [file_view(r) for r in rows],
            "metadata": {
                "resultCount": len(rows),
                "timestamp": now_iso(),
                "nextCursor": rows[-1].file_id if more else None,
            },
        }
    )


@router.post(
    "/ingest/files/{key:path}/reprocess",
    status_code=202,
    response_model=IngestFileResponse,
    summary="Load a file's latest version again",
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
def reprocess(key: str, _: JobsScope, state: State) -> JSONResponse:
    return _next_attempt(state, key, request_reprocess, conflict="file_busy")


def _next_attempt(
    state: Any, key: str, request: Callable[[Any, str], FileRow], *, conflict: str
) -> JSONResponse:
    """A file's next attempt asked for by a person (reprocess, release): 202 with the file, 404 for an
    unknown key, 409 `conflict` when the file cannot take that step now."""
    with state.connection("writer") as conn:  # autocommit: the transaction is explicit
        try:
            with conn.transaction():
                row = request(conn, key)
        except ReprocessError as exc:
            known = latest_for_key(conn, key) is not None
            raise ApiProblem(
                409 if known else 404,
                conflict if known else "file_not_found",
                str(exc),
                error_type="Conflict" if known else "NotFound",
            ) from None
    return JSONResponse(
        {"success": True, "file": file_view(row), "rejectedSample": [], "attempts": []}, status_code=202
    )


@router.post(
    "/ingest/files/{key:path}/release",
    status_code=202,
    response_model=IngestFileResponse,
    summary="Apply a held snapshot: its retirements go ahead whatever their share",
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
def release(key: str, _: JobsScope, state: State) -> JSONResponse:
    return _next_attempt(state, key, request_release, conflict="file_not_held")


@router.get(
    "/ingest/files/{key:path}",
    response_model=IngestFileResponse,
    summary="One file: counts, reasons and a sample of refused records",
    responses=problem_responses(401, 403, 404, 422, 503),
)
def file_detail(
    key: str, _: ReadScope, state: State, sample: Annotated[int, Query(ge=0, le=100)] = 20
) -> JSONResponse:
    with state.connection("writer") as conn, conn.transaction():  # one snapshot for the file and its sample
        row = latest_for_key(conn, key)
        rejected = rejected_sample(conn, row.file_id, row.attempt, sample) if row and sample else []
        attempts = attempts_of(conn, row.file_id) if row else []
    if row is None:
        raise ApiProblem(
            404,
            "file_not_found",
            f"no file with key {key!r} has been recorded",
            error_type="NotFound",
            suggestions=["GET /ingest/files lists the files received"],
        )
    out = []
    for r in rejected:
        try:
            record = json.loads(r["record"])
        except (TypeError, ValueError):
            record = r["record"]
        out.append(
            {
                "recordIndex": r["record_index"],
                "sourceId": r["source_id"],
                "reasons": r["reasons"],
                "record": record,
            }
        )
    return JSONResponse(
        {
            "success": True,
            "file": file_view(row),
            "rejectedSample": out,
            "attempts": [attempt_view(a) for a in attempts],
        }
    )


@router.post(
    "/ingest/uploads",
    status_code=201,
    response_model=UploadResponse,
    summary="A presigned PUT URL into the raw bucket",
    responses=problem_responses(400, 401, 403, 413, 422, 503),
)
def upload(body: UploadRequest, _: JobsScope, state: State) -> JSONResponse:
    name = posixpath.normpath(body.filename.strip().lstrip("/"))
    if name.startswith("..") or name in (".", "") or "/../" in f"/{name}/":
        raise ApiProblem(
            422,
            "invalid_filename",
            "filename must be a relative path inside the source's folder",
            error_type="ValidationError",
            errors=[{"field": "filename", "message": "not allowed"}],
        )
    key = get_sources().upload_prefix(body.source) + name
    expires = state.api.presign_seconds
    url = state.client("s3").generate_presigned_url(
        "put_object", Params={"Bucket": state.settings.raw_bucket, "Key": key}, ExpiresIn=expires
    )
    return JSONResponse(
        {
            "success": True,
            "key": key,
            "bucket": state.settings.raw_bucket,
            "url": url,
            "method": "PUT",
            "expiresIn": expires,
        },
        status_code=201,
    )
