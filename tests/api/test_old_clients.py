"""The old system's clients, request for request: every request form found in its code and README
(sarjangi/AWS: `analytics-service.js`, `job-service.js`, `test-advanced.js`, `test-pipeline.js`, the
README's curl and PowerShell calls), replayed exactly, and the fields each client reads.

C-numbers are the calls as listed in README "Moving from the old system". Where the old system answered
a bug (HTTP 200 for an error), the answer is a real 4xx whose body still carries `success: false` and
`error.message`, as its clients read. The async path (submit → poll until `completed` → result) against
a real Dagster is in test_api_async_e2e.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import jsonschema
import psycopg
import pytest
from dagster import instance_for_test

from api.app import create_app
from api.config import ApiSettings
from resources.settings import Settings
from sensors.job_status import mirror_run
from tests.api.conftest import ENTITIES, make_client, seed_entities
from tests.support.ingest import Driver, resources_for

pytestmark = pytest.mark.integration


def _ok(resp: httpx.Response) -> dict:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    # The old success envelope.
    assert body["success"] is True and body["operation"]
    assert body["operationId"].startswith(body["operation"] + "_") and body["executionTime"].endswith("ms")
    assert isinstance(body["metadata"]["resultCount"], int) and body["metadata"]["timestamp"]
    assert body["metadata"]["cacheHit"] in (True, False)
    return body


def _refused(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["success"] is False and body["error"]["message"] and body["error"]["type"]
    assert isinstance(body["suggestions"], list)
    return body


def _conforms(body: dict, schema_name: str) -> None:
    """The body is what the OpenAPI document says this answer is."""
    doc = create_app(Settings(), ApiSettings()).openapi()
    jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema_name}", "components": doc["components"]}
    ).validate(body)


def _get(api, operation: str, parameters: dict | None = None) -> httpx.Response:
    """The old GET form: `parameters` is one query parameter holding a JSON object."""
    query = f"operation={operation}"
    if parameters is not None:
        query += "&parameters=" + quote(json.dumps(parameters))
    return api.get(f"/analytics?{query}")


# --------------------------------------------------------------------------------------------------
# Health (C1, C4, C19)


def test_health_answers_healthy_with_the_old_fields(api):
    resp = api.get("/health")
    assert resp.status_code == 200  # test-pipeline.js and test-advanced.js check only this
    body = resp.json()
    assert body["status"] == "healthy" and body["database"] == "connected"
    assert body["timestamp"] and body["details"]["service"] and body["details"]["version"]


# --------------------------------------------------------------------------------------------------
# GET /analytics (C2, C3, C5, C6, README and analytics-service.js forms)


_DATABASE_INFO_FORMS: dict[str, Callable[[Any], httpx.Response]] = {
    "GET": lambda api: api.get("/analytics?operation=database_info"),
    "GET parameters={}": lambda api: _get(api, "database_info", {}),
    "POST without parameters": lambda api: api.post("/analytics", json={"operation": "database_info"}),
}


@pytest.mark.parametrize("form", list(_DATABASE_INFO_FORMS))
def test_database_info_data_is_the_old_object_an_old_dashboard_reads_data_tables_from(api, form):
    body = _ok(_DATABASE_INFO_FORMS[form](api))
    data = body["data"]
    assert [t["table_name"] for t in data["tables"]] == [
        "entities",
        "entity_history",
        "entity_relationships",
        "time_series_data",
    ]
    sample = data["sample_table_structure"]  # the first table's columns, as the old answer gave them
    assert all(set(c) == {"column_name", "data_type"} for c in sample)
    assert {"column_name": "canonical_id", "data_type": "text"} in sample
    # Our counts ride along on each table; the earlier top-level copies stay for this platform's clients.
    assert data["tables"][0]["row_count"] == len(ENTITIES) and body["metadata"]["resultCount"] == 4
    assert body["tables"] == [{"table_name": t["table_name"]} for t in data["tables"]]
    assert body["sample_table_structure"] == sample
    _conforms(body, "AnalyticsResponse")


@pytest.mark.parametrize(
    "operation",
    [
        "customer_analysis",
        "simple_demo",
        "count_analysis",
        "revenue_analysis",
        "multi_dimensional_analytics",
        "time_series_patterns",
        "data_integrity_analysis",
        "relationship_network",
    ],
)
def test_every_operation_answers_with_no_parameters_as_the_old_clients_sent_it(api, operation):
    _ok(api.get(f"/analytics?operation={operation}"))


@pytest.mark.parametrize(
    ("operation", "parameters"),
    [
        ("multi_dimensional_analytics", {"timeframe": "3 months"}),
        ("multi_dimensional_analytics", {"timeframe": "1 month"}),
        ("multi_dimensional_analytics", {"timeframe": "6 months"}),
        ("multi_dimensional_analytics", {"timeframe": "12 months"}),
        ("multi_dimensional_analytics", {"timeframe": "1 year"}),
        ("time_series_patterns", {"analysisPeriod": "6 months"}),
        ("time_series_patterns", {"analysisPeriod": "3 months"}),
        ("customer_analysis", {"metric": "lifetime_value", "group_by": "industry"}),
        ("customer_analysis", {"metric": "revenue"}),
        ("revenue_analysis", {"metric": "annual_revenue", "group_by": "region"}),
        ("count_analysis", {"metric": "customer_count", "group_by": "industry"}),
        ("relationship_network", {}),
        ("relationship_network", {"rootEntityId": None}),
        (
            "custom_complex_query",
            {"query": "SELECT count(*) AS n FROM canonical.entities WHERE revenue > $1", "params": [1000]},
        ),
    ],
)
def test_the_old_get_form_with_parameters_as_one_json_object(api, operation, parameters):
    body = _ok(_get(api, operation, parameters))
    assert isinstance(body["data"], list)


def test_parameters_in_the_query_string_and_in_json_mean_the_same(api):
    old = _ok(_get(api, "customer_analysis", {"metric": "revenue", "group_by": "region"}))
    new = _ok(api.get("/analytics?operation=customer_analysis&metric=revenue&group_by=region"))
    assert old["data"] == new["data"] and old["metadata"]["parameters"] == new["metadata"]["parameters"]
    assert old["metadata"]["parameters"]["group_by"] == "region"


def test_malformed_parameters_json_is_a_400_with_the_old_error_fields(api):
    body = _refused(api.get("/analytics?operation=multi_dimensional_analytics&parameters=%7Bnot%20json"), 400)
    assert "parameters" in body["error"]["message"]
    _refused(api.get("/analytics?operation=multi_dimensional_analytics&parameters=%5B1%5D"), 400)  # [1]


def test_a_time_window_outside_the_whitelist_is_refused_never_pasted(api):
    body = _refused(
        _get(api, "multi_dimensional_analytics", {"timeframe": "3 months'; DROP TABLE x; --"}), 422
    )
    assert body["errors"][0]["field"] == "timeframe"


def test_relationship_network_with_or_without_a_root(api):
    with psycopg.connect(api.stack.pg.owner_url) as conn:
        conn.execute("""INSERT INTO canonical.entity_relationships (parent_canonical_id, child_canonical_id,
                                                                    relationship_type)
                        VALUES ('crm_C1', 'crm_C2', 'parent_of'), ('crm_C2', 'crm_C3', 'parent_of')""")
        root_uuid = conn.execute(
            "SELECT entity_id FROM canonical.entities WHERE canonical_id = 'crm_C1'"
        ).fetchone()[0]
        conn.execute("UPDATE ingest.data_version SET version = version + 1")
    every = _ok(_get(api, "relationship_network", {}))
    assert [r["canonical_id"] for r in every["data"]] == ["crm_C1", "crm_C2", "crm_C3"]
    rooted = _ok(_get(api, "relationship_network", {"rootEntityId": str(root_uuid)}))
    assert rooted["data"] == every["data"]
    assert _ok(_get(api, "relationship_network", {"rootEntityId": str(uuid.uuid4())}))["data"] == []


def test_time_series_operations_answer_for_a_crm_only_dataset(api):
    """No metric points at all: periods come from the entities, as the old system derived them."""
    patterns = _ok(_get(api, "time_series_patterns", {"analysisPeriod": "6 months"}))
    assert patterns["data"] and patterns["data"][-1]["entities"] == 6
    assert patterns["data"][-1]["total"] == sum(e[5] for e in ENTITIES)
    cube = _ok(_get(api, "multi_dimensional_analytics", {"timeframe": "3 months"}))
    assert cube["data"] and {r["metric_type"] for r in cube["data"]} == {"entity_revenue"}


# --------------------------------------------------------------------------------------------------
# POST /analytics (C7, C8, C9, C10, C13, C20)


def test_post_with_missing_parameters_uses_the_defaults(api):
    _ok(api.post("/analytics", json={"operation": "multi_dimensional_analytics"}))  # C8


@pytest.mark.parametrize(
    "operation", ["invalid_operation_that_does_not_exist", "invalid_operation", "test_query"]
)
def test_an_unknown_operation_is_a_404_with_the_old_error_fields(api, operation):
    body = _refused(
        api.post(
            "/analytics",
            json={"operation": operation, "parameters": {"test": True, "timestamp": "2024-01-01T00:00:00Z"}},
        ),
        404,
    )
    assert "multi_dimensional_analytics" in body["suggestions"][0]


def test_invalid_json_is_a_400_with_the_old_error_fields(api):
    _refused(
        api.post("/analytics", content=b"{ invalid json here ", headers={"Content-Type": "application/json"}),
        400,
    )  # C9


def test_a_custom_query_on_a_missing_table_is_a_400_with_the_old_error_fields(api):
    body = _refused(
        api.post(
            "/analytics",
            json={
                "operation": "custom_complex_query",
                "parameters": {"query": "SELECT * FROM non_existent_table"},
            },
        ),
        400,
    )
    assert "non_existent_table" in body["error"]["message"]  # C10


def test_an_unknown_path_is_a_404_listing_the_endpoints(api):
    body = _refused(api.get("/data?type=customer"), 404)
    assert "POST /analytics" in body["availableEndpoints"]


# --------------------------------------------------------------------------------------------------
# Large results and their download (C11, C12)


def test_a_large_result_is_parked_in_s3_and_downloaded_by_its_download_url(stack, fake_dagster):
    seed_entities(stack.pg.owner_url)
    with make_client(stack, fake_dagster.url, API_INLINE_MAX_ROWS=2) as client:
        resp = client.post(
            "/analytics",
            json={
                "operation": "custom_complex_query",
                "parameters": {"query": "SELECT canonical_id FROM canonical.entities ORDER BY 1"},
            },
        )
        body = _ok(resp)
        # The README's PowerShell reads these.
        assert body["largeResult"] is True and body["data"] is None
        assert body["s3Url"].startswith(f"s3://{stack.settings.results_bucket}/")
        assert body["recordCount"] == 6 and body["message"]
        download = client.get(body["downloadUrl"])
        assert download.status_code == 200, download.text
        got = download.json()
        assert got["success"] is True and got["metadata"]["source"] == "s3"
        assert got["metadata"]["operation"] == "custom_complex_query" and got["metadata"]["recordCount"] == 6
        assert [r["canonical_id"] for r in got["data"]] == sorted(e[0] for e in ENTITIES)
        csv = client.get(body["downloadUrl"].replace(".json", ".csv"), follow_redirects=False)
        assert csv.status_code == 303 and "Signature=" in csv.headers["location"]


def test_downloading_an_unknown_key_is_a_404_with_the_old_error_fields(api):
    _refused(api.get("/download/invalid_key_12345"), 404)  # C12
    _refused(api.get(f"/download/sync/{'0' * 64}/result.json"), 404)  # well formed, not there


# --------------------------------------------------------------------------------------------------
# Jobs (C14 to C18): submission and status as the old README reads them


@pytest.mark.parametrize(
    "body",
    [
        {"operation": "multi_dimensional_analytics", "parameters": {"timeframe": "3 months"}},
        {"operation": "multi_dimensional_analytics", "parameters": {"timeframe": "6 months"}},
        {
            "operation": "customer_analysis",
            "parameters": {"metric": "lifetime_value", "group_by": "industry"},
        },
    ],
)
def test_a_job_submission_has_its_id_and_old_status_at_the_top_level(api, body):
    resp = api.post("/analytics/jobs", json=body)
    assert resp.status_code == 202, resp.text
    sub = resp.json()
    assert sub["jobId"] == sub["job"]["jobId"] and sub["status"] == "submitted"
    assert sub["checkStatusUrl"] == f"/analytics/jobs/{sub['jobId']}" and sub["submittedAt"]
    poll = api.get(f"/analytics/jobs/{sub['jobId']}")  # C15, C17
    assert (
        poll.status_code == 200
        and poll.json()["status"] == "submitted"
        and poll.json()["job"]["status"] == "queued"
    )


# --------------------------------------------------------------------------------------------------
# A completed job's record (C15, C17): the old workflow merged the answer into it, and the old client reads
# the answer from the record it polls.


@pytest.fixture
def finish_run(api) -> Iterator[Callable[[str, dict], dict]]:
    """Runs a submitted job's analytics_job in process under the run id the launch gave, then mirrors the
    finished run as the run-status sensor does; answers the record GET /analytics/jobs/{id} then serves.
    The path a job takes on the platform, the daemon aside (test_api_async_e2e.py has it too)."""
    with instance_for_test() as instance:
        driver = Driver(api.stack, instance)
        res = resources_for(api.stack)

        def finish(job_id: str, body: dict) -> dict:
            run = driver.analytics(body["operation"], body.get("parameters"), run_id=job_id)
            assert run.success, [e.message for e in run.get_step_failure_events()]
            mirror_run(instance, run.dagster_run, res["job_tracking"], res["metrics"], "http://dagster.test")
            resp = api.get(f"/analytics/jobs/{job_id}")
            assert resp.status_code == 200, resp.text
            return resp.json()

        yield finish


def _submit(api, body: dict) -> str:
    resp = api.post("/analytics/jobs", json=body)
    assert resp.status_code == 202, resp.text
    return resp.json()["jobId"]


@pytest.mark.parametrize(
    "body",
    [
        {"operation": "multi_dimensional_analytics", "parameters": {"timeframe": "3 months"}},  # the README's
        {
            "operation": "customer_analysis",
            "parameters": {"metric": "lifetime_value", "group_by": "industry"},
        },
        {"operation": "database_info"},
    ],
    ids=lambda b: b["operation"],
)
def test_a_completed_job_record_carries_the_answer_as_data_and_metadata(api, finish_run, body):
    job_id = _submit(api, body)
    record = finish_run(job_id, body)
    assert record["status"] == "completed" and record["job"]["status"] == "succeeded"
    # The answer the synchronous call gives, from the stored result (the query is not run again).
    assert (
        record["data"]
        and record["data"] == _ok(_get(api, body["operation"], body.get("parameters", {})))["data"]
    )
    metadata = record["metadata"]
    assert metadata["resultCount"] == record["job"]["rowCount"] and metadata["cacheHit"] is False
    assert metadata["timestamp"] == record["job"]["finishedAt"] and metadata["storage"] == "inline"
    assert record["operation"] == body["operation"] and record["operationId"].startswith(
        body["operation"] + "_"
    )
    assert record["executionTime"].endswith("ms")
    assert record["resultUrl"] == f"/analytics/jobs/{job_id}/result" and "largeResult" not in record
    assert "rows" not in record["job"]["result"]  # ours: the summary, without the rows
    _conforms(record, "JobResponse")


@pytest.mark.parametrize(("rows", "large"), [(1000, False), (1001, True)])
def test_a_completed_job_over_1000_rows_carries_the_old_large_result_fields_instead(
    api, finish_run, rows, large
):
    body = {
        "operation": "custom_complex_query",
        "parameters": {"query": f"SELECT g AS n FROM generate_series(1, {rows}) AS g"},
    }
    job_id = _submit(api, body)
    record = finish_run(job_id, body)
    assert record["status"] == "completed" and record["metadata"]["resultCount"] == rows
    _conforms(record, "JobResponse")
    if not large:
        assert len(record["data"]) == rows and "largeResult" not in record
        return
    assert "data" not in record and record["largeResult"] is True and record["recordCount"] == rows
    assert record["s3Url"] == f"s3://{api.stack.settings.results_bucket}/results/{job_id}/result.json"
    assert (
        record["message"] == "Large result saved to S3 for download" and record["metadata"]["storage"] == "s3"
    )
    download = api.get(record["downloadUrl"])
    assert download.status_code == 200 and len(download.json()["data"]) == rows


def test_an_answer_too_large_for_the_job_item_goes_the_large_result_way_whatever_its_row_count(
    api, finish_run
):
    # 100 rows: 270 KB as UTF-8, 540 KB as the item's JSON text (each character escaped as \uXXXX), past
    # DynamoDB's 400 KB item limit.
    body = {
        "operation": "custom_complex_query",
        "parameters": {"query": "SELECT g AS n, repeat('漢', 900) AS text FROM generate_series(1, 100) AS g"},
    }
    job_id = _submit(api, body)
    record = finish_run(job_id, body)
    assert record["status"] == "completed" and record["largeResult"] is True and record["recordCount"] == 100
    assert "data" not in record
    rows = api.get(record["downloadUrl"]).json()["data"]
    assert len(rows) == 100 and rows[0]["text"] == "漢" * 900


def test_the_openapi_document_describes_both_shapes_of_data_and_the_completed_job_answer():
    schemas = create_app(Settings(), ApiSettings()).openapi()["components"]["schemas"]
    for model in ("AnalyticsResponse", "JobResponse"):
        branches = schemas[model]["properties"]["data"]["oneOf"]
        assert {b.get("type") for b in branches} >= {"array", "null"}, model
        assert {"$ref": "#/components/schemas/DatabaseInfoData"} in [
            r for b in branches for r in b.get("allOf", [])
        ]
        assert "database_info" in schemas[model]["properties"]["data"]["description"]
    assert set(schemas["DatabaseInfoData"]["required"]) == {"tables", "sample_table_structure"}
    job = schemas["JobResponse"]["properties"]
    assert {"metadata", "largeResult", "s3Url", "downloadUrl", "recordCount", "resultUrl"} <= set(job)


# --------------------------------------------------------------------------------------------------
# CORS: the old API allowed any origin


def test_cors_allows_any_origin_by_default(api):
    resp = api.get("/health", headers={"Origin": "https://old-dashboard.example"})
    assert resp.headers["access-control-allow-origin"] == "*"
    pre = api.options(
        "/analytics",
        headers={
            "Origin": "https://old-dashboard.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type",
        },
    )
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "*"


def test_keyless_read_lets_old_clients_read_and_nothing_more(stack, fake_dagster):
    """keylessRead on AWS: keys configured, callers without one get the read scope only."""
    from api.auth import hash_key

    keys = json.dumps([{"name": "ops", "sha256": hash_key("k-ops"), "scopes": ["read", "jobs", "sql"]}])
    seed_entities(stack.pg.owner_url)
    with make_client(stack, fake_dagster.url, API_KEYS=keys, API_ANONYMOUS_SCOPES="read") as client:
        _ok(client.get("/analytics?operation=simple_demo"))
        _ok(client.post("/analytics", json={"operation": "multi_dimensional_analytics"}))
        _refused(client.post("/analytics/jobs", json={"operation": "simple_demo"}), 401)
        _refused(
            client.post(
                "/analytics", json={"operation": "custom_complex_query", "parameters": {"query": "SELECT 1"}}
            ),
            401,
        )
        assert (
            client.post(
                "/analytics/jobs", json={"operation": "simple_demo"}, headers={"X-API-Key": "k-ops"}
            ).status_code
            == 202
        )


# --------------------------------------------------------------------------------------------------
# Direct invocations of the function (test-advanced.js, the old Step Functions task and monthly schedule)


class _Ctx:
    function_name = "api"
    aws_request_id = "req-direct"


def test_a_direct_invocation_answers_like_post_analytics(stack, fake_dagster):
    from api.lambda_handler import make_handler

    keys = json.dumps([{"name": "ops", "sha256": "0" * 64, "scopes": ["read"]}])
    seed_entities(stack.pg.owner_url)
    with make_client(stack, fake_dagster.url, API_KEYS=keys) as client:
        handler = make_handler(client.app)
        # The old monthly schedule's event; IAM let the invoker in, so no key is needed, and every scope holds.
        out = handler(
            {
                "source": "aws.events",
                "detail-type": "Scheduled Event",
                "time": "2024-02-01T03:00:00Z",
                "operation": "multi_dimensional_analytics",
                "parameters": {"timeframe": "3 months"},
            },
            _Ctx(),
        )
        assert out["success"] is True and out["operation"] == "multi_dimensional_analytics" and "data" in out
        out = handler(
            {
                "operation": "custom_complex_query",
                "parameters": {"query": "SELECT 1 AS one"},
                "isStepFunction": True,
                "requestId": "r-7",
            },
            _Ctx(),
        )
        assert out["success"] is True and out["data"] == [{"one": 1}] and out["requestId"] == "r-7"
        # test-advanced.js's invoke: not an operation, refused with the old error fields.
        out = handler({"operation": "health_check", "parameters": {"test": True}}, _Ctx())
        assert out["success"] is False and "health_check" in out["error"]["message"]
        # An API Gateway event is never taken for a direct invocation, whatever its body says.
        gateway = handler(
            {
                "resource": "/analytics",
                "path": "/analytics",
                "httpMethod": "GET",
                "operation": "x",
                "canonicalDirectInvoke": False,
                "headers": {},
                "multiValueHeaders": {},
                "queryStringParameters": {"operation": "simple_demo"},
                "multiValueQueryStringParameters": {"operation": ["simple_demo"]},
                "requestContext": {
                    "resourcePath": "/analytics",
                    "httpMethod": "GET",
                    "path": "/analytics",
                    "stage": "prod",
                    "identity": {"sourceIp": "203.0.113.7"},
                },
                "body": None,
                "isBase64Encoded": False,
            },
            _Ctx(),
        )
        assert gateway["statusCode"] == 401
