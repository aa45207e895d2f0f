"""The whole async path against a real Dagster: `dagster dev` (webserver + daemon) for the project's code
location, its storage in a dedicated database on the test PostgreSQL, its resources on the moto server.

The sample CRM file is uploaded to the raw bucket and ingested by the daemon's landing sensor; then the REST
app (in process, DAGSTER_URL → the webserver) launches analytics jobs over GraphQL, the run-status sensors
mirror the runs into DynamoDB, and the results are read back through the API.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from fastapi.testclient import TestClient

from api.app import create_app
from api.config import ApiSettings
from pipeline_defs.devstack.dagster_process import DAGSTER_YAML
from pipeline_defs.devstack.postgres import dagster_storage_url
from pipeline_defs.devstack.processes import die_with_parent, free_port, http_ok, stop_group, tail
from resources.clients.aws import aws_client
from resources.settings import PROJECT_ROOT, Settings
from tests.support import aws as support_aws
from tests.support.postgres import reset_canonical

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("dagster")]

DAGSTER_DB = "dagster_api_e2e"
CRM_SAMPLE = PROJECT_ROOT / "samples" / "crm-data" / "customer-data.json"
CUSTOMER_PARAMS = {"metric": "revenue", "group_by": "industry"}
# Runs for minutes under the read-only role (a nested loop of 10^10 rows), yet passes the query guard.
LONG_QUERY = "SELECT count(*) AS n FROM generate_series(1, 100000) a, generate_series(1, 100000) b"


# Waits are upper bounds, not expectations: each returns as soon as its condition holds, so they are set
# for a shared, busy 2-core machine (run and step processes start several times slower there).
PATIENCE = 4


def _wait(
    what: str,
    probe: Callable[[], Any],
    timeout: float,
    interval: float = 0.5,
    alive: Callable[[], None] | None = None,
) -> Any:
    timeout *= PATIENCE
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@dataclass
class Platform:
    settings: Settings
    owner_url: str
    dagster_url: str
    client: TestClient
    log: Path

    def jobs_item(self, run_id: str) -> dict[str, Any]:
        resp = self.client.get(f"/analytics/jobs/{run_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()["job"]

    def wait_status(self, run_id: str, statuses: set[str], timeout: float) -> dict[str, Any]:
        try:
            return _wait(
                f"job {run_id} to reach {statuses}",
                lambda: (job := self.jobs_item(run_id))["status"] in statuses and job,
                timeout,
                interval=1,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nlast lines of the Dagster log:\n{tail(self.log, 40)}") from None


@pytest.fixture(scope="module")
def platform(pg: Any, moto_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    # A clean canonical model and a fresh Dagster database.
    reset_canonical(pg.owner_url)
    with psycopg.connect(pg.server.url("postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DAGSTER_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DAGSTER_DB}")

    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text(yaml.safe_dump(_instance_config()))
    port = free_port()
    dagster_url = f"http://127.0.0.1:{port}"
    env = {
        "DATABASE_URL": pg.writer_url,
        "READONLY_DATABASE_URL": pg.reader_url,
        "DAGSTER_DATABASE_URL": dagster_storage_url(pg.server.url(DAGSTER_DB)),
        "DAGSTER_URL": dagster_url,
        **support_aws.unique_aws_env(moto_server.endpoint_url),
    }
    with support_aws.settings_from_env(env) as settings:
        child_env = {
            **os.environ,
            **env,
            "DAGSTER_HOME": str(home),
            "AWS_DEFAULT_REGION": settings.aws_region,
            "PYTHONUNBUFFERED": "1",
            "DAGSTER_DISABLE_TELEMETRY": "1",
        }
        log = home / "dagster.log"
        out = open(log, "wb")  # noqa: SIM115 - closed in the finally below
        bindir = Path(sys.executable).parent
        proc = subprocess.Popen(
            [
                str(bindir / "dagster"),
                "dev",
                "-w",
                str(PROJECT_ROOT / "workspace.yaml"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=PROJECT_ROOT,
            env={**child_env, "PATH": f"{bindir}{os.pathsep}{child_env.get('PATH', '')}"},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509
        )
        app = create_app(settings, ApiSettings(API_HEALTH_TIMEOUT_SECONDS=10))
        try:
            # Uploaded while Dagster starts: the S3 event waits in the queue for the landing sensor's first tick.
            aws_client("s3", settings).put_object(
                Bucket=settings.raw_bucket, Key="crm-data/customer-data.json", Body=CRM_SAMPLE.read_bytes()
            )

            def alive() -> None:
                if proc.poll() is not None:
                    raise AssertionError(f"`dagster dev` exited with {proc.returncode}:\n{tail(log, 40)}")

            _wait("the Dagster webserver", lambda: http_ok(f"{dagster_url}/server_info"), 120, alive=alive)
            with TestClient(app, raise_server_exceptions=False) as client:
                yield Platform(settings, pg.owner_url, dagster_url, client, log)
        finally:
            try:
                stop_group(proc, signal.SIGTERM, timeout=10)
            finally:
                out.close()


def _instance_config() -> dict[str, Any]:
    """`make dev`'s instance (PostgreSQL storage, queued runs, run monitoring), quicker to react: runs are
    dequeued every second and the sensors tick in parallel, so the module stays well under two minutes."""
    config = yaml.safe_load(DAGSTER_YAML)
    config["run_coordinator"]["config"].update(max_concurrent_runs=4, dequeue_interval_seconds=1)
    config["sensors"] = {"use_threads": True, "num_workers": 8}
    return config


def _run_status(platform: Platform, run_id: str) -> str | None:
    query = "query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"
    resp = httpx.post(
        f"{platform.dagster_url}/graphql", json={"query": query, "variables": {"id": run_id}}, timeout=10
    )
    return ((resp.json().get("data") or {}).get("runOrError") or {}).get("status")


def _loaded(platform: Platform) -> bool:
    with psycopg.connect(platform.owner_url) as conn:
        rows = conn.execute(
            "SELECT status FROM ingest.files WHERE s3_key = 'crm-data/customer-data.json'"
        ).fetchall()
    return bool(rows) and rows[0][0] == "loaded"


def test_a_job_runs_in_dagster_and_its_result_matches_the_sync_answer(platform):
    # The fixture uploaded the sample CRM file to the raw bucket; the daemon's landing sensor loads it.
    _wait("the daemon to ingest the CRM sample", lambda: _loaded(platform), 60, interval=1)
    status = platform.client.get("/ingest/files/crm-data/customer-data.json")
    assert status.status_code == 200, status.text

    resp = platform.client.post(
        "/analytics/jobs", json={"operation": "customer_analysis", "parameters": CUSTOMER_PARAMS}
    )
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job"]["jobId"]
    assert resp.headers["location"] == f"/analytics/jobs/{job_id}"
    # job id = Dagster run id: the webserver knows the run by it.
    assert http_ok(f"{platform.dagster_url}/runs/{job_id}")

    job = platform.wait_status(job_id, {"succeeded", "failed", "canceled"}, 90)
    assert job["status"] == "succeeded", job
    assert job["dagsterRunUrl"].endswith(f"/runs/{job_id}")

    result = platform.client.get(f"/analytics/jobs/{job_id}/result")
    assert result.status_code == 200, result.text
    sync = platform.client.get("/analytics", params={"operation": "customer_analysis", **CUSTOMER_PARAMS})
    assert sync.status_code == 200, sync.text
    assert sync.json()["data"], "the sync answer is empty: the ingest did not load any rows"
    assert result.json()["data"] == sync.json()["data"]
    assert result.json()["metadata"]["columns"] == sync.json()["metadata"]["columns"]
    assert result.json()["metadata"]["resultCount"] == sync.json()["metadata"]["resultCount"]


def test_delete_cancels_a_long_running_job(platform):
    resp = platform.client.post(
        "/analytics/jobs",
        json={
            "operation": "custom_complex_query",
            "parameters": {"query": LONG_QUERY},
            "timeout_seconds": 120,
        },
    )
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job"]["jobId"]
    platform.wait_status(job_id, {"running"}, 60)
    # DynamoDB says running from STARTING on, but Dagster terminates only a STARTED run (a STARTING one is a
    # 409 cancel_failed): wait for the run to be executing.
    _wait("the run to start", lambda: _run_status(platform, job_id) == "STARTED", 60)
    cancel = platform.client.delete(f"/analytics/jobs/{job_id}")
    assert cancel.status_code == 202, cancel.text
    assert cancel.json()["job"]["status"] == "canceling"
    job = platform.wait_status(job_id, {"canceled", "failed", "succeeded"}, 60)
    assert job["status"] == "canceled", job
    result = platform.client.get(f"/analytics/jobs/{job_id}/result")
    assert result.status_code == 409 and result.json()["jobStatus"] == "canceled"


def _poll_as_the_old_client(platform: Platform, job_id: str, timeout: float) -> dict[str, Any]:
    """GET /analytics/jobs/{jobId} until the top-level status is one the old client knows as finished."""

    def finished() -> dict[str, Any] | bool:
        body = platform.client.get(f"/analytics/jobs/{job_id}").json()
        return body if body["status"] in ("completed", "failed", "canceled") else False

    return _wait(f"job {job_id} to complete", finished, timeout, interval=1)


@pytest.mark.parametrize(
    ("body", "large"),
    [
        # README: the job calls, exactly as written there.
        ({"operation": "multi_dimensional_analytics", "parameters": {"timeframe": "3 months"}}, False),
        (
            {
                "operation": "customer_analysis",
                "parameters": {"metric": "lifetime_value", "group_by": "industry"},
            },
            False,
        ),
        # A result over 1,000 rows: stored in S3 and downloaded as the old README did.
        (
            {
                "operation": "custom_complex_query",
                "parameters": {"query": "SELECT g AS n FROM generate_series(1, 1500) AS g"},
            },
            True,
        ),
    ],
)
def test_an_old_client_submits_polls_to_completed_and_reads_the_result(platform, body, large):
    submitted = platform.client.post("/analytics/jobs", json=body)
    assert submitted.status_code == 202, submitted.text
    assert submitted.json()["status"] == "submitted"
    job_id = submitted.json()["jobId"]  # the old README: $jobId = $jobResponse.jobId
    done = _poll_as_the_old_client(platform, job_id, 90)
    assert done["status"] == "completed" and done["job"]["status"] == "succeeded", done
    result = platform.client.get(done["resultUrl"], follow_redirects=False)
    if not large:
        assert result.status_code == 200 and result.json()["success"] is True, result.text
        return
    assert done["largeResult"] is True and done["recordCount"] == 1500
    assert result.status_code == 303  # ours: a presigned URL
    download = platform.client.get(done["downloadUrl"])  # the old form: the rows through the API
    assert download.status_code == 200, download.text
    assert [r["n"] for r in download.json()["data"]] == list(range(1, 1501))
    assert download.json()["metadata"]["operation"] == "custom_complex_query"
