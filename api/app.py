"""The REST app: `create_app(settings=None)`, served by uvicorn locally and by Mangum on Lambda.

    uvicorn --factory api.app:create_app --port 8000

Dagster-free (README, Architecture): it talks to PostgreSQL, DynamoDB, S3 and Dagster's GraphQL endpoint only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api import problems
from api.config import ApiSettings
from api.middleware import RequestContextMiddleware
from api.routes import analytics, download, golden, health, ingest, jobs
from api.state import AppState
from resources.settings import Settings, get_settings

DESCRIPTION = """Analytics over the canonical model, analytics jobs run by Dagster, ingest status, and golden
entities (resolved companies, their members and match evidence, the stewards' review queue).

Success bodies keep the seed API's envelope (`success`, `operation`, `data`, `metadata`); every error is
`application/problem+json` (RFC 9457) that also carries `success: false`, `error.message`, `error.type` and
`suggestions`. Every response has an `X-Request-Id`.

Authentication: an API key in `X-API-Key` (or `Authorization: Bearer <key>`) with scopes `read`, `jobs`,
`sql` (`custom_complex_query` needs `sql`), `steward` (deciding review pairs). With no keys configured (the local default) every caller has
every scope."""


def create_app(settings: Settings | None = None, api_settings: ApiSettings | None = None) -> FastAPI:
    state = AppState(settings=settings or get_settings(), api=api_settings or ApiSettings())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await state.aclose()

    app = FastAPI(title="canonical-pipeline API", version="1.0.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.app_state = state
    problems.install(app)
    for module in (health, analytics, jobs, download, ingest, golden):
        app.include_router(module.router)
    origins = state.api.cors_origin_list()
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=[
                "Content-Type",
                "X-API-Key",
                "Authorization",
                "Idempotency-Key",
                "If-None-Match",
                "Cache-Control",
                "Prefer",
                "X-Request-Id",
            ],
            expose_headers=["X-Request-Id", "X-Cache", "X-Cache-Tier", "ETag", "Location"],
        )
    app.add_middleware(RequestContextMiddleware, max_body_bytes=state.api.max_body_bytes)
    app.openapi = _document_headers(_problem_schemas_under_problem_json(app.openapi))  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema
    return app


def _header(description: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": schema}


_REQUEST_ID = _header(
    "This request's id (yours when you sent a valid X-Request-Id); quote it when reporting",
    {"type": "string"},
    required=True,
)
_CACHE_HEADERS = {
    "ETag": _header(
        "The answer's version: send it as If-None-Match to get 304 while it holds",
        {"type": "string"},
        required=True,
    ),
    "X-Cache": _header(
        "Whether the answer came from the cache", {"type": "string", "enum": ["HIT", "MISS"]}, required=True
    ),
    "X-Cache-Tier": _header(
        "On a HIT, which tier had it", {"type": "string", "enum": ["memory", "dynamodb"]}
    ),
}
_RETRY_AFTER = _header("Seconds to wait before trying again", {"type": "string"})


def _document_headers(build: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """The response headers the app sends, in the OpenAPI document: X-Request-Id on every response, the cache
    headers of /analytics, Location on 202, Retry-After where a retry is the answer, WWW-Authenticate on 401."""

    def openapi() -> dict[str, Any]:
        doc = build()
        for path, ops in doc.get("paths", {}).items():
            for op in ops.values():
                for code, resp in op.get("responses", {}).items():
                    headers = resp.setdefault("headers", {})
                    headers["X-Request-Id"] = _REQUEST_ID
                    if path == "/analytics" and code in ("200", "304"):
                        headers.update(_CACHE_HEADERS)
                    if code == "202":
                        headers["Location"] = _header("Where to follow the job", {"type": "string"})
                    if code in ("409", "429", "503"):
                        headers["Retry-After"] = _RETRY_AFTER
                    if code == "401":
                        headers["WWW-Authenticate"] = _header(
                            "The scheme to authenticate with", {"type": "string"}
                        )
        return doc

    return openapi


def _problem_schemas_under_problem_json(build: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """FastAPI puts a declared response model under application/json; errors are sent as
    application/problem+json only, so their schema moves there (and validators check problem bodies)."""

    def openapi() -> dict[str, Any]:
        doc = build()  # FastAPI caches the document: fixing it in place once is enough
        for ops in doc.get("paths", {}).values():
            for op in ops.values():
                for resp in op.get("responses", {}).values():
                    content = resp.get("content", {})
                    if "application/problem+json" in content and "application/json" in content:
                        content["application/problem+json"] = content.pop("application/json")
        return doc

    return openapi
