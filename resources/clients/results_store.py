"""Where analytics results go: small ones inline, large ones to the results bucket. Dagster-free.

One rule decides it (`stays_inline`): a result stays inline when its row count and its size, measured as
it would travel inline, are both within a budget; else it is written to S3 as JSON and CSV and the
caller carries the keys. Two budgets, for the two places a result travels inline:

- a job's result goes on its DynamoDB item (`JOB_ITEM`): the job item carries the keys, row count and
  byte sizes when it does not fit, and the result sits at `results/<run_id>/result.json` and `result.csv`;
- a synchronous answer goes in the response body (`RESPONSE_BODY`, set by API_INLINE_MAX_ROWS and
  API_INLINE_MAX_BYTES): the answer sits under `sync/<key>/`.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from resources.analytics.values import csv_cell, json_default
from resources.clients.jobs_store import attribute_bytes


@dataclass(frozen=True)
class InlineBudget:
    """The most a result may hold and still travel inline: rows, and bytes as measured where it goes."""

    max_rows: int
    max_bytes: int


# Up to 1,000 rows, the old system's threshold, in both places. A job item: of DynamoDB's 400 KB (409,600
# bytes) per item, room is kept for what is written after the result (status, timestamps, a later rewrite
# of the same facts) and for the estimate's own slack; the size counted is the result attribute plus the
# item's other attributes.
JOB_ITEM = InlineBudget(max_rows=1000, max_bytes=350_000)
# A response body: a Lambda response stops at 6 MB; 5 MiB of rows leaves room for the envelope around them.
RESPONSE_BODY = InlineBudget(max_rows=1000, max_bytes=5 * 1024 * 1024)
# The job item's attributes besides the result and the parameters: key, ids, status and its rank, five
# timestamps, TTL, job type, operation, the Dagster run URL, rowCount: about 500 bytes with a UUID run id.
OTHER_ATTRIBUTES_BYTES = 4_000


def stays_inline(row_count: int, inline_bytes: Callable[[], int], budget: InlineBudget) -> bool:
    """Whether a result of `row_count` rows, `inline_bytes()` long where it would go, stays inline.

    The size is a callable so that it is measured only when the row count allows it: measuring means
    encoding the rows once more, which a result of many rows should not pay for."""
    return row_count <= budget.max_rows and inline_bytes() <= budget.max_bytes


def rows_as_objects(columns: list[str], rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [dict(zip(columns, row, strict=True)) for row in rows]


def to_json(columns: list[str], rows: list[tuple[Any, ...]]) -> bytes:
    return json.dumps(
        {"columns": columns, "rows": rows_as_objects(columns, rows)},
        default=json_default,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode("utf-8")


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
    return {
        "json": f"results/{run_id}/result.json",
        "csv": f"results/{run_id}/result.csv",
        "parquet": f"results/{run_id}/result.parquet",
    }


def store_result(
    s3: Any,
    bucket: str,
    run_id: str,
    columns: list[str],
    rows: list[tuple[Any, ...]],
    *,
    truncated: bool = False,
    operation: str | None = None,
    extra: dict[str, Any] | None = None,
    item_bytes_besides: int = OTHER_ATTRIBUTES_BYTES,
) -> dict[str, Any]:
    """Keep the result inline or write it to S3; return the summary that goes on the job item.

    `extra` goes into the summary either way (e.g. executionTimeMs); `item_bytes_besides` is what the job
    item holds besides the result (OTHER_ATTRIBUTES_BYTES plus the parameters' attribute_bytes)."""
    body = to_json(columns, rows)
    summary: dict[str, Any] = {
        "rowCount": len(rows),
        "columns": columns,
        "truncated": truncated,
        **(extra or {}),
    }

    @functools.cache
    def inline() -> dict[str, Any]:
        return {**summary, "storage": "inline", "byteSize": len(body), "rows": json.loads(body)["rows"]}

    if stays_inline(len(rows), lambda: attribute_bytes("result", inline()) + item_bytes_besides, JOB_ITEM):
        return inline()
    keys = {
        k: v for k, v in result_keys(run_id).items() if k != "parquet"
    }  # parquet: the Dagster side writes it
    csv_body = to_csv(columns, rows)
    meta = result_metadata(operation, len(rows))
    s3.put_object(Bucket=bucket, Key=keys["json"], Body=body, ContentType="application/json", Metadata=meta)
    s3.put_object(Bucket=bucket, Key=keys["csv"], Body=csv_body, ContentType="text/csv", Metadata=meta)
    summary.update(storage="s3", bucket=bucket, s3=keys, byteSize={"json": len(body), "csv": len(csv_body)})
    return summary
