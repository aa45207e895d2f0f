"""Synchronous analytics: validate, key the answer, run under the read-only role, park large results.

The key = sha256 of operation, canonical parameters (validated, defaults filled, keys sorted) and the data
version from `ingest.data_version`, which every ingest that changed rows bumps — new data never hides
behind a stale answer and nothing needs invalidating. It addresses the result cache (`api.result_cache`)
and is the response's ETag.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from api.compat import analytics_fields, answer_data
from api.state import AppState
from resources.analytics.catalogue import get_operation
from resources.analytics.runner import run_operation
from resources.clients.results_store import result_metadata, stays_inline, to_csv, to_json


@dataclass(frozen=True)
class Prepared:
    operation: str
    parameters: dict[str, Any]
    data_version: int
    key: str

    @property
    def etag(self) -> str:
        return f'"{self.key[:32]}"'


def canonical_parameters(operation: str, raw: dict[str, Any] | None) -> dict[str, Any]:
    """Validated parameters with defaults filled in (UnknownOperation / InvalidParameters / QueryRejected)."""
    return get_operation(operation).validate(raw or {}).model_dump(mode="json")


# The shape of the body served for an answer: bumped when it changes (database_info's `data` became the
# old object at 2), so an ETag a client kept from before never matches a body of another shape.
ANSWER_SHAPE = 2


def prepare(operation: str, raw: dict[str, Any] | None, data_version: int) -> Prepared:
    params = canonical_parameters(operation, raw)
    material = json.dumps(
        {"operation": operation, "parameters": params, "dataVersion": data_version, "shape": ANSWER_SHAPE},
        sort_keys=True,
        separators=(",", ":"),
    )
    return Prepared(operation, params, data_version, hashlib.sha256(material.encode()).hexdigest())


def execute(state: AppState, prep: Prepared) -> dict[str, Any]:
    """Run the operation and return the cacheable payload (rows inline, or parked in the results bucket)."""
    with state.connection("reader") as conn:
        result = run_operation(
            conn,
            prep.operation,
            prep.parameters,
            timeout_s=state.api.sync_timeout_seconds,
            max_rows=state.api.sync_max_rows,
        )
    payload: dict[str, Any] = {
        "operation": prep.operation,
        "parameters": result.parameters,
        "columns": result.columns,
        "resultCount": result.row_count,
        "truncated": result.truncated,
        "executionTimeMs": round(result.elapsed_s * 1000, 1),
        "dataVersion": prep.data_version,
    }
    if result.notes:  # only when there are any: an answer without notes keeps its shape
        payload["notes"] = list(result.notes)
    body = to_json(result.columns, result.rows)
    if not stays_inline(result.row_count, lambda: len(body), state.api.inline_budget()):
        keys = {"json": f"sync/{prep.key}/result.json", "csv": f"sync/{prep.key}/result.csv"}
        s3 = state.client("s3")
        meta = result_metadata(prep.operation, result.row_count)
        s3.put_object(
            Bucket=state.settings.results_bucket,
            Key=keys["json"],
            Body=body,
            ContentType="application/json",
            Metadata=meta,
        )
        s3.put_object(
            Bucket=state.settings.results_bucket,
            Key=keys["csv"],
            Body=to_csv(result.columns, result.rows),
            ContentType="text/csv",
            Metadata=meta,
        )
        payload.update(storage="s3", s3=keys, data=None)
    else:
        payload.update(storage="inline", data=json.loads(body)["rows"])
    return payload


def presign_get(state: AppState, key: str, filename: str | None = None) -> str:
    params: dict[str, Any] = {"Bucket": state.settings.results_bucket, "Key": key}
    if filename:
        params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
    url: str = state.client("s3").generate_presigned_url(
        "get_object", Params=params, ExpiresIn=state.api.presign_seconds
    )
    return url


def envelope(state: AppState, payload: dict[str, Any], *, cache_hit: bool) -> dict[str, Any]:
    """The old API's success envelope (its fields: api/compat.py), with our additions in metadata."""
    metadata: dict[str, Any] = {
        "resultCount": payload["resultCount"],
        "timestamp": now_iso(),
        "cacheHit": cache_hit,
        "executionTimeMs": payload["executionTimeMs"],
        "columns": payload["columns"],
        "dataVersion": payload["dataVersion"],
        "truncated": payload["truncated"],
        "parameters": payload["parameters"],
        "storage": payload["storage"],
    }
    if payload.get("notes"):
        metadata["notes"] = payload["notes"]
    if payload["storage"] == "s3":
        metadata["download"] = {
            "json": presign_get(state, payload["s3"]["json"]),
            "csv": presign_get(state, payload["s3"]["csv"]),
            "expiresIn": state.api.presign_seconds,
        }
    return {
        "success": True,
        "operation": payload["operation"],
        **analytics_fields(payload, state.settings.results_bucket),
        "data": answer_data(payload["operation"], payload.get("data")),
        "metadata": metadata,
    }


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


__all__ = ["Prepared", "envelope", "execute", "prepare"]
