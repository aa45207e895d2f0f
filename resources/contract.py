"""Names two sides must agree on, and the run configs both build. Dagster-free: the REST app imports it.

The Dagster definitions (assets/, sensors/), the REST app (api/), the CLI and the dev stack all take
job, op and tag names, file statuses and run configs from here, so renaming an op is one edit here, and
`tests/test_definitions.py` fails if a definition drifts from these names.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

# Dagster jobs and the ops whose config the other side writes or reads.
INGEST_JOB = "ingest_job"
INGEST_OP = "ingest_files"  # the multi-asset's op name
ANALYTICS_JOB = "analytics_job"
ANALYTICS_OP = "run_analytics"
LANDING_SENSOR = "landing_sensor"
REPLAY_JOB = "replay_source"
REPLAY_OP = "replay_files"

# Run tags.
BATCH_TAG = (
    "ingest/batch"  # the ingest.files batch a run loads (landing_sensor's run key; manual runs add it)
)
PRINCIPAL_TAG = "canonical/api-principal"
IDEMPOTENCY_TAG = "canonical/idempotency-key"

# `ingest.files.status`; the transitions are resources/ingest/registry.py's.
FileStatus = Literal["pending", "queued", "loading", "loaded", "failed", "skipped", "held"]
FILE_STATUSES: tuple[FileStatus, ...] = (
    "pending",
    "queued",
    "loading",
    "loaded",
    "failed",
    "skipped",
    "held",
)
OPEN_STATUSES: tuple[FileStatus, ...] = ("pending", "queued", "loading")
IN_FLIGHT_STATUSES: tuple[FileStatus, ...] = ("queued", "loading")  # a run holds the file
DONE_STATUSES: tuple[FileStatus, ...] = ("loaded", "failed", "skipped", "held")


def ingest_run_config(
    file_ids: Sequence[int] | None, max_refused_share: float | None = None
) -> dict[str, Any]:
    """ingest_job's run config: these files (None: whatever is pending)."""
    config: dict[str, Any] = {}
    if file_ids is not None:
        config["file_ids"] = list(file_ids)
    if max_refused_share is not None:
        config["max_refused_share"] = max_refused_share
    return {"ops": {INGEST_OP: {"config": config}}}


def replay_run_config(source: str, since: str | None = None) -> dict[str, Any]:
    """replay_source's run config: the loaded files of `source` (since: those whose time is at or after
    it, an ISO date or date and time)."""
    config: dict[str, Any] = {"source": source}
    if since is not None:
        config["since"] = since
    return {"ops": {REPLAY_OP: {"config": config}}}


# Parameters Dagster's config types cannot hold (a list of mixed values) travel as JSON text in the run
# config; the operation's parameter model reads that text back.
JSON_TEXT_PARAMETERS: dict[str, frozenset[str]] = {"custom_complex_query": frozenset({"params"})}


def analytics_run_config(
    operation: str,
    parameters: Mapping[str, Any],
    *,
    timeout_seconds: float | None = None,
    max_rows: int | None = None,
) -> dict[str, Any]:
    """analytics_job's run config for one catalogue operation: `request` is a selector keyed by the operation
    (a discriminated union in the op's config), holding that operation's typed parameters."""
    typed = {
        k: json.dumps(v) if k in JSON_TEXT_PARAMETERS.get(operation, ()) and not isinstance(v, str) else v
        for k, v in parameters.items()
    }
    config: dict[str, Any] = {"request": {operation: typed}}
    if timeout_seconds is not None:
        config["timeout_seconds"] = timeout_seconds
    if max_rows is not None:
        config["max_rows"] = max_rows
    return {"ops": {ANALYTICS_OP: {"config": config}}}


def analytics_request(run_config: Mapping[str, Any] | None) -> tuple[str | None, dict[str, Any]]:
    """(operation, parameters) of an analytics_job run, from its run config (also the shape before typed
    launches: `operation` and `parameters` side by side, still found on older runs)."""
    cfg = op_config(run_config, ANALYTICS_OP)
    request = cfg.get("request")
    if isinstance(request, Mapping) and len(request) == 1:
        [(operation, parameters)] = request.items()
        out = dict(parameters or {})
        for name in JSON_TEXT_PARAMETERS.get(str(operation), ()) & out.keys():
            # Unreadable text is kept as sent: the op refused it with the reason.
            with contextlib.suppress(ValueError):
                out[name] = json.loads(out[name]) if isinstance(out[name], str) else out[name]
        return str(operation), out
    operation = cfg.get("operation")
    return (str(operation) if operation else None), dict(cfg.get("parameters") or {})


def op_config(run_config: Mapping[str, Any] | None, op: str) -> dict[str, Any]:
    """The config one op received in a run (empty when the run had none)."""
    cfg = ((run_config or {}).get("ops") or {}).get(op) or {}
    return dict(cfg.get("config") or {})
