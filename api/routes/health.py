"""GET /health: liveness plus readiness of PostgreSQL, S3, DynamoDB (required) and Dagster (jobs only)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, wait
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import psycopg
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.analytics_service import now_iso
from api.deps import State
from api.models import HealthResponse
from api.state import AppState

router = APIRouter(tags=["health"])
SERVICE = "canonical-pipeline analytics API"
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="health")

try:
    VERSION = version("canonical-pipeline")
except PackageNotFoundError:  # pragma: no cover - running from a checkout without install
    VERSION = "dev"


def _checks(state: AppState) -> dict[str, tuple[bool, Any]]:
    timeout = state.api.health_timeout_seconds

    def postgres() -> None:
        url = state.settings.readonly_database_url
        with psycopg.connect(
            url,
            **state.connect_params(
                url, {"connect_timeout": max(1, int(timeout)), "application_name": "canonical-api-health"}
            ),
        ) as conn:
            conn.execute("SELECT 1").fetchone()

    def s3() -> None:
        state.client("s3").head_bucket(Bucket=state.settings.results_bucket)

    def dynamodb() -> None:
        state.client("dynamodb").describe_table(TableName=state.settings.jobs_table)

    def dagster() -> None:
        client = state.dagster
        client.timeout = timeout
        client.ping()

    return {
        "postgres": (True, postgres),
        "s3": (True, s3),
        "dynamodb": (True, dynamodb),
        "dagster": (False, dagster),
    }


def _timed(fn: Any) -> tuple[float, str | None]:
    started = time.perf_counter()
    try:
        fn()
        err = None
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; the type is enough detail
        err = type(exc).__name__
    return (time.perf_counter() - started) * 1000, err


@router.get(
    "/health",
    response_model=HealthResponse,
    summary="Liveness and readiness",
    responses={503: {"model": HealthResponse, "description": "A required dependency is down"}},
)
def health(state: State) -> JSONResponse:
    checks = _checks(state)
    futures = {name: _pool.submit(_timed, fn) for name, (_, fn) in checks.items()}
    timeout = state.api.health_timeout_seconds
    wait(futures.values(), timeout=timeout + 0.5)
    out: dict[str, dict[str, Any]] = {}
    for name, fut in futures.items():
        required = checks[name][0]
        if fut.done():
            ms, err = fut.result()
        else:
            ms, err = timeout * 1000, "Timeout"
        out[name] = {
            "status": "down" if err else "ok",
            "latencyMs": round(ms, 1),
            "required": required,
            "detail": err,
        }
    required_down = any(c["status"] == "down" and c["required"] for c in out.values())
    any_down = any(c["status"] == "down" for c in out.values())
    status = "unhealthy" if required_down else "degraded" if any_down else "healthy"
    body = {
        "success": not required_down,
        "status": status,
        "timestamp": now_iso(),
        "version": VERSION,
        "checks": out,
        # The old API's fields.
        "database": "connected" if out["postgres"]["status"] == "ok" else "disconnected",
        "details": {"service": SERVICE, "version": VERSION},
    }
    return JSONResponse(
        body, status_code=503 if required_down else 200, headers={"Cache-Control": "no-store"}
    )
