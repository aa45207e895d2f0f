"""Analytics jobs: launched as Dagster runs over GraphQL, tracked in DynamoDB (job id = Dagster run id).

`Idempotency-Key`: the first request with a key stores (key → request hash, job id) for 24 h; a repeat with
the same body returns the same job, a repeat with another body is a 409.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from botocore.exceptions import ClientError

from api.analytics_service import canonical_parameters
from api.auth import Principal, require
from api.models import JobRequest
from api.problems import ApiProblem
from api.state import AppState
from resources.contract import ANALYTICS_JOB, IDEMPOTENCY_TAG, PRINCIPAL_TAG, analytics_run_config
from resources.settings import run_link

IDEMPOTENCY_TTL_SECONDS = 24 * 3600


def _idem_key(principal: Principal, key: str) -> dict[str, dict[str, str]]:
    digest = hashlib.sha256(f"{principal.name}\n{key}".encode()).hexdigest()
    return {"PK": {"S": f"IDEMP#{digest}"}, "SK": {"S": "IDEMP"}}


def job_links(job_id: str) -> dict[str, str]:
    return {
        "self": f"/analytics/jobs/{job_id}",
        "result": f"/analytics/jobs/{job_id}/result",
        "parquet": f"/analytics/jobs/{job_id}/result?format=parquet",
        "cancel": f"/analytics/jobs/{job_id}",
    }


def job_view(job: dict[str, Any]) -> dict[str, Any]:
    """The job item as the API shows it: the result summary without its rows, plus links."""
    out = {k: v for k, v in job.items() if k not in ("statusRank", "expiresAt", "result")}
    result = job.get("result")
    if isinstance(result, dict):
        out["result"] = {k: v for k, v in result.items() if k not in ("rows", "bucket", "s3", "parquet")}
    out["links"] = job_links(str(job.get("jobId")))
    return out


def launch_job(
    state: AppState, principal: Principal, req: JobRequest, idempotency_key: str | None
) -> tuple[dict[str, Any], bool]:
    """(job view, replayed). Validates before anything is launched."""
    if req.operation == "custom_complex_query":
        require(principal, "sql")
    params = canonical_parameters(req.operation, req.parameters)
    request_hash = hashlib.sha256(
        json.dumps(
            {
                "operation": req.operation,
                "parameters": params,
                "timeout_seconds": req.timeout_seconds,
                "max_rows": req.max_rows,
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()
    ddb = state.client("dynamodb")
    table = state.settings.jobs_table
    idem = _idem_key(principal, idempotency_key) if idempotency_key else None
    now = time.time()
    if idem is not None:
        try:
            ddb.put_item(
                TableName=table,
                Item={
                    **idem,
                    "requestHash": {"S": request_hash},
                    "expiresAt": {"N": str(int(now + IDEMPOTENCY_TTL_SECONDS))},
                },
                ConditionExpression="attribute_not_exists(PK) OR expiresAt < :now",
                ExpressionAttributeValues={":now": {"N": str(int(now))}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            item = ddb.get_item(TableName=table, Key=idem, ConsistentRead=True).get("Item") or {}
            if item.get("requestHash", {}).get("S") != request_hash:
                raise ApiProblem(
                    409,
                    "idempotency_conflict",
                    "this Idempotency-Key was already used with a different request",
                    error_type="IdempotencyConflict",
                    suggestions=["Use a new Idempotency-Key for a different request"],
                ) from None
            job_id = item.get("jobId", {}).get("S")
            if not job_id:
                raise ApiProblem(
                    409,
                    "idempotency_in_progress",
                    "a request with this Idempotency-Key is still being processed",
                    error_type="IdempotencyConflict",
                    headers={"Retry-After": "1"},
                    suggestions=["Retry the same request in a moment"],
                ) from None
            job = state.jobs.get(job_id) or {
                "jobId": job_id,
                "status": "queued",
                "operation": req.operation,
                "parameters": params,
            }
            return job_view(job), True
    try:
        run_config = analytics_run_config(
            req.operation, params, timeout_seconds=req.timeout_seconds, max_rows=req.max_rows
        )
        tags = {PRINCIPAL_TAG: principal.name}
        if idempotency_key:
            tags[IDEMPOTENCY_TAG] = idempotency_key[:200]
        run_id = state.dagster.launch(ANALYTICS_JOB, run_config, tags)
    except BaseException:
        if idem is not None:
            ddb.delete_item(TableName=table, Key=idem)
        raise
    fields = {
        "operation": req.operation,
        "parameters": params,
        "dagsterRunUrl": run_link(state.settings, run_id),
    }
    state.jobs.record_status(run_id, "queued", job_type="analytics", fields=fields)
    if idem is not None:
        ddb.update_item(
            TableName=table,
            Key=idem,
            UpdateExpression="SET jobId = :j",
            ExpressionAttributeValues={":j": {"S": run_id}},
        )
    job = state.jobs.get(run_id) or {"jobId": run_id, "status": "queued", **fields}
    return job_view(job), False
