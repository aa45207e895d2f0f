"""GET|POST /analytics (synchronous, cached) and GET /analytics/operations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response

from api import analytics_service as svc
from api.deps import AppState, Principal, ReadScope, State, require
from api.jobs_service import launch_job
from api.models import AnalyticsRequest, AnalyticsResponse, JobRequest, OperationsResponse, Problem
from api.problems import timeout_problem
from resources.analytics.catalogue import describe_catalogue
from resources.analytics.errors import QueryTimeout

router = APIRouter(tags=["analytics"])
PreferHeader = Annotated[str | None, Header(description="respond-async: run as a job when not cached")]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    s: {"model": Problem, "content": {"application/problem+json": {}}}
    for s in (400, 401, 403, 404, 413, 422, 503, 504)
}


@router.get("/analytics/operations", response_model=OperationsResponse, summary="The analytics catalogue",
            responses={k: PROBLEMS[k] for k in (401, 403)})
def operations(_: ReadScope) -> dict[str, Any]:
    ops = describe_catalogue()
    return {"success": True, "operations": ops, "count": len(ops)}


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    return any(t.strip().removeprefix("W/") == etag for t in header.split(","))


def answer(request: Request, state: AppState, principal: Principal, operation: str,
           parameters: dict[str, Any], prefer: str | None) -> Response:
    if operation == "custom_complex_query":
        require(principal, "sql")
    prep = svc.prepare(state, operation, parameters)
    headers = {"ETag": prep.etag, "Cache-Control": "private, no-cache", "Vary": "X-API-Key, Authorization"}
    if _etag_matches(request.headers.get("if-none-match"), prep.etag):
        return Response(status_code=304, headers={**headers, "X-Cache": "HIT"})
    payload = svc.cache_get(state, prep.key)
    hit = payload is not None
    if payload is None:
        if prefer and "respond-async" in prefer.lower():
            require(principal, "jobs")
            job, _ = launch_job(state, principal, JobRequest(operation=operation, parameters=parameters), None)
            return JSONResponse({"success": True, "job": job}, status_code=202,
                                headers={"Location": job["links"]["self"], "Preference-Applied": "respond-async"})
        try:
            payload = svc.execute(state, prep)
        except QueryTimeout:
            raise timeout_problem(operation, state.api.sync_timeout_seconds) from None
        svc.cache_put(state, prep.key, payload)
    return JSONResponse(svc.envelope(state, payload, cache_hit=hit), headers={**headers,
                                                                            "X-Cache": "HIT" if hit else "MISS"})


_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEMS,
    202: {"description": "Accepted as a job (Prefer: respond-async)"},
    304: {"description": "Not modified (If-None-Match matched the ETag)"},
}


@router.get("/analytics", response_model=AnalyticsResponse, summary="Run an operation (query string)",
            responses=_RESPONSES,
            description="Every query parameter other than `operation` is a parameter of the operation, e.g. "
                        "`/analytics?operation=customer_analysis&metric=revenue&group_by=industry`.")
def analytics_get(
    request: Request,
    operation: Annotated[str, Query(min_length=1, max_length=100, description="A catalogue operation name")],
    principal: ReadScope,
    state: State,
    prefer: PreferHeader = None,
) -> Response:
    params = {k: v for k, v in request.query_params.items() if k not in ("operation", "api_key")}
    return answer(request, state, principal, operation, params, prefer)


@router.post("/analytics", response_model=AnalyticsResponse, summary="Run an operation (JSON body)",
             responses=_RESPONSES)
def analytics_post(
    request: Request,
    body: AnalyticsRequest,
    principal: ReadScope,
    state: State,
    prefer: PreferHeader = None,
) -> Response:
    return answer(request, state, principal, body.operation, body.parameters, prefer)
