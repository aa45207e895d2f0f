"""Golden entities over REST: /entities/{id}, /golden/{id}, the review queue and stewards' decisions,
through the app on the real PostgreSQL (the conftest's seeded canonical records, resolved here)."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from api.auth import hash_key
from tests.api.conftest import Api, FakeDagster, make_client
from tests.support.golden import clusters, pair, resolve

pytestmark = pytest.mark.integration

# The conftest's records: Acme in CRM and ERP is one company; the rest are alone.
ACME = ("crm_C1", "erp_E1")
SINGLES = ("crm_C2", "crm_C3", "erp_E2", "legacy_L1")


@pytest.fixture
def resolved(api: Api) -> Api:
    resolve(
        api.stack.pg.writer_url,
        clusters(ACME, *([s] for s in SINGLES)),
        run_id="run-1",
        pairs=[
            pair("crm_C1", "erp_E1", 11.0, 0.999),
            pair("crm_C2", "erp_E2", 1.5, 0.74),
            pair("crm_C3", "legacy_L1", 0.5, 0.6),
        ],
        review=[("crm_C2", "erp_E2"), ("crm_C3", "legacy_L1")],
    )
    return api


def problem(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    assert body["error"]["code"] == code and body["success"] is False
    return body


def test_an_entity_answers_its_golden_id_and_golden_record(resolved: Api) -> None:
    resp = resolved.get("/entities/erp_E1")
    assert resp.status_code == 200, resp.text
    data = resp.json()["data"]
    assert data["canonicalId"] == "erp_E1" and data["goldenId"] == "G1"
    golden = data["golden"]
    # CRM has the higher priority: its name wins; revenue is the newest figure (ties go to priority).
    assert golden["fields"]["name"] == "Acme Corp" and golden["lineage"]["name"] == "crm_C1"
    assert golden["memberCount"] == 2 and golden["status"] == "active"


def test_an_unknown_entity_is_404_and_an_unresolved_one_has_no_golden_id_yet(resolved: Api) -> None:
    problem(resolved.get("/entities/crm_NOPE"), 404, "unknown_entity")
    with psycopg.connect(resolved.stack.pg.owner_url) as conn:
        conn.execute(
            """INSERT INTO canonical.entities (entity_type, source_system, canonical_id, name, attributes, attributes_hash)
               VALUES ('small_business', 'crm', 'crm_NEW', 'New Co', '{}', '\\x00')"""
        )
    resp = resolved.get("/entities/crm_NEW")
    assert resp.status_code == 200 and resp.json()["data"] == {
        "canonicalId": "crm_NEW",
        "goldenId": None,
        "golden": None,
    }


def test_a_golden_entity_shows_its_lineage_members_evidence_and_history(resolved: Api) -> None:
    resp = resolved.get("/golden/G1")
    assert resp.status_code == 200, resp.text
    data = resp.json()["data"]
    assert data["record"]["lineage"]["industry"] in ACME
    assert [m["canonicalId"] for m in data["members"]] == ["crm_C1", "erp_E1"]
    assert data["members"][0]["source"] == "crm" and data["members"][0]["sinceRunId"] == "run-1"
    (evidence,) = data["evidence"]
    assert evidence["canonicalIdL"] == "crm_C1" and evidence["matchWeight"] == 11.0
    assert evidence["comparisons"] == {"name": 5.5, "country": 5.5}
    assert [(h["kind"], h["runId"], h["members"]) for h in data["history"]] == [("new", "run-1", list(ACME))]


def test_a_retired_golden_id_still_answers_and_names_its_successor(resolved: Api) -> None:
    # crm_C2 (G2) joins Acme (G1): G2 retires.
    resolve(
        resolved.stack.pg.writer_url, clusters([*ACME, "crm_C2"], *([s] for s in SINGLES[1:])), run_id="run-2"
    )
    data = resolved.get("/golden/G2").json()["data"]
    assert data["record"]["status"] == "retired" and data["record"]["successorId"] == "G1"
    assert data["members"] == []
    assert [h["kind"] for h in data["history"]] == ["retired", "merge", "new"]


def test_unknown_golden_ids_are_404_and_malformed_ones_422(resolved: Api) -> None:
    problem(resolved.get("/golden/G999"), 404, "unknown_entity")
    assert resolved.get("/golden/X1").status_code == 422


def test_the_review_queue_is_paged_strongest_match_first(resolved: Api) -> None:
    first = resolved.get("/golden/review", params={"limit": 1})
    assert first.status_code == 200, first.text
    body = first.json()
    assert [(p["canonicalIdL"], p["canonicalIdR"]) for p in body["data"]] == [("crm_C2", "erp_E2")]
    assert body["data"][0]["nameL"] == "Beta Ltd" and body["data"][0]["goldenIdR"] is not None
    cursor = body["metadata"]["nextCursor"]
    second = resolved.get("/golden/review", params={"limit": 1, "cursor": cursor}).json()
    assert [(p["canonicalIdL"], p["canonicalIdR"]) for p in second["data"]] == [("crm_C3", "legacy_L1")]
    assert second["metadata"]["nextCursor"] is None
    problem(resolved.get("/golden/review", params={"cursor": "not-a-cursor"}), 400, "bad_cursor")


def test_a_decision_takes_its_pair_off_the_queue_and_says_who_decided(resolved: Api) -> None:
    resp = resolved.post(
        "/golden/review/decisions",
        json={
            "decision": "not_same",
            "canonical_id": "erp_E2",
            "other_canonical_id": "crm_C2",
            "note": "different",
        },
    )
    assert resp.status_code == 201, resp.text
    data = resp.json()["data"]
    assert (data["canonicalIdL"], data["canonicalIdR"], data["decidedBy"]) == (
        "crm_C2",
        "erp_E2",
        "anonymous",
    )
    queue = resolved.get("/golden/review").json()["data"]
    assert [(p["canonicalIdL"], p["canonicalIdR"]) for p in queue] == [("crm_C3", "legacy_L1")]


def test_a_decision_wins_over_the_model_at_the_next_resolution(resolved: Api) -> None:
    assert (
        resolved.post(
            "/golden/review/decisions",
            json={"decision": "same", "canonical_id": "crm_C3", "other_canonical_id": "legacy_L1"},
        ).status_code
        == 201
    )
    moved = resolved.post("/golden/review/decisions", json={"decision": "move_out", "canonical_id": "erp_E1"})
    assert moved.status_code == 201, moved.text
    assert moved.json()["data"]["apartFrom"] == ["crm_C1"] and moved.json()["data"]["goldenId"] == "G1"
    # The model's clustering is unchanged; the decisions are enforced.
    resolve(resolved.stack.pg.writer_url, clusters(ACME, *([s] for s in SINGLES)), run_id="run-2")
    c3 = resolved.get("/entities/crm_C3").json()["data"]["goldenId"]
    assert resolved.get("/entities/legacy_L1").json()["data"]["goldenId"] == c3
    assert resolved.get("/entities/erp_E1").json()["data"]["goldenId"] != "G1"
    history = resolved.get("/golden/G1").json()["data"]["history"]
    assert history[0]["kind"] == "split" and history[0]["reason"]["steward"]["kind"] == "move_out"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"decision": "same", "canonical_id": "crm_C1", "other_canonical_id": "crm_NOPE"},
            404,
            "unknown_entity",
        ),
        ({"decision": "same", "canonical_id": "crm_C1", "other_canonical_id": "crm_C1"}, 422, "same_record"),
        ({"decision": "move_out", "canonical_id": "crm_C2"}, 409, "nothing_to_move"),
        ({"decision": "move_out", "canonical_id": "crm_NOPE"}, 404, "unknown_entity"),
    ],
)
def test_a_decision_that_cannot_apply_is_a_precise_4xx(
    resolved: Api, body: dict[str, Any], status: int, code: str
) -> None:
    problem(resolved.post("/golden/review/decisions", json=body), status, code)


@pytest.mark.parametrize(
    "body",
    [
        {"decision": "maybe", "canonical_id": "crm_C1", "other_canonical_id": "erp_E1"},
        {"decision": "same", "canonical_id": "crm_C1"},
        {"decision": "move_out", "canonical_id": "crm_C1", "other_canonical_id": "erp_E1"},
        {"decision": "same", "canonical_id": "crm_C1", "other_canonical_id": "erp_E1", "extra": 1},
        {"decision": "same", "canonical_id": "", "other_canonical_id": "erp_E1"},
    ],
)
def test_a_malformed_decision_is_422(resolved: Api, body: dict[str, Any]) -> None:
    resp = resolved.post("/golden/review/decisions", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")


def test_malformed_json_is_400(resolved: Api) -> None:
    resp = resolved.post(
        "/golden/review/decisions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400, resp.text


def test_deciding_needs_the_steward_scope_reading_needs_read(
    stack: Any, fake_dagster: FakeDagster, resolved: Api
) -> None:
    keys = json.dumps(
        [
            {"name": "reader", "sha256": hash_key("k-read"), "scopes": ["read"]},
            {"name": "alice", "sha256": hash_key("k-steward"), "scopes": ["read", "steward"]},
        ]
    )
    body = {"decision": "same", "canonical_id": "crm_C2", "other_canonical_id": "erp_E2"}
    with make_client(stack, fake_dagster.url, API_KEYS=keys) as client:
        problem(client.post("/golden/review/decisions", json=body), 401, "authentication_required")
        denied = problem(
            client.post("/golden/review/decisions", json=body, headers={"X-API-Key": "k-read"}),
            403,
            "insufficient_scope",
        )
        assert "steward" in denied["detail"]
        assert client.get("/golden/review", headers={"X-API-Key": "k-read"}).status_code == 200
        ok = client.post("/golden/review/decisions", json=body, headers={"X-API-Key": "k-steward"})
        assert ok.status_code == 201 and ok.json()["data"]["decidedBy"] == "alice"


def test_the_openapi_document_lists_the_golden_endpoints(api: Api) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert {
        "/entities/{canonical_id}",
        "/golden/{golden_id}",
        "/golden/review",
        "/golden/review/decisions",
    } <= set(paths)


def test_a_nul_character_in_an_id_or_note_is_422_not_a_database_error(resolved: Api) -> None:
    for body in (
        {"decision": "same", "canonical_id": "crm_C1", "other_canonical_id": "erp\x00E1"},
        {"decision": "move_out", "canonical_id": "erp_E1", "note": "a\x00b"},
    ):
        assert resolved.post("/golden/review/decisions", json=body).status_code == 422
    assert resolved.get("/entities/crm%00C1").status_code == 422
