"""/health, /analytics (GET and POST), /analytics/operations: envelope, problems, cache, large results."""

from __future__ import annotations

import json

import httpx
import psycopg
import pytest

from api.result_cache import CACHE_SK

pytestmark = pytest.mark.integration


def _is_problem(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.headers.get("x-request-id")
    body = resp.json()
    assert body["status"] == status and body["success"] is False
    assert body["type"].endswith(code) and body["error"]["code"] == code
    assert body["error"]["message"] == body["detail"] and body["title"] and body["instance"]
    assert body["requestId"] == resp.headers["x-request-id"]
    assert isinstance(body["suggestions"], list)
    assert "Traceback" not in resp.text and "canonical.entities e" not in resp.text
    return body


def test_health_reports_every_dependency_with_latency(api):
    resp = api.get("/health")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "healthy" and body["success"] is True
    assert set(body["checks"]) == {"postgres", "s3", "dynamodb", "dagster"}
    for check in body["checks"].values():
        assert check["status"] == "ok" and check["latencyMs"] >= 0
    assert resp.headers["x-request-id"]


def test_health_is_503_when_the_database_is_down_and_degraded_without_dagster(stack, fake_dagster):
    from tests.api.conftest import make_client

    broken = stack.settings.model_copy(update={"readonly_database_url": "postgresql://x:y@127.0.0.1:1/none"})
    stack2 = type(stack)(settings=broken, aws=stack.aws, pg=stack.pg)
    with make_client(stack2, "http://127.0.0.1:1") as client:
        resp = client.get("/health")
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "unhealthy" and body["checks"]["postgres"]["status"] == "down"
    assert body["checks"]["dagster"]["status"] == "down" and body["checks"]["dagster"]["required"] is False
    with make_client(stack, "http://127.0.0.1:1") as client:
        resp = client.get("/health")
    assert resp.status_code == 200 and resp.json()["status"] == "degraded"


def test_request_id_is_echoed_when_sane_and_generated_otherwise(api):
    assert api.get("/health", headers={"X-Request-Id": "abc-123"}).headers["x-request-id"] == "abc-123"
    rid = api.get("/health", headers={"X-Request-Id": "bad id;<x>"}).headers["x-request-id"]
    assert rid != "bad id" and len(rid) == 36


def test_operations_lists_the_catalogue_with_parameter_schemas(api):
    resp = api.get("/analytics/operations")
    assert resp.status_code == 200
    ops = {o["name"]: o for o in resp.json()["operations"]}
    assert {"database_info", "simple_demo", "customer_analysis", "custom_complex_query"} <= set(ops)
    assert "group_by" in ops["customer_analysis"]["parameters"]["properties"]


def test_the_segment_operations_take_entity_scope_through_the_api(api):
    ops = {o["name"]: o for o in api.get("/analytics/operations").json()["operations"]}
    scope = ops["revenue_analysis"]["parameters"]["properties"]["entity_scope"]
    assert scope["enum"] == ["source", "golden"] and scope["default"] == "source"
    resp = api.get(
        "/analytics", params={"operation": "count_analysis", "group_by": "industry", "entity_scope": "golden"}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["metadata"]["parameters"]["entity_scope"] == "golden" and "notes" not in body["metadata"]
    # No resolution yet: every record is a golden entity of its own.
    source = api.get("/analytics", params={"operation": "count_analysis", "group_by": "industry"}).json()
    assert sum(r["members"] for r in body["data"]) == sum(r["entities"] for r in source["data"])
    assert sum(r["entities"] for r in body["data"]) == sum(r["entities"] for r in source["data"])
    refused = api.get("/analytics", params={"operation": "count_analysis", "entity_scope": "company"})
    assert refused.status_code == 422 and refused.json()["errors"][0]["validValues"] == ["source", "golden"]


def test_data_integrity_before_any_resolution_answers_no_rows_and_a_note(api):
    resp = api.get("/analytics", params={"operation": "data_integrity_analysis"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["data"] == [] and body["metadata"]["resultCount"] == 0
    assert "no entity resolution has run yet" in body["metadata"]["notes"][0]


def test_get_analytics_keeps_the_seed_envelope(api):
    resp = api.get("/analytics", params={"operation": "count_analysis", "group_by": "industry"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["success"] is True and body["operation"] == "count_analysis"
    md = body["metadata"]
    assert (
        md["resultCount"] == len(body["data"]) and md["cacheHit"] is False and md["timestamp"].endswith("Z")
    )
    assert md["columns"] and md["dataVersion"] == 1 and md["truncated"] is False and md["storage"] == "inline"
    assert md["executionTimeMs"] >= 0 and md["parameters"] == {
        "group_by": "industry",
        "include_deleted": False,
        "entity_scope": "source",
    }
    assert {row[md["columns"][0]] for row in body["data"]} == {"Technology", "Retail", "Finance"}
    assert resp.headers["x-cache"] == "MISS" and resp.headers["etag"]


def test_seed_calls_simple_demo_and_database_info(api):
    for op in ("simple_demo", "database_info"):
        resp = api.get(f"/analytics?operation={op}")
        assert resp.status_code == 200, resp.text
        assert resp.json()["success"] is True and resp.json()["operation"] == op


def test_post_analytics_matches_get_and_hits_the_cache(api):
    body = {"operation": "customer_analysis", "parameters": {"metric": "revenue", "group_by": "industry"}}
    first = api.post("/analytics", json=body)
    assert first.status_code == 200, first.text
    assert first.headers["x-cache"] == "MISS"
    second = api.get("/analytics", params={"operation": "customer_analysis", "group_by": "industry"})
    assert second.headers["x-cache"] == "HIT" and second.json()["metadata"]["cacheHit"] is True
    assert second.json()["data"] == first.json()["data"]
    assert second.headers["etag"] == first.headers["etag"]
    # If-None-Match → 304 without a body
    nm = api.get(
        "/analytics",
        params={"operation": "customer_analysis"},
        headers={"If-None-Match": first.headers["etag"]},
    )
    assert nm.status_code == 304 and nm.content == b"" and nm.headers["etag"] == first.headers["etag"]


def test_new_data_changes_the_cache_key(api):
    first = api.get("/analytics", params={"operation": "count_analysis"})
    with psycopg.connect(api.stack.pg.owner_url) as conn:
        conn.execute("UPDATE canonical.entities SET industry = 'Energy' WHERE canonical_id = 'crm_C3'")
        conn.execute("UPDATE ingest.data_version SET version = version + 1")
    second = api.get("/analytics", params={"operation": "count_analysis"})
    assert second.headers["x-cache"] == "MISS" and second.headers["etag"] != first.headers["etag"]
    assert second.json()["metadata"]["dataVersion"] == 2
    assert "Energy" in json.dumps(second.json()["data"])
    nm = api.get(
        "/analytics", params={"operation": "count_analysis"}, headers={"If-None-Match": first.headers["etag"]}
    )
    assert nm.status_code == 200


def test_cache_control_no_cache_computes_afresh_and_refreshes_the_cache(api):
    params = {"operation": "count_analysis"}
    api.get("/analytics", params=params)
    with psycopg.connect(api.stack.pg.owner_url) as conn:  # a change nobody announced (no version bump)
        conn.execute("UPDATE canonical.entities SET industry = 'Energy' WHERE canonical_id = 'crm_C3'")
    stale = api.get("/analytics", params=params)
    assert stale.headers["x-cache"] == "HIT" and "Energy" not in json.dumps(stale.json()["data"])
    fresh = api.get("/analytics", params=params, headers={"Cache-Control": "max-age=0, no-cache"})
    assert fresh.headers["x-cache"] == "MISS" and fresh.json()["metadata"]["cacheHit"] is False
    assert "Energy" in json.dumps(fresh.json()["data"])
    again = api.get("/analytics", params=params)
    assert again.headers["x-cache"] == "HIT" and again.json()["data"] == fresh.json()["data"]


def test_an_expired_cache_item_is_ignored(stack, fake_dagster):
    from tests.api.conftest import make_client, seed_entities

    seed_entities(stack.pg.owner_url)
    with make_client(stack, fake_dagster.url, API_MEMORY_CACHE_BYTES=0) as api:  # the DynamoDB tier alone
        api.get("/analytics", params={"operation": "simple_demo"})
        assert (
            api.get("/analytics", params={"operation": "simple_demo"}).headers["x-cache-tier"] == "dynamodb"
        )
        ddb = stack.client("dynamodb")
        table = stack.settings.jobs_table
        items = ddb.scan(TableName=table)["Items"]
        cached = [i for i in items if i["SK"]["S"] == CACHE_SK]
        assert len(cached) == 1
        ddb.update_item(
            TableName=table,
            Key={"PK": cached[0]["PK"], "SK": cached[0]["SK"]},
            UpdateExpression="SET expiresAt = :e",
            ExpressionAttributeValues={":e": {"N": "1"}},
        )
        assert api.get("/analytics", params={"operation": "simple_demo"}).headers["x-cache"] == "MISS"


def test_one_process_serves_from_memory_and_another_from_dynamodb(api):
    params = {"operation": "customer_analysis", "metric": "revenue"}
    first = api.get("/analytics", params=params)
    assert first.headers["x-cache"] == "MISS" and "x-cache-tier" not in first.headers
    again = api.get("/analytics", params=params)
    assert again.headers["x-cache"] == "HIT" and again.headers["x-cache-tier"] == "memory"
    from tests.api.conftest import make_client

    with make_client(api.stack, api.dagster.url) as other:  # another worker or Lambda container
        there = other.get("/analytics", params=params)
        assert there.headers["x-cache"] == "HIT" and there.headers["x-cache-tier"] == "dynamodb"
        assert other.get("/analytics", params=params).headers["x-cache-tier"] == "memory"
    assert there.json()["data"] == first.json()["data"] and there.headers["etag"] == first.headers["etag"]


def test_unknown_operation_is_404_listing_the_known_ones(api):
    body = _is_problem(
        api.post("/analytics", json={"operation": "invalid_operation"}), 404, "unknown_operation"
    )
    assert "database_info" in body["validOperations"] and body["error"]["type"] == "UnknownOperation"
    _is_problem(api.get("/analytics?operation=nope"), 404, "unknown_operation")


def test_invalid_parameters_are_422_with_valid_values(api):
    resp = api.get("/analytics", params={"operation": "customer_analysis", "metric": "salary; DROP TABLE x"})
    body = _is_problem(resp, 422, "invalid_parameters")
    err = body["errors"][0]
    assert err["field"] == "metric" and "revenue" in err["validValues"]


def test_custom_query_on_a_missing_table_is_a_database_error(api):
    resp = api.post(
        "/analytics",
        json={
            "operation": "custom_complex_query",
            "parameters": {"query": "SELECT * FROM non_existent_table"},
        },
    )
    body = _is_problem(resp, 400, "query_failed")
    assert "non_existent_table" in body["detail"] and body["error"]["type"] == "DatabaseError"


def test_a_refused_custom_query_is_422(api):
    resp = api.post(
        "/analytics",
        json={"operation": "custom_complex_query", "parameters": {"query": "DELETE FROM canonical.entities"}},
    )
    _is_problem(resp, 422, "query_rejected")


def test_malformed_json_and_missing_fields(api):
    resp = api.post("/analytics", content=b'{"operation": ', headers={"Content-Type": "application/json"})
    _is_problem(resp, 400, "malformed_json")
    body = _is_problem(api.post("/analytics", json={"parameters": {}}), 422, "invalid_request")
    assert body["errors"][0]["field"] == "operation"
    _is_problem(api.get("/analytics"), 422, "invalid_request")


def test_unknown_path_and_method_are_problems(api):
    _is_problem(api.get("/nope"), 404, "not_found")
    _is_problem(api.put("/analytics"), 405, "method_not_allowed")


def test_too_large_body_is_413(stack, fake_dagster):
    from tests.api.conftest import make_client

    with make_client(stack, fake_dagster.url, API_MAX_BODY_BYTES=100) as client:
        resp = client.post("/analytics", json={"operation": "simple_demo", "parameters": {"x": "y" * 200}})
        _is_problem(resp, 413, "request_too_large")

        def chunks():
            yield b'{"operation": "simple_demo", '
            yield b'"parameters": {"pad": "' + b"z" * 200 + b'"}}'

        resp = client.post("/analytics", content=chunks(), headers={"Content-Type": "application/json"})
        _is_problem(resp, 413, "request_too_large")


def test_timeout_is_504_pointing_to_jobs(stack, fake_dagster):
    from tests.api.conftest import make_client

    with make_client(stack, fake_dagster.url, API_SYNC_TIMEOUT_SECONDS=0.2) as client:
        resp = client.post(
            "/analytics",
            json={"operation": "custom_complex_query", "parameters": {"query": "SELECT pg_sleep(2)"}},
        )
    if resp.status_code == 422:  # the guard refuses pg_sleep: a heavy query instead
        with make_client(stack, fake_dagster.url, API_SYNC_TIMEOUT_SECONDS=0.2) as client:
            resp = client.post(
                "/analytics",
                json={
                    "operation": "custom_complex_query",
                    "parameters": {"query": "SELECT count(*) FROM generate_series(1, 100000000) a"},
                },
            )
    body = _is_problem(resp, 504, "query_timeout")
    assert body["jobsEndpoint"] == "/analytics/jobs"


def test_prefer_respond_async_launches_a_job(api):
    resp = api.post("/analytics", json={"operation": "count_analysis"}, headers={"Prefer": "respond-async"})
    assert resp.status_code == 202, resp.text
    job = resp.json()["job"]
    assert resp.headers["location"] == f"/analytics/jobs/{job['jobId']}"
    assert api.get(resp.headers["location"]).json()["job"]["status"] == "queued"


def test_a_large_result_goes_to_the_results_bucket_with_a_presigned_url(api):
    resp = api.post(
        "/analytics",
        json={
            "operation": "custom_complex_query",
            "parameters": {"query": "SELECT g AS n, g * 2 AS twice FROM generate_series(1, 1500) AS g"},
        },
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (
        body["data"] is None
        and body["metadata"]["storage"] == "s3"
        and body["metadata"]["resultCount"] == 1500
    )
    download = body["metadata"]["download"]
    doc = httpx.get(download["json"]).json()
    assert len(doc["rows"]) == 1500 and doc["rows"][-1] == {"n": 1500, "twice": 3000}
    csv_text = httpx.get(download["csv"]).text
    assert csv_text.splitlines()[0] == "n,twice" and len(csv_text.splitlines()) == 1501
    again = api.post(
        "/analytics",
        json={
            "operation": "custom_complex_query",
            "parameters": {"query": "SELECT g AS n, g * 2 AS twice FROM generate_series(1, 1500) AS g"},
        },
    )
    assert again.headers["x-cache"] == "HIT" and again.json()["metadata"]["download"]["json"]


def test_database_unavailable_is_503(stack, fake_dagster):
    from tests.api.conftest import make_client

    broken = stack.settings.model_copy(
        update={
            "database_url": "postgresql://x:y@127.0.0.1:1/none",
            "readonly_database_url": "postgresql://x:y@127.0.0.1:1/none",
        }
    )
    stack2 = type(stack)(settings=broken, aws=stack.aws, pg=stack.pg)
    with make_client(stack2, fake_dagster.url, API_DB_POOL_TIMEOUT_SECONDS=1) as client:
        resp = client.get("/analytics", params={"operation": "simple_demo"})
    body = _is_problem(resp, 503, "database_unavailable")
    assert resp.headers["retry-after"]
    assert "x:y" not in json.dumps(body)
