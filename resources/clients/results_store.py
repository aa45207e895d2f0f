"""Where analytics results go: small ones inline in the job item, large ones to the results bucket.

Up to 1,000 rows (the old system's threshold) are kept inline when the result attribute, measured as the
jobs store encodes it, fits in the item beside the job's other attributes within ITEM_BUDGET_BYTES;
anything larger, in rows or in bytes, is written to `results/<run_id>/result.json` and `result.csv` in
the results bucket, and the job item carries the keys, row count and byte sizes. Dagster-free.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from resources.analytics.values import csv_cell, json_default
from resources.clients.jobs_store import attribute_bytes

INLINE_MAX_ROWS = 1000
# Of DynamoDB's 400 KB (409,600 bytes) per item: room for what is written after the result (status,
# timestamps, a later rewrite of the same facts) and for the estimate's own slack.
ITEM_BUDGET_BYTES = 350_000
# The job item's attributes besides the result and the parameters: key, ids, status and its rank, five
# timestamps, TTL, job type, operation, the Dagster run URL, rowCount: about 500 bytes with a UUID run id.
OTHER_ATTRIBUTES_BYTES = 4_000


def rows_as_objects(columns: list[str], rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [dict(zip(columns, row, strict=True)) for row in rows]


def to_json(columns: list[str], rows: list[tuple[Any, ...]]) -> bytes:
    return json.dumps({"columns": columns, "rows": rows_as_objects(columns, rows)}, default=json_default,
                      separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def to_csv(columns: list[str], rows: list[tuple[Any, ...]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(columns)
    writer.writerows([csv_cell(v) for v in row] for row in rows)
    return buf.getvalue().encode("utf-8")


def result_metadata(operation: str | None, row_count: int) -> dict[str, str]:
    """S3 user metadata of a stored result: what GET /download/{key} reports about it."""
    return {"operation": operation or "", "record-count": str(row_count)}


def result_keys(run_id: str) -> dict[str, str]:
    return {"json": f"results/{run_id}/result.json", "csv": f"results/{run_id}/result.csv",
            "parquet": f"results/{run_id}/result.parquet"}


def fits_inline(summary: dict[str, Any], item_bytes_besides: int) -> bool:
    """Whether a summary with its rows fits in the job item beside `item_bytes_besides` of other attributes."""
    return attribute_bytes("result", summary) + item_bytes_besides <= ITEM_BUDGET_BYTES


def store_result(s3: Any, bucket: str, run_id: str, columns: list[str], rows: list[tuple[Any, ...]],
                 *, truncated: bool = False, operation: str | None = None,
                 extra: dict[str, Any] | None = None,
                 item_bytes_besides: int = OTHER_ATTRIBUTES_BYTES) -> dict[str, Any]:
    """Keep the result inline or write it to S3; return the summary that goes on the job item.

    `extra` goes into the summary either way (e.g. executionTimeMs); `item_bytes_besides` is what the job
    item holds besides the result (OTHER_ATTRIBUTES_BYTES plus the parameters' attribute_bytes)."""
    body = to_json(columns, rows)
    summary: dict[str, Any] = {"rowCount": len(rows), "columns": columns, "truncated": truncated, **(extra or {})}
    if len(rows) <= INLINE_MAX_ROWS:
        inline = {**summary, "storage": "inline", "byteSize": len(body), "rows": json.loads(body)["rows"]}
        if fits_inline(inline, item_bytes_besides):
            return inline
    keys = {k: v for k, v in result_keys(run_id).items() if k != "parquet"}  # parquet: the Dagster side writes it
    csv_body = to_csv(columns, rows)
    meta = result_metadata(operation, len(rows))
    s3.put_object(Bucket=bucket, Key=keys["json"], Body=body, ContentType="application/json", Metadata=meta)
    s3.put_object(Bucket=bucket, Key=keys["csv"], Body=csv_body, ContentType="text/csv", Metadata=meta)
    summary.update(storage="s3", bucket=bucket, s3=keys, byteSize={"json": len(body), "csv": len(csv_body)})
    return summary
