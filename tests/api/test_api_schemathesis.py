"""Schemathesis over the app's own OpenAPI document: no 5xx outside the document, every response (status code,
body) as documented. The app runs on the test PostgreSQL (seeded) and the moto server; DAGSTER_URL points at a
closed port, so the job endpoints that reach Dagster answer their documented 503."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.config import ApiSettings
from resources.settings import Settings
from tests.api.conftest import seed_entities
from tests.support import aws as support_aws
from tests.support.postgres import reset_canonical

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("schemathesis")]

UNREACHABLE_DAGSTER = "http://127.0.0.1:1"


def no_server_error_but_dagster_down(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis' not_a_server_error, except the one 5xx this setup must produce: the documented 503 of an
    endpoint that needs Dagster (launching a job, `Prefer: respond-async`). status_code_conformance checks
    that the endpoint documents it."""
    if response.status_code < 500:
        return None
    body = response.json() if "json" in response.headers.get("content-type", [""])[0] else {}
    assert response.status_code == 503 and body.get("error", {}).get("code") == "dagster_unavailable", (
        f"server error {response.status_code}: {response.text[:500]}"
    )
    return None


CHECKS = [
    no_server_error_but_dagster_down,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

# The document does not depend on the environment: load it from an app on the default settings (nothing is
# connected until a request needs it); the requests go to the app on the test stack (`app` fixture).
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(Settings(), ApiSettings()))


@pytest.fixture(scope="module")
def app(pg: Any, moto_server: Any) -> Iterator[FastAPI]:
    reset_canonical(pg.owner_url)
    seed_entities(pg.owner_url)
    env = {
        "DATABASE_URL": pg.writer_url,
        "READONLY_DATABASE_URL": pg.reader_url,
        "DAGSTER_URL": UNREACHABLE_DAGSTER,
        **support_aws.unique_aws_env(moto_server.endpoint_url),
    }
    with support_aws.settings_from_env(env) as stack_settings:
        # Health checks get 10 s: on two busy cores a check's first call (building its boto3 client) can pass
        # 1 s, and a /health 503 here would be a slow machine, not a contract break. Dagster is refused at once.
        application = create_app(
            stack_settings,
            ApiSettings(API_HEALTH_TIMEOUT_SECONDS=10, DAGSTER_TIMEOUT_SECONDS=1, API_SYNC_TIMEOUT_SECONDS=5),
        )
        try:
            yield application
        finally:
            application.state.app_state.close()


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_response_is_documented(case: Any, app: FastAPI) -> None:
    case.call_and_validate(app=app, checks=CHECKS)


def _declared(op: dict[str, Any], status: int) -> dict[str, Any]:
    return (op.get("responses", {}).get(str(status)) or {}).get("content", {})


def test_every_error_the_app_can_give_is_declared_as_problem_json() -> None:
    """What the problem handlers answer for any route: 422 (invalid parameters or body) and, with a body, 400
    (malformed JSON) and 413 (too large), all application/problem+json with the Problem schema (found by the
    fuzzing above: GET /ingest/files/{key} lacked its 422, POST /ingest/uploads its 400 and 413, and every
    problem's schema sat under application/json, which the app never sends for an error)."""
    doc = create_app(Settings(), ApiSettings()).openapi()
    missing = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            expected = ([422] if op.get("parameters") or op.get("requestBody") else []) + (
                [400, 413] if op.get("requestBody") else []
            )
            missing += [
                f"{method.upper()} {path} {code}"
                for code in expected
                if list(_declared(op, code)) != ["application/problem+json"]
            ]
            for code, resp in op["responses"].items():
                content = resp.get("content", {})
                if code.startswith("4") and list(content) != ["application/problem+json"]:
                    missing.append(f"{method.upper()} {path} {code} declared as {list(content)}")
                elif (
                    "application/problem+json" in content
                    and "schema" not in content["application/problem+json"]
                ):
                    missing.append(f"{method.upper()} {path} {code}: problem+json without a schema")
    assert missing == []


def test_the_headers_the_app_sends_are_in_the_document() -> None:
    """X-Request-Id on every response; the cache headers on /analytics answers; Retry-After where retrying is
    the answer (response_headers_conformance above checks the values the app actually sends)."""
    doc = create_app(Settings(), ApiSettings()).openapi()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for code, resp in op["responses"].items():
                assert resp["headers"]["X-Request-Id"]["required"] is True, (method, path, code)
    for method in ("get", "post"):
        ok = doc["paths"]["/analytics"][method]["responses"]["200"]["headers"]
        assert {"ETag", "X-Cache", "X-Cache-Tier"} <= set(ok)
        assert ok["X-Cache"]["schema"]["enum"] == ["HIT", "MISS"]
    assert "Retry-After" in doc["paths"]["/analytics/jobs/{job_id}"]["delete"]["responses"]["409"]["headers"]


def test_routes_behind_a_key_declare_503() -> None:
    """Checking a key can itself be unavailable (an unreadable or invalid keys secret): 503 auth_unavailable."""
    doc = create_app(Settings(), ApiSettings()).openapi()
    missing = [
        f"{m.upper()} {path}"
        for path, ops in doc["paths"].items()
        for m, op in ops.items()
        if "401" in op["responses"] and "503" not in op["responses"]
    ]
    assert missing == []
