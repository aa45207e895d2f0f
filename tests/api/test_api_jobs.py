"""Analytics jobs over the API: launch via GraphQL (a local HTTP server speaking Dagster's response shapes),
DynamoDB status, results inline / 303 to S3, cancel, idempotency."""

from __future__ import annotations

import httpx
import pytest

from resources.clients.jobs_store import JobsStore
from resources.clients.results_store import store_result

pytestmark = pytest.mark.integration


def _store(api) -> JobsStore:
    return JobsStore(api.stack.client("dynamodb"), api.stack.settings.jobs_table)


def test_post_job_is_202_with_location_and_a_queued_item_at_once(api):
    resp = api.post(
        "/analytics/jobs",
        json={"operation": "customer_analysis", "parameters": {"metric": "revenue", "group_by": "industry"}},
    )
    assert resp.status_code == 202, resp.text
    job = resp.json()["job"]
    assert resp.headers["location"] == f"/analytics/jobs/{job['jobId']}"
    assert job["status"] == "queued" and job["operation"] == "customer_analysis"
    launched = api.dagster.requests[-1]
    params = launched["variables"]["executionParams"]
    assert params["selector"] == {
        "repositoryLocationName": "canonical_pipeline",
        "repositoryName": "__repository__",
        "jobName": "analytics_job",
    }
    config = params["runConfigData"]["ops"]["run_analytics"]["config"]
    assert config["request"] == {
        "customer_analysis": {
            "metric": "revenue",
            "group_by": "industry",
            "min_group_size": 1,
            "include_deleted": False,
            "entity_scope": "source",
        }
    }
    got = api.get(resp.headers["location"])
    assert got.status_code == 200 and got.json()["job"]["status"] == "queued"
    assert got.json()["job"]["links"]["result"].endswith("/result")


def test_invalid_jobs_are_refused_before_launch(api):
    resp = api.post("/analytics/jobs", json={"operation": "nope"})
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "unknown_operation"
    resp = api.post("/analytics/jobs", json={"operation": "customer_analysis", "parameters": {"metric": "x"}})
    assert resp.status_code == 422
    assert api.dagster.requests == []


def test_idempotency_key_returns_the_same_job_and_conflicts_on_another_body(api):
    body = {"operation": "count_analysis", "parameters": {"group_by": "industry"}}
    first = api.post("/analytics/jobs", json=body, headers={"Idempotency-Key": "k-1"})
    again = api.post("/analytics/jobs", json=body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 202
    assert first.json()["job"]["jobId"] == again.json()["job"]["jobId"]
    assert again.headers["idempotent-replayed"] == "true"
    assert len(api.dagster.requests) == 1
    other = api.post(
        "/analytics/jobs",
        json={**body, "parameters": {"group_by": "region"}},
        headers={"Idempotency-Key": "k-1"},
    )
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"


def test_dagster_errors_become_problems(api):
    api.dagster.launch_result = "RunConfigValidationInvalid"
    resp = api.post("/analytics/jobs", json={"operation": "simple_demo"}, headers={"Idempotency-Key": "k-2"})
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_job_config"
    api.dagster.launch_result = "PythonError"
    resp = api.post("/analytics/jobs", json={"operation": "simple_demo"}, headers={"Idempotency-Key": "k-2"})
    assert resp.status_code == 502 and "Traceback" not in resp.text
    api.dagster.launch_result = "LaunchRunSuccess"  # the key was released: a retry goes through
    assert (
        api.post(
            "/analytics/jobs", json={"operation": "simple_demo"}, headers={"Idempotency-Key": "k-2"}
        ).status_code
        == 202
    )


def test_dagster_down_is_503(stack, fake_dagster):
    from tests.api.conftest import make_client

    with make_client(stack, "http://127.0.0.1:1") as client:
        resp = client.post("/analytics/jobs", json={"operation": "simple_demo"})
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "dagster_unavailable"


def test_unknown_job_is_404(api):
    for method, path in (
        ("GET", "/analytics/jobs/abc"),
        ("GET", "/analytics/jobs/abc/result"),
        ("DELETE", "/analytics/jobs/abc"),
    ):
        resp = api.request(method, path)
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "job_not_found"


def test_result_before_success_is_409_then_inline_json_and_csv(api):
    job_id = api.post("/analytics/jobs", json={"operation": "count_analysis"}).json()["job"]["jobId"]
    resp = api.get(f"/analytics/jobs/{job_id}/result")
    assert resp.status_code == 409 and resp.json()["jobStatus"] == "queued"
    # What the run and the status sensor write:
    store = _store(api)
    summary = store_result(
        api.stack.client("s3"),
        api.stack.settings.results_bucket,
        job_id,
        ["industry", "n"],
        [("Technology", 3), ("Retail", 2)],
    )
    store.record_result(job_id, summary)
    store.record_status(job_id, "succeeded", job_type="analytics")
    resp = api.get(f"/analytics/jobs/{job_id}/result")
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"] == [{"industry": "Technology", "n": 3}, {"industry": "Retail", "n": 2}]
    assert resp.json()["metadata"]["resultCount"] == 2
    csv = api.get(f"/analytics/jobs/{job_id}/result?format=csv")
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines() == ["industry,n", "Technology,3", "Retail,2"]
    assert api.get(f"/analytics/jobs/{job_id}").json()["job"]["status"] == "succeeded"
    assert api.delete(f"/analytics/jobs/{job_id}").status_code == 409


def test_a_large_job_result_is_a_303_to_presigned_s3(api):
    job_id = api.post("/analytics/jobs", json={"operation": "simple_demo"}).json()["job"]["jobId"]
    store = _store(api)
    rows = [(i, i * 2) for i in range(1, 1501)]
    summary = store_result(
        api.stack.client("s3"), api.stack.settings.results_bucket, job_id, ["n", "twice"], rows
    )
    assert summary["storage"] == "s3"
    store.record_result(job_id, summary)
    store.record_status(job_id, "succeeded", job_type="analytics")
    for fmt in ("json", "csv"):
        resp = api.get(f"/analytics/jobs/{job_id}/result?format={fmt}", follow_redirects=False)
        assert resp.status_code == 303
        body = httpx.get(resp.headers["location"])
        assert body.status_code == 200
        if fmt == "json":
            assert len(body.json()["rows"]) == 1500
        else:
            assert len(body.text.splitlines()) == 1501
    assert api.get(f"/analytics/jobs/{job_id}/result?format=xml").status_code == 422


def test_a_parquet_result_is_a_303_to_presigned_s3_and_a_job_without_one_is_404(api):
    job_id = api.post("/analytics/jobs", json={"operation": "simple_demo"}).json()["job"]["jobId"]
    store = _store(api)
    summary = store_result(api.stack.client("s3"), api.stack.settings.results_bucket, job_id, ["n"], [(1,)])
    store.record_result(job_id, summary)
    store.record_status(job_id, "succeeded", job_type="analytics")
    resp = api.get(f"/analytics/jobs/{job_id}/result?format=parquet")
    assert resp.status_code == 404 and "Parquet" in resp.json()["detail"]
    # What the analytics op writes beside JSON and CSV (assets/analytics_job.py, pandas on the Dagster side).
    key = f"results/{job_id}/result.parquet"
    api.stack.client("s3").put_object(Bucket=api.stack.settings.results_bucket, Key=key, Body=b"PAR1")
    store.record_result(job_id, {**summary, "parquet": key})
    resp = api.get(f"/analytics/jobs/{job_id}/result?format=parquet", follow_redirects=False)
    assert resp.status_code == 303 and f"{job_id}/result.parquet" in resp.headers["location"]
    assert httpx.get(resp.headers["location"]).content == b"PAR1"
    job = api.get(f"/analytics/jobs/{job_id}").json()["job"]
    assert "parquet" not in job["result"] and job["links"]["parquet"].endswith("format=parquet")


def test_failed_job_result_is_409_with_the_error(api):
    job_id = api.post("/analytics/jobs", json={"operation": "simple_demo"}).json()["job"]["jobId"]
    _store(api).record_status(job_id, "failed", job_type="analytics", fields={"error": "it broke"})
    resp = api.get(f"/analytics/jobs/{job_id}/result")
    assert resp.status_code == 409 and "it broke" in resp.json()["detail"]


def test_delete_terminates_the_run(api):
    job_id = api.post("/analytics/jobs", json={"operation": "simple_demo"}).json()["job"]["jobId"]
    resp = api.delete(f"/analytics/jobs/{job_id}")
    assert resp.status_code == 202 and resp.json()["job"]["status"] == "canceling"
    assert api.dagster.requests[-1]["variables"] == {"runId": job_id}
    got = api.get(f"/analytics/jobs/{job_id}").json()["job"]  # DynamoDB says so at once
    assert got["status"] == "canceling" and got["cancelRequestedAt"]
    _store(api).record_status(job_id, "running", job_type="analytics")  # a late sensor write: refused
    assert api.get(f"/analytics/jobs/{job_id}").json()["job"]["status"] == "canceling"
    _store(api).record_status(job_id, "canceled", job_type="analytics")  # how the run ended
    assert api.get(f"/analytics/jobs/{job_id}").json()["job"]["status"] == "canceled"
    # A job DynamoDB knows but Dagster does not:
    _store(api).record_status("ghost-run", "queued", job_type="analytics")
    assert api.delete("/analytics/jobs/ghost-run").status_code == 404


def test_delete_while_the_run_is_starting_waits_for_it_then_cancels(api):
    job_id = api.post("/analytics/jobs", json={"operation": "simple_demo"}).json()["job"]["jobId"]
    api.dagster.starting[job_id] = 2  # refused twice, then the run is STARTED
    resp = api.delete(f"/analytics/jobs/{job_id}")
    assert resp.status_code == 202 and resp.json()["job"]["status"] == "canceling"
    assert sum(1 for r in api.dagster.requests if "terminateRun" in r["query"]) == 3


def test_delete_past_the_wait_is_a_retryable_409(stack, fake_dagster):
    from tests.api.conftest import make_client, seed_entities

    seed_entities(stack.pg.owner_url)
    with make_client(stack, fake_dagster.url, API_CANCEL_WAIT_SECONDS=0.6) as client:
        job_id = client.post("/analytics/jobs", json={"operation": "simple_demo"}).json()["job"]["jobId"]
        fake_dagster.starting[job_id] = 1000
        resp = client.delete(f"/analytics/jobs/{job_id}")
        assert resp.status_code == 409 and resp.headers["retry-after"] == "2"
        body = resp.json()
        assert body["error"]["code"] == "run_starting" and body["runStatus"] == "STARTING"
        fake_dagster.starting[job_id] = 0  # a moment later the same DELETE works
        assert client.delete(f"/analytics/jobs/{job_id}").status_code == 202


def test_delete_of_a_run_dagster_already_finished_or_is_canceling(api):
    job_id = api.post("/analytics/jobs", json={"operation": "simple_demo"}).json()["job"]["jobId"]
    api.dagster.run_status[job_id] = "CANCELING"  # a second DELETE: still 202, nothing new to do
    assert api.delete(f"/analytics/jobs/{job_id}").status_code == 202
    api.dagster.run_status[job_id] = "SUCCESS"  # finished before the mirror in DynamoDB caught up
    resp = api.delete(f"/analytics/jobs/{job_id}")
    assert resp.status_code == 409 and resp.json()["jobStatus"] == "succeeded"


def test_dynamodb_trouble_is_a_503_not_a_500(stack, fake_dagster):
    from tests.api.conftest import make_client

    gone = stack.settings.model_copy(update={"jobs_table": "no-such-table"})
    with make_client(type(stack)(settings=gone, aws=stack.aws, pg=stack.pg), fake_dagster.url) as client:
        resp = client.get("/analytics/jobs/0b6d2c4e-0000-4000-8000-000000000000")
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "aws_unavailable"
        assert resp.headers["retry-after"] == "5" and "no-such-table" not in resp.text


def test_run_links_use_the_public_dagster_url_when_set(stack, fake_dagster):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.config import ApiSettings

    settings = stack.settings.model_copy(
        update={"dagster_url": fake_dagster.url, "dagster_public_url": "https://dagster.example.com/"}
    )
    with TestClient(create_app(settings, ApiSettings())) as client:
        job = client.post("/analytics/jobs", json={"operation": "simple_demo"}).json()["job"]
    assert job["dagsterRunUrl"] == f"https://dagster.example.com/runs/{job['jobId']}"
    assert fake_dagster.requests  # the launch itself went to the internal GraphQL endpoint
