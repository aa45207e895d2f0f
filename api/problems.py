"""Every error response, in one place: RFC 9457 problem+json that also keeps the seed's error shape.

    {"type": "urn:canonical-pipeline:problem:unknown_operation", "title": "Unknown operation",
     "status": 404, "detail": "...", "instance": "/analytics", "requestId": "...", "errors": [...],
     "success": false, "error": {"message": "...", "type": "UnknownOperation", "code": "unknown_operation"},
     "suggestions": ["..."]}

Nothing internal reaches a body: unexpected exceptions become a generic 500 (logged with the request id),
and database messages are only passed on for a caller's own custom query.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from resources.analytics.errors import (
    AnalyticsError,
    InvalidParameters,
    NotReadOnlyRole,
    QueryFailed,
    QueryRejected,
    QueryTimeout,
    TransientDatabaseError,
    UnknownOperation,
)

log = logging.getLogger("api")
PROBLEM_TYPE = "urn:canonical-pipeline:problem:"
PROBLEM_JSON = "application/problem+json"

TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Timeout",
}


class ApiProblem(Exception):
    """Raise anywhere in the app to answer with a problem."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str | None = None,
        error_type: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        suggestions: list[str] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title or TITLES.get(status, "Error")
        self.error_type = error_type or "".join(p.capitalize() for p in code.split("_"))
        self.errors = errors
        self.suggestions = suggestions or []
        self.headers = headers or {}
        self.extra = extra or {}


def problem_body(p: ApiProblem, instance: str, request_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + p.code,
        "title": p.title,
        "status": p.status,
        "detail": p.detail,
        "instance": instance,
        "requestId": request_id,
    }
    if p.errors is not None:
        body["errors"] = p.errors
    body.update(p.extra)
    body.update(
        {
            "success": False,
            "error": {"message": p.detail, "type": p.error_type, "code": p.code},
            "suggestions": p.suggestions,
        }
    )
    return body


def problem_response(p: ApiProblem, instance: str, request_id: str | None) -> JSONResponse:
    headers = dict(p.headers)
    if request_id:
        headers["X-Request-Id"] = request_id
    return JSONResponse(
        problem_body(p, instance, request_id), status_code=p.status, headers=headers, media_type=PROBLEM_JSON
    )


AVAILABLE_ENDPOINTS = [
    "GET /health",
    "GET /analytics?operation=<operation>&parameters=<json>",
    "POST /analytics",
    "GET /analytics/operations",
    "POST /analytics/jobs",
    "GET /analytics/jobs/{jobId}",
    "GET /analytics/jobs/{jobId}/result",
    "DELETE /analytics/jobs/{jobId}",
    "GET /download/{key}",
    "GET /ingest/files",
    "GET /ingest/files/{key}",
    "POST /ingest/files/{key}/reprocess",
    "POST /ingest/uploads",
    "GET /entities/{canonicalId}",
    "GET /golden/{goldenId}",
    "GET /golden/review",
    "POST /golden/review/decisions",
]


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


# The HTTP status of each analytics error, in one table: the domain errors know nothing of HTTP, and a
# test fails for an error class missing here.
ANALYTICS_ERROR_STATUS: dict[type[AnalyticsError], int] = {
    AnalyticsError: 500,
    UnknownOperation: 404,
    InvalidParameters: 422,
    QueryRejected: 422,
    QueryTimeout: 504,
    QueryFailed: 400,
    TransientDatabaseError: 503,
    NotReadOnlyRole: 500,
}


def analytics_error_status(exc: AnalyticsError) -> int:
    """The status of the nearest class of `exc` in ANALYTICS_ERROR_STATUS."""
    return next(ANALYTICS_ERROR_STATUS[c] for c in type(exc).__mro__ if c in ANALYTICS_ERROR_STATUS)


def from_analytics_error(exc: AnalyticsError) -> ApiProblem:
    """The catalogue's errors → problems with the seed's hints."""
    status = analytics_error_status(exc)
    if isinstance(exc, UnknownOperation):
        return ApiProblem(
            status,
            exc.code,
            exc.message,
            title="Unknown operation",
            error_type="UnknownOperation",
            suggestions=[
                f"Use one of: {', '.join(exc.known)}",
                "GET /analytics/operations lists each operation and its parameters",
            ],
            extra={"validOperations": exc.known},
        )
    if isinstance(exc, InvalidParameters):
        errors = [
            {
                "field": e.field,
                "message": e.message,
                **({"validValues": e.valid_values} if e.valid_values is not None else {}),
            }
            for e in exc.errors
        ]
        return ApiProblem(
            status,
            exc.code,
            exc.message,
            title="Invalid parameters",
            error_type="ValidationError",
            errors=errors,
            suggestions=[f"GET /analytics/operations shows the parameters of {exc.operation}"],
        )
    if isinstance(exc, QueryRejected):
        return ApiProblem(
            status,
            exc.code,
            exc.message,
            title="Query rejected",
            error_type="QueryRejected",
            errors=[{"field": "query", "message": exc.reason, "rule": exc.rule}],
            suggestions=["custom_complex_query accepts one SELECT or WITH statement over canonical.*"],
        )
    if isinstance(exc, QueryTimeout):
        return timeout_problem(exc.operation, exc.timeout_s)
    if isinstance(exc, QueryFailed):
        # The database's own message about the caller's query (e.g. a table that does not exist); never SQL
        # of ours: catalogue operations do not fail this way, and the message carries no statement text.
        extra = {"sqlstate": exc.sqlstate} if exc.sqlstate else {}
        return ApiProblem(
            status,
            exc.code,
            exc.message,
            title="Query failed",
            error_type="DatabaseError",
            extra=extra,
            suggestions=[
                (
                    "Check the table and column names: the read-only role sees canonical.* "
                    "(entities, entity_history, entity_relationships, time_series_data)"
                )
            ],
        )
    if isinstance(exc, TransientDatabaseError):
        return ApiProblem(
            status,
            exc.code,
            "the database is unavailable at the moment; retry shortly",
            title="Database unavailable",
            error_type="DatabaseUnavailable",
            headers={"Retry-After": "5"},
            suggestions=["Retry after a few seconds"],
        )
    log.error("analytics error %s: %s", exc.code, exc.message)
    return ApiProblem(
        status, "internal_error", "the request could not be completed", error_type="InternalError"
    )


def timeout_problem(operation: str, timeout_s: float) -> ApiProblem:
    return ApiProblem(
        ANALYTICS_ERROR_STATUS[QueryTimeout],
        "query_timeout",
        f"{operation} did not finish within the synchronous budget of {timeout_s:g} s; run it as a job",
        title="Timeout",
        error_type="TimeoutError",
        suggestions=[
            "POST /analytics/jobs with the same operation and parameters, then poll GET /analytics/jobs/{id}",
            "or send the request with 'Prefer: respond-async'",
        ],
        extra={"jobsEndpoint": "/analytics/jobs"},
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def _problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(exc, request.url.path, request_id_of(request))

    @app.exception_handler(AnalyticsError)
    async def _analytics(request: Request, exc: AnalyticsError) -> JSONResponse:
        return problem_response(from_analytics_error(exc), request.url.path, request_id_of(request))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errs):
            p = ApiProblem(
                400,
                "malformed_json",
                "the request body is not valid JSON",
                title="Malformed JSON",
                error_type="ValidationError",
                suggestions=['Send a JSON object such as {"operation": "simple_demo", "parameters": {}}'],
            )
        else:
            fields = [
                {
                    "field": ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body",
                    "message": e.get("msg", "invalid"),
                }
                for e in errs
            ]
            detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
            p = ApiProblem(
                422,
                "invalid_request",
                detail or "invalid request",
                error_type="ValidationError",
                errors=fields,
                suggestions=["See the OpenAPI document at /openapi.json"],
            )
        return problem_response(p, request.url.path, request_id_of(request))

    async def _aws(request: Request, exc: Exception) -> JSONResponse:
        # DynamoDB, S3 or Secrets Manager refused or could not be reached: not the caller's fault, and
        # usually brief (throttling, a network blip). The details go to the log, not the response.
        log.warning("AWS call failed (request id %s): %s", request_id_of(request), exc)
        p = ApiProblem(
            503,
            "aws_unavailable",
            "a storage service of the platform did not answer; retry shortly",
            title="Service unavailable",
            error_type="ServiceUnavailable",
            headers={"Retry-After": "5"},
            suggestions=["Retry after a few seconds", "GET /health shows which dependency is down"],
        )
        return problem_response(p, request.url.path, request_id_of(request))

    app.add_exception_handler(ClientError, _aws)
    app.add_exception_handler(BotoCoreError, _aws)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}")
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "error")
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint: {request.method} {request.url.path}"
        p = ApiProblem(
            exc.status_code,
            code,
            detail,
            headers=dict(exc.headers or {}),
            suggestions=["GET /docs or /openapi.json lists the endpoints"]
            if exc.status_code in (404, 405)
            else [],
            # The old API listed its endpoints on a 404; its clients may print them.
            extra={"availableEndpoints": AVAILABLE_ENDPOINTS} if exc.status_code == 404 else None,
        )
        return problem_response(p, request.url.path, request_id_of(request))
