"""GET|POST /analytics (synchronous, cached) and GET /analytics/operations."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from api import analytics_service as svc
from api.auth import Principal, require
from api.compat import job_fields
from api.deps import ReadScope, State
from api.jobs_service import launch_job
from api.json_body import FastJSONResponse
from api.models import AnalyticsRequest, AnalyticsResponse, JobRequest, OperationsResponse, problem_responses
from api.problems import ApiProblem, timeout_problem
from api.state import AppState
from resources.analytics.catalogue import describe_catalogue
from resources.analytics.errors import QueryTimeout

router = APIRouter(tags=["analytics"])
PreferHeader = Annotated[str | None, Header(description="respond-async: run as a job when not cached")]
CacheControlHeader = Annotated[
    str | None,
    Header(
        description="no-cache: compute a fresh answer instead of serving the cached one (it then replaces the "
        "cached one)"
    ),
]

PROBLEMS = problem_responses(400, 401, 403, 404, 413, 422, 503, 504)


@router.get(
    "/analytics/operations",
    response_model=OperationsResponse,
    summary="The analytics catalogue",
    responses={k: PROBLEMS[k] for k in (401, 403, 503)},
)
def operations(_: ReadScope) -> dict[str, Any]:
    ops = describe_catalogue()
    return {"success": True, "operations": ops, "count": len(ops)}


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    return any(t.strip().removeprefix("W/") == etag for t in header.split(","))


def _no_cache(header: str | None) -> bool:
    return header is not None and any(d.strip().lower() == "no-cache" for d in header.split(","))


async def answer(
    request: Request,
    state: AppState,
    principal: Principal,
    operation: str,
    parameters: dict[str, Any],
    prefer: str | None,
    cache_control: str | None,
) -> Response:
    """A cached answer is served on the event loop (the data-version read is async, the memory tier never
    blocks); DynamoDB, the query, S3 and Dagster are blocking calls and run in worker threads."""
    if operation == "custom_complex_query":
        require(principal, "sql")
    prep = svc.prepare(operation, parameters, await state.data_version())
    headers = {"ETag": prep.etag, "Cache-Control": "private, no-cache", "Vary": "X-API-Key, Authorization"}
    if _etag_matches(request.headers.get("if-none-match"), prep.etag):
        return Response(status_code=304, headers={**headers, "X-Cache": "HIT"})
    cached = None
    # A client that suspects a stale answer (or a benchmark measuring the work) can ask for a fresh one.
    if not _no_cache(cache_control):
        cached = state.result_cache.recall(prep.key) or await run_in_threadpool(
            state.result_cache.fetch, prep.key
        )
    if cached is None:
        if prefer and "respond-async" in prefer.lower():
            require(principal, "jobs")
            job, _ = await run_in_threadpool(
                launch_job, state, principal, JobRequest(operation=operation, parameters=parameters), None
            )
            return JSONResponse(
                {"success": True, "job": job, **job_fields(job)},
                status_code=202,
                headers={"Location": job["links"]["self"], "Preference-Applied": "respond-async"},
            )
        try:
            payload = await run_in_threadpool(_compute, state, prep)
        except QueryTimeout:
            raise timeout_problem(operation, state.api.sync_timeout_seconds) from None
    else:
        payload = cached[0]
        headers["X-Cache-Tier"] = cached[1]
    hit = cached is not None
    if payload["storage"] == "s3":  # presigning may resolve credentials: not on the loop
        body = await run_in_threadpool(lambda: svc.envelope(state, payload, cache_hit=hit))
    else:
        body = svc.envelope(state, payload, cache_hit=hit)
    return FastJSONResponse(body, headers={**headers, "X-Cache": "HIT" if hit else "MISS"})


def _compute(state: AppState, prep: svc.Prepared) -> dict[str, Any]:
    payload = svc.execute(state, prep)
    state.result_cache.put(prep.key, payload)
    return payload


_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEMS,
    202: {"description": "Accepted as a job (Prefer: respond-async)"},
    304: {"description": "Not modified (If-None-Match matched the ETag)"},
}


@router.get(
    "/analytics",
    response_model=AnalyticsResponse,
    summary="Run an operation (query string)",
    responses=_RESPONSES,
    description="Every query parameter other than `operation` is a parameter of the operation, e.g. "
    "`/analytics?operation=customer_analysis&metric=revenue&group_by=industry`. The segment operations "
    "(customer_analysis, revenue_analysis, count_analysis) take `entity_scope`: `source` (the default: one "
    "entity per source record) or `golden` (one per golden entity of the latest resolution), e.g. "
    "`/analytics?operation=revenue_analysis&group_by=industry&entity_scope=golden`. Each operation's "
    "parameters, with their JSON Schema, are listed by GET /analytics/operations.",
)
async def analytics_get(
    request: Request,
    operation: Annotated[str, Query(min_length=1, max_length=100, description="A catalogue operation name")],
    principal: ReadScope,
    state: State,
    parameters: Annotated[
        str | None,
        Query(
            max_length=20_000,
            description="The old API's form: every parameter in one JSON object, e.g. "
            '`parameters={"timeframe":"6 months"}` (may be combined with single ones)',
        ),
    ] = None,
    prefer: PreferHeader = None,
    cache_control: CacheControlHeader = None,
) -> Response:
    params = {
        k: v for k, v in request.query_params.items() if k not in ("operation", "api_key", "parameters")
    }
    if parameters is not None:
        params = merge_json_parameters(parameters, params)
    return await answer(request, state, principal, operation, params, prefer, cache_control)


def merge_json_parameters(text: str, single: dict[str, Any]) -> dict[str, Any]:
    """The old GET form's `parameters` JSON object merged with parameters given one by one."""
    try:
        given = json.loads(text)
    except ValueError:
        raise ApiProblem(
            400,
            "malformed_parameters",
            "the parameters query parameter is not valid JSON",
            title="Malformed JSON",
            error_type="ValidationError",
            suggestions=[
                'Send a JSON object: parameters={"timeframe":"6 months"}',
                "or give each parameter as its own query parameter",
            ],
        ) from None
    if not isinstance(given, dict):
        raise ApiProblem(
            400,
            "malformed_parameters",
            "the parameters query parameter must be a JSON object",
            title="Malformed JSON",
            error_type="ValidationError",
            suggestions=['Send a JSON object: parameters={"timeframe":"6 months"}'],
        )
    twice = sorted(k for k in given.keys() & single.keys() if str(given[k]) != single[k])
    if twice:
        raise ApiProblem(
            400,
            "parameter_given_twice",
            f"given both in parameters and on their own, with different values: {', '.join(twice)}",
            title="Conflicting parameters",
            error_type="ValidationError",
            suggestions=["Give each parameter once"],
        )
    return {**given, **single}


@router.post(
    "/analytics",
    response_model=AnalyticsResponse,
    summary="Run an operation (JSON body)",
    responses=_RESPONSES,
)
async def analytics_post(
    request: Request,
    body: AnalyticsRequest,
    principal: ReadScope,
    state: State,
    prefer: PreferHeader = None,
    cache_control: CacheControlHeader = None,
) -> Response:
    return await answer(request, state, principal, body.operation, body.parameters, prefer, cache_control)
