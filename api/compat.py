"""The old API's response fields, added beside ours so its clients keep reading what they read.

The old system (Node.js Lambda, README "Moving from the old system") answered with `operationId`,
`executionTime` ("123ms"), large results as `largeResult`/`s3Url`/`downloadUrl`/`recordCount`,
database_info's `data` as an object `{tables, sample_table_structure}`, and jobs with a top-level `jobId`
and the statuses submitted → running → completed; its Step Functions workflow merged the answer into the
job record when the job completed (`UpdateJobToCompletedSmall`: the analytics payload, `data` and
`metadata` among it; `UpdateJobToCompletedLarge`: the large-result fields). Every field here is additive:
none of ours is renamed or removed. The one change of shape is database_info's `data` (see answer_data).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

# Our job status → the old vocabulary (a poller of the old API waits for "completed"). Statuses the old
# system never wrote (it had no failure or cancel state) keep our word for them.
OLD_JOB_STATUS: dict[str, str] = {
    "queued": "submitted",
    "running": "running",
    "canceling": "running",
    "succeeded": "completed",
    "failed": "failed",
    "canceled": "canceled",
}
LARGE_RESULT_MESSAGE = "Large result saved to S3 for download"


def download_path(key: str) -> str:
    """The API path serving a stored result (GET /download/{key}), relative to the API's base URL."""
    return f"/download/{key}"


def analytics_fields(payload: dict[str, Any], bucket: str) -> dict[str, Any]:
    """Top-level fields of the old success envelope for one analytics answer."""
    operation = payload["operation"]
    out: dict[str, Any] = {
        "operationId": f"{operation}_{int(time.time() * 1000)}",
        "executionTime": f"{round(payload['executionTimeMs'])}ms",
    }
    if payload["storage"] == "s3":
        key = payload["s3"]["json"]
        out.update(
            largeResult=True,
            s3Url=f"s3://{bucket}/{key}",
            downloadUrl=download_path(key),
            recordCount=payload["resultCount"],
            message=LARGE_RESULT_MESSAGE,
        )
    elif operation == "database_info" and isinstance(payload.get("data"), list):
        # Where this platform put the old fields before `data` took the old shape; kept for its clients.
        info = database_info_object(payload["data"])
        out.update(
            tables=[{"table_name": t.get("table_name")} for t in info["tables"]],
            sample_table_structure=info["sample_table_structure"],
        )
    return out


def answer_data(operation: str | None, rows: list[dict[str, Any]] | None) -> Any:
    """`data` as the old clients read it. database_info answered an object there, and old dashboards read
    `data.tables`; a GET with no parameters is how old and new clients alike ask for it, so the old shape
    cannot be kept for the old form only: database_info's `data` is the old object for everyone, its
    `tables` carrying our rows (table_name first, as before, then kind, counts, size, columns). Every
    other operation's `data` is its rows; None (a large result) stays None."""
    if operation == "database_info" and isinstance(rows, list):
        return database_info_object(rows)
    return rows


def database_info_object(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The old database_info answer: the tables (one row each), and the first table's columns with their
    types (the old answer's sample; [] when there is no table, as the old code answered)."""
    sample = (
        []
        if not rows
        else [
            {"column_name": name, "data_type": data_type}
            for name, _, data_type in (
                c.partition(" ") for c in str(rows[0].get("columns") or "").split(", ") if c
            )
        ]
    )
    return {"tables": rows, "sample_table_structure": sample}


def job_fields(job: dict[str, Any]) -> dict[str, Any]:
    """Top-level fields of the old job answers: its id, its status in the old words, where to poll, and
    once it has completed the answer as the old workflow merged it into the record (completed_fields)."""
    status = str(job.get("status"))
    job_id = job.get("jobId")
    out: dict[str, Any] = {
        "jobId": job_id,
        "status": OLD_JOB_STATUS.get(status, status),
        "checkStatusUrl": f"/analytics/jobs/{job_id}",
        "submittedAt": job.get("queuedAt") or job.get("createdAt"),
    }
    if status == "succeeded":
        out["resultUrl"] = f"/analytics/jobs/{job_id}/result"
        out.update(completed_fields(job))
    return out


def completed_fields(job: dict[str, Any]) -> dict[str, Any]:
    """What the old workflow wrote onto a completed job's record, from the result the run stored on the job
    item (never by running the query again). Up to 1,000 rows that fit in the item (the rule is
    resources/clients/results_store.py's): the analytics payload, `operation`, `operationId`, `executionTime`,
    `data`, `metadata`; a larger answer, in the results bucket: `largeResult`, `s3Url`, `downloadUrl`,
    `recordCount`, `message`, `metadata`. Nothing when the item holds no result, or a view of it without
    its rows (the answer to a submission or a cancel)."""
    result = job.get("result")
    if not isinstance(result, dict):
        return {}
    large = result.get("storage") == "s3" and isinstance(result.get("s3"), dict)
    if not large and not isinstance(result.get("rows"), list):
        return {}
    operation = job.get("operation")
    out: dict[str, Any] = {
        "operation": operation,
        "metadata": {
            "resultCount": result.get("rowCount"),
            "timestamp": job.get("finishedAt"),
            "cacheHit": False,
            "columns": result.get("columns"),
            "truncated": bool(result.get("truncated")),
            "storage": result.get("storage"),
        },
    }
    started = _epoch_ms(job.get("startedAt") or job.get("createdAt"))
    if operation and started is not None:
        out["operationId"] = f"{operation}_{started}"  # the old id: <operation>_<start, epoch ms>
    if isinstance(result.get("executionTimeMs"), int | float):
        out["executionTime"] = f"{round(result['executionTimeMs'])}ms"
    if large:
        key = result["s3"]["json"]
        out.update(
            largeResult=True,
            s3Url=f"s3://{result.get('bucket')}/{key}",
            downloadUrl=download_path(key),
            recordCount=result.get("rowCount"),
            message=LARGE_RESULT_MESSAGE,
        )
    else:
        out["data"] = answer_data(operation, result["rows"])
    return out


def _epoch_ms(iso: Any) -> int | None:
    try:
        return int(dt.datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None
