"""Job items in DynamoDB (single table, PK `JOB#<run_id>`, SK `JOB`): what the REST layer reads
without touching Dagster. Dagster-free.

Writes are idempotent and never move a job backwards: each status has a rank
(queued < running < canceling < succeeded | failed | canceled) and an update only applies when the
stored rank is lower, or the status is the same (a repeated write of the same facts). `canceling` is
written by the REST API when Dagster accepted a cancel request; the run-status sensors then write how
the run ended. Expired items (past
`expiresAt`, which DynamoDB's TTL deletes lazily) are treated as absent on read.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from botocore.exceptions import ClientError

JobStatus = Literal["queued", "running", "canceling", "succeeded", "failed", "canceled"]
JobType = Literal["analytics", "ingest"]
STATUS_RANK: dict[str, int] = {
    "queued": 0,
    "running": 1,
    "canceling": 2,
    "succeeded": 3,
    "failed": 3,
    "canceled": 3,
}
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "canceled"})
SK = "JOB"
DEFAULT_TTL_SECONDS = 7 * 24 * 3600


def job_key(run_id: str) -> dict[str, dict[str, str]]:
    return {"PK": {"S": f"JOB#{run_id}"}, "SK": {"S": SK}}


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of a status write: whether it changed anything, and from what."""

    applied: bool  # a new status was recorded (not a repeat, not refused as a step backwards)
    previous_status: str | None


def _av(value: Any) -> dict[str, Any]:
    """Python value → DynamoDB attribute value (the low-level client's format).

    A dict or list (parameters, a result with its rows) is stored as one JSON string, not as a DynamoDB map:
    a map would need every float as a Decimal and give back Decimals, while the JSON text gives back exactly
    the numbers the run wrote, so the answer GET /analytics/jobs/{id} serves from it is the old clients'
    JSON, and its size is measured before it is written (attribute_bytes)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float, Decimal)):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    return {"S": json.dumps(value, default=str, separators=(",", ":"))}


def attribute_bytes(name: str, value: Any) -> int:
    """What one attribute counts towards DynamoDB's 400 KB item limit as this store writes it: the name's
    and the value's UTF-8 bytes (a number: its digits, an upper bound of what DynamoDB counts)."""
    ((kind, encoded),) = _av(value).items()
    size = len(encoded.encode("utf-8")) if kind in ("S", "N") else 1
    return len(name.encode("utf-8")) + size


class JobsStore:
    """Read and write job items. `dynamodb` is a boto3 DynamoDB client, built once by the caller."""

    def __init__(self, dynamodb: Any, table: str, ttl_seconds: int = DEFAULT_TTL_SECONDS):
        self.dynamodb = dynamodb
        self.table = table
        self.ttl_seconds = ttl_seconds

    def record_status(
        self,
        run_id: str,
        status: JobStatus,
        *,
        job_type: JobType | None = None,
        fields: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> Transition:
        """Move the job to `status` (creating the item if needed) unless that would move it backwards.

        `fields` (operation, parameters, rowCount, error, dagsterRunUrl, …) are written with the status.
        """
        now = time.time() if now is None else now
        values: dict[str, Any] = {
            **(fields or {}),
            "status": status,
            "statusRank": STATUS_RANK[status],
            "updatedAt": _iso(now),
            "expiresAt": int(now + self.ttl_seconds),
            "jobId": run_id,
        }
        if job_type:
            values["jobType"] = job_type
        stamp = {"queued": "queuedAt", "running": "startedAt", "canceling": "cancelRequestedAt"}.get(
            status, "finishedAt"
        )
        names = {f"#{i}": k for i, k in enumerate(values)}
        exprs = [f"#{i} = :{i}" for i in range(len(values))]
        attr_values = {f":{i}": _av(v) for i, v in enumerate(values.values())}
        names["#stamp"] = stamp
        attr_values[":stamp"] = _av(_iso(now))
        attr_values[":rank"] = _av(STATUS_RANK[status])
        attr_values[":status"] = _av(status)
        # createdAt once, the status's own timestamp once (first time the job reached it).
        update = (
            "SET " + ", ".join(exprs) + ", #stamp = if_not_exists(#stamp, :stamp), "
            "#created = if_not_exists(#created, :stamp)"
        )
        names["#created"] = "createdAt"
        names["#rank_attr"] = "statusRank"
        names["#status_attr"] = "status"
        try:
            resp = self.dynamodb.update_item(
                TableName=self.table,
                Key=job_key(run_id),
                UpdateExpression=update,
                ConditionExpression=(
                    "attribute_not_exists(#rank_attr) OR #rank_attr < :rank OR #status_attr = :status"
                ),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=attr_values,
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return Transition(applied=False, previous_status=None)
            raise
        previous = resp.get("Attributes", {}).get("status", {}).get("S")
        return Transition(applied=previous != status, previous_status=previous)

    def record_result(self, run_id: str, result: dict[str, Any], *, now: float | None = None) -> None:
        """Attach a result summary (inline rows or S3 keys, row count, byte size). Not a status change."""
        now = time.time() if now is None else now
        self.dynamodb.update_item(
            TableName=self.table,
            Key=job_key(run_id),
            UpdateExpression="SET #r = :r, #rc = :rc, #exp = if_not_exists(#exp, :exp), #jid = :jid",
            ExpressionAttributeNames={
                "#r": "result",
                "#rc": "rowCount",
                "#exp": "expiresAt",
                "#jid": "jobId",
            },
            ExpressionAttributeValues={
                ":r": _av(result),
                ":rc": _av(result.get("rowCount", 0)),
                ":exp": _av(int(now + self.ttl_seconds)),
                ":jid": _av(run_id),
            },
        )

    def get(self, run_id: str, *, now: float | None = None) -> dict[str, Any] | None:
        """The job as plain values, or None when absent or expired."""
        item = self.dynamodb.get_item(TableName=self.table, Key=job_key(run_id), ConsistentRead=True).get(
            "Item"
        )
        if not item:
            return None
        job = {k: _plain(v) for k, v in item.items()}
        expires = job.get("expiresAt")
        if expires is not None and float(expires) <= (time.time() if now is None else now):
            return None
        for k in ("parameters", "result"):
            if isinstance(job.get(k), str):
                with contextlib.suppress(ValueError):
                    job[k] = json.loads(job[k])
        job.pop("PK", None)
        job.pop("SK", None)
        return job


def _plain(av: dict[str, Any]) -> Any:
    ((kind, value),) = av.items()
    if kind == "N":
        d = Decimal(value)
        return int(d) if d == d.to_integral_value() else float(d)
    if kind == "NULL":
        return None
    return value


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"
