"""The old API's response fields, added beside ours so its clients keep reading what they read.

The old system (Node.js Lambda, README "Moving from the old system") answered with `operationId`,
`executionTime` ("123ms"), large results as `largeResult`/`s3Url`/`downloadUrl`/`recordCount`,
database_info as `{tables, sample_table_structure}`, and jobs with a top-level `jobId` and the statuses
submitted → running → completed. Every field here is additive: none of ours is renamed or removed.
"""

from __future__ import annotations

import time
from typing import Any

# Our job status → the old vocabulary (a poller of the old API waits for "completed"). Statuses the old
# system never wrote (it had no failure or cancel state) keep our word for them.
OLD_JOB_STATUS: dict[str, str] = {"queued": "submitted", "running": "running", "canceling": "running",
                                  "succeeded": "completed", "failed": "failed", "canceled": "canceled"}
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
        out.update(largeResult=True, s3Url=f"s3://{bucket}/{key}", downloadUrl=download_path(key),
                   recordCount=payload["resultCount"], message=LARGE_RESULT_MESSAGE)
    elif operation == "database_info" and isinstance(payload.get("data"), list):
        out.update(database_info_object(payload["data"]))
    return out


def database_info_object(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The old database_info answer: the tables by name, and the first table's columns with their types."""
    out: dict[str, Any] = {"tables": [{"table_name": r.get("table_name")} for r in rows]}
    if rows:
        out["sample_table_structure"] = [
            {"column_name": name, "data_type": data_type}
            for name, _, data_type in (c.partition(" ") for c in str(rows[0].get("columns") or "").split(", ") if c)
        ]
    return out


def job_fields(job: dict[str, Any]) -> dict[str, Any]:
    """Top-level fields of the old job answers: its id, its status in the old words, where to poll, and
    once it has completed where its result is (a large one: the old large-result fields)."""
    status = str(job.get("status"))
    job_id = job.get("jobId")
    out: dict[str, Any] = {"jobId": job_id, "status": OLD_JOB_STATUS.get(status, status),
                           "checkStatusUrl": f"/analytics/jobs/{job_id}",
                           "submittedAt": job.get("queuedAt") or job.get("createdAt")}
    if status == "succeeded":
        out["resultUrl"] = f"/analytics/jobs/{job_id}/result"
        result = job.get("result")
        if isinstance(result, dict) and result.get("storage") == "s3" and isinstance(result.get("s3"), dict):
            key = result["s3"]["json"]
            out.update(largeResult=True, s3Url=f"s3://{result.get('bucket')}/{key}", downloadUrl=download_path(key),
                       recordCount=result.get("rowCount"))
    return out
