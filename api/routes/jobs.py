"""Analytics jobs: POST /analytics/jobs, GET /analytics/jobs/{id}, its result, DELETE to cancel."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import JSONResponse, RedirectResponse, Response

from api.analytics_service import presign_get
from api.compat import job_fields
from api.deps import JobsScope, ReadScope, State
from api.jobs_service import job_view, launch_job
from api.models import JobRequest, JobResponse, problem_responses
from api.problems import ApiProblem
from api.state import AppState
from resources.clients.jobs_store import TERMINAL
from resources.clients.results_store import to_csv

CANCEL_RETRY_SECONDS = 0.5

router = APIRouter(tags=["jobs"])
JobId = Annotated[
    str,
    Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$", description="Job id (Dagster run id)"),
]
IdempotencyKey = Annotated[
    str | None, Header(max_length=200, description="Repeat-safe key: the same key and body give the same job")
]


def _job_or_404(state: AppState, job_id: str) -> dict[str, Any]:
    job = state.jobs.get(job_id)
    if job is None or job.get("jobType", "analytics") != "analytics":
        raise ApiProblem(
            404,
            "job_not_found",
            f"no job {job_id!r} (unknown, or expired after 7 days)",
            error_type="NotFound",
            suggestions=["POST /analytics/jobs to start a job"],
        )
    return job


@router.post(
    "/analytics/jobs",
    status_code=202,
    response_model=JobResponse,
    summary="Start an analytics job",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 502, 503),
)
def create_job(
    body: JobRequest,
    principal: JobsScope,
    state: State,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    job, replayed = launch_job(state, principal, body, idempotency_key)
    headers = {"Location": job["links"]["self"]}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(job_body(job, message="Job submitted"), status_code=202, headers=headers)


def job_body(
    view: dict[str, Any], stored: dict[str, Any] | None = None, message: str | None = None
) -> dict[str, Any]:
    """Our answer (`job`: the view) with the old API's top-level fields beside it (from the stored item,
    which still names where a large result is)."""
    return {
        "success": True,
        "job": view,
        **job_fields(stored or view),
        **({"message": message} if message else {}),
    }


@router.get(
    "/analytics/jobs/{job_id}",
    response_model=JobResponse,
    summary="A job's status (from DynamoDB)",
    responses=problem_responses(401, 403, 404, 422, 503),
)
def get_job(job_id: JobId, _: ReadScope, state: State) -> JSONResponse:
    job = _job_or_404(state, job_id)
    return JSONResponse(job_body(job_view(job), job), headers={"Cache-Control": "no-store"})


@router.get(
    "/analytics/jobs/{job_id}/result",
    summary="A finished job's result",
    responses={
        **problem_responses(401, 403, 404, 409, 422, 503),
        200: {
            "description": "Inline rows (JSON envelope) or CSV",
            "content": {"application/json": {}, "text/csv": {}},
        },
        303: {"description": "Large result, or Parquet: redirect to a presigned S3 URL"},
    },
)
def get_result(
    job_id: JobId,
    _: ReadScope,
    state: State,
    format: Annotated[
        Literal["json", "csv", "parquet"],
        Query(description="json (rows, or a redirect when large), csv, or parquet (always a redirect to S3)"),
    ] = "json",
) -> Response:
    job = _job_or_404(state, job_id)
    status = job.get("status")
    if status != "succeeded":
        detail = f"job {job_id} is {status}; a result exists once it has succeeded"
        if status == "failed" and job.get("error"):
            detail += f" (error: {str(job['error'])[:300]})"
        raise ApiProblem(
            409,
            "job_not_finished" if status not in TERMINAL else f"job_{status}",
            detail,
            error_type="JobNotReady",
            extra={"jobStatus": status},
            suggestions=[f"Poll GET /analytics/jobs/{job_id}"],
        )
    result = job.get("result")
    if not isinstance(result, dict):
        raise ApiProblem(404, "result_not_found", f"job {job_id} has no stored result", error_type="NotFound")
    if format == "parquet":
        if not result.get("parquet"):
            raise ApiProblem(
                404,
                "result_not_found",
                f"job {job_id} has no Parquet result (it ran before they were written)",
                error_type="NotFound",
                suggestions=["Ask for format=json or format=csv", "Run the job again"],
            )
        return RedirectResponse(
            presign_get(state, result["parquet"], filename=f"{job_id}.parquet"), status_code=303
        )
    if result.get("storage") == "s3":
        key = result["s3"][format]
        return RedirectResponse(presign_get(state, key, filename=f"{job_id}.{format}"), status_code=303)
    columns: list[str] = result.get("columns", [])
    rows: list[dict[str, Any]] = result.get("rows", [])
    if format == "csv":
        body = to_csv(columns, [tuple(r.get(c) for c in columns) for r in rows])
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{job_id}.csv"'},
        )
    return JSONResponse(
        {
            "success": True,
            "operation": job.get("operation"),
            "jobId": job_id,
            "data": rows,
            "metadata": {
                "resultCount": result.get("rowCount", len(rows)),
                "columns": columns,
                "truncated": bool(result.get("truncated")),
                "storage": "inline",
                "timestamp": job.get("finishedAt"),
                "cacheHit": False,
            },
        }
    )


# Dagster terminates QUEUED and STARTED runs; a run between the two (NOT_STARTED, STARTING: its process
# is being launched) cannot be stopped yet, only a moment later.
_NOT_YET_CANCELABLE = {"NOT_STARTED", "STARTING"}
_FINISHED = {"SUCCESS": "succeeded", "FAILURE": "failed", "CANCELED": "canceled"}


@router.delete(
    "/analytics/jobs/{job_id}",
    status_code=202,
    response_model=JobResponse,
    summary="Cancel a job",
    responses=problem_responses(401, 403, 404, 409, 422, 502, 503),
    description="A run that is still starting is retried for up to `API_CANCEL_WAIT_SECONDS`; past "
    "that the answer is 409 `run_starting` with `Retry-After`.",
)
def cancel_job(job_id: JobId, _: JobsScope, state: State) -> JSONResponse:
    job = _job_or_404(state, job_id)
    if job.get("status") in TERMINAL:
        raise ApiProblem(
            409,
            "job_finished",
            f"job {job_id} has already {job['status']}",
            error_type="JobFinished",
            extra={"jobStatus": job["status"]},
        )
    deadline = time.monotonic() + state.api.cancel_wait_seconds
    while True:
        result = state.dagster.terminate(job_id)
        if result.outcome != "failed" or result.run_status not in _NOT_YET_CANCELABLE:
            break
        if time.monotonic() + CANCEL_RETRY_SECONDS > deadline:
            raise ApiProblem(
                409,
                "run_starting",
                f"run {job_id} is still starting and cannot be cancelled yet",
                title="Conflict",
                error_type="RunStarting",
                headers={"Retry-After": "2"},
                extra={"runStatus": result.run_status},
                suggestions=["Send the same DELETE again in a few seconds"],
            )
        time.sleep(CANCEL_RETRY_SECONDS)
    if result.outcome == "not_found":
        raise ApiProblem(404, "job_not_found", f"Dagster has no run {job_id}", error_type="NotFound")
    if result.outcome == "failed" and result.run_status in _FINISHED:
        status = _FINISHED[result.run_status]
        raise ApiProblem(
            409,
            "job_finished",
            f"job {job_id} has already {status}",
            error_type="JobFinished",
            extra={"jobStatus": status},
        )
    if result.outcome == "failed" and result.run_status != "CANCELING":  # CANCELING: asked before, still on
        raise ApiProblem(
            409,
            "cancel_failed",
            f"the run could not be cancelled: {str(result.message)[:300]}",
            error_type="CancelFailed",
        )
    # Recorded at once, so a GET right after says so; the run-status sensors write how the run ended (a
    # sensor that already did wins: the store never moves a job backwards).
    state.jobs.record_status(job_id, "canceling", job_type="analytics")
    return JSONResponse(
        job_body(job_view(state.jobs.get(job_id) or job), message="Cancel requested"), status_code=202
    )
