"""Golden entities: GET /entities/{canonical_id}, GET /golden/{golden_id}, the review queue and stewards'
decisions. Reads on the read-only role, decisions on the writer; the SQL is resources/golden/queries.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from api.analytics_service import now_iso
from api.deps import ReadScope, State, StewardScope
from api.golden_models import (
    CANONICAL_ID_PATTERN,
    DecisionRequest,
    DecisionResponse,
    EntityGoldenResponse,
    GoldenEntityResponse,
    ReviewQueueResponse,
)
from api.models import problem_responses
from api.problems import ApiProblem
from resources.golden.queries import (
    Decision,
    Refused,
    entity_golden,
    golden_entity,
    record_decision,
    review_queue,
)

router = APIRouter(tags=["golden"])

CanonicalId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=300,
        pattern=CANONICAL_ID_PATTERN,
        description="A canonical id, e.g. crm_CUST-1001",
    ),
]
GoldenId = Annotated[str, Path(pattern=r"^G[0-9]{1,18}$", description="A golden id, e.g. G42")]

# Each refusal's status: a missing id is 404, a decision that cannot apply 409, a malformed cursor 400.
REFUSAL_STATUS = {
    "unknown_entity": 404,
    "not_resolved": 409,
    "nothing_to_move": 409,
    "same_record": 422,
    "bad_cursor": 400,
}


def _problem(refused: Refused, *suggestions: str) -> ApiProblem:
    status = REFUSAL_STATUS[refused.code]
    return ApiProblem(status, refused.code, refused.reason, suggestions=list(suggestions))


def _ok(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(jsonable_encoder(body), status_code=status)


@router.get(
    "/entities/{canonical_id}",
    response_model=EntityGoldenResponse,
    summary="A canonical record's golden id and golden record",
    responses=problem_responses(401, 403, 404, 422, 503),
)
def entity(canonical_id: CanonicalId, _: ReadScope, state: State) -> JSONResponse:
    with state.connection("reader") as conn:
        found = entity_golden(conn, canonical_id)
    if isinstance(found, Refused):
        raise _problem(found, "Canonical ids are <source>_<source id>, e.g. crm_CUST-1001")
    return _ok(
        {
            "success": True,
            "data": {"canonicalId": found.canonical_id, "goldenId": found.golden_id, "golden": found.record},
        }
    )


@router.get(
    "/golden/review",
    response_model=ReviewQueueResponse,
    summary="The review queue: pairs the model could not decide, strongest match first",
    responses=problem_responses(400, 401, 403, 422, 503),
)
def review(
    _: ReadScope,
    state: State,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=1000, description="metadata.nextCursor of the previous page")
    ] = None,
) -> JSONResponse:
    with state.connection("reader") as conn:
        page = review_queue(conn, limit=limit, cursor=cursor)
    if isinstance(page, Refused):
        raise _problem(page, "Leave cursor out for the first page")
    rows, next_cursor = page
    return _ok(
        {
            "success": True,
            "data": rows,
            "metadata": {"resultCount": len(rows), "timestamp": now_iso(), "nextCursor": next_cursor},
        }
    )


@router.get(
    "/golden/{golden_id}",
    response_model=GoldenEntityResponse,
    summary="A golden entity: its record with field lineage, members with match evidence, history",
    responses=problem_responses(401, 403, 404, 422, 503),
)
def golden(golden_id: GoldenId, _: ReadScope, state: State) -> JSONResponse:
    with state.connection("reader") as conn:
        found = golden_entity(conn, golden_id)
    if isinstance(found, Refused):
        raise _problem(found, "GET /entities/{canonical_id} gives a record's golden id")
    return _ok({"success": True, "data": found})


@router.post(
    "/golden/review/decisions",
    status_code=201,
    response_model=DecisionResponse,
    summary="Decide a pair (same / not_same) or move a member out of its golden entity",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
def decide(body: DecisionRequest, principal: StewardScope, state: State) -> JSONResponse:
    with state.connection("writer") as conn, conn.transaction():  # the writer's connections are autocommit
        done = record_decision(
            conn,
            kind=body.decision,
            canonical_id=body.canonical_id,
            other_canonical_id=body.other_canonical_id,
            decided_by=principal.name,
            note=body.note,
        )
    if isinstance(done, Refused):
        raise _problem(done, "GET /golden/review lists the pairs waiting for a decision")
    return _ok(
        {
            "success": True,
            "data": _decision_view(done),
            "message": "Recorded; it applies from the next resolution",
        },
        status=201,
    )


def _decision_view(d: Decision) -> dict[str, Any]:
    return {
        "decisionId": d.decision_id,
        "decision": d.kind,
        "canonicalIdL": d.canonical_id_l,
        "canonicalIdR": d.canonical_id_r,
        "goldenId": d.golden_id,
        "apartFrom": d.apart_from,
        "decidedBy": d.decided_by,
        "decidedAt": d.decided_at,
        "note": d.note,
    }
