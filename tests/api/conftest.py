"""API fixtures: the app on the test stack (embedded PostgreSQL + moto), a seeded canonical model, and a
real local HTTP server answering Dagster's GraphQL mutations with Dagster's exact response shapes."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.config import ApiSettings

ENTITIES = [
    # canonical_id, source, type, name, industry, revenue, employees, region
    ("crm_C1", "crm", "large_enterprise", "Acme Corp", "Technology", 50_000_000, 2000, "Europe"),
    ("crm_C2", "crm", "medium_business", "Beta Ltd", "Technology", 5_000_000, 200, "Europe"),
    ("crm_C3", "crm", "small_business", "Gamma GmbH", "Retail", 500_000, 20, "Americas"),
    ("erp_E1", "erp", "large_enterprise", "Acme Corporation", "Technology", 52_000_000, 2100, "Europe"),
    ("erp_E2", "erp", "medium_business", "Delta Inc", "Finance", 8_000_000, 300, "Americas"),
    ("legacy_L1", "legacy", "small_business", "Epsilon", "Retail", 100_000, 5, None),
]


def seed_entities(owner_url: str) -> None:
    with psycopg.connect(owner_url) as conn:
        for cid, src, etype, name, industry, revenue, employees, region in ENTITIES:
            attrs = {"name": name, "industry": industry, "revenue": revenue, "employees": employees}
            if region:
                attrs["region"] = region
            conn.execute(
                """INSERT INTO canonical.entities (entity_type, source_system, canonical_id, name, industry, revenue,
                                                   employees, attributes, attributes_hash)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, decode(md5(%s), 'hex'))""",
                (etype, src, cid, name, industry, revenue, employees, json.dumps(attrs), json.dumps(attrs)),
            )
        conn.execute("UPDATE ingest.data_version SET version = version + 1")


@dataclass
class FakeDagster:
    """Speaks the shapes of Dagster 1.13's launchRun / terminateRun results (see test_graphql_contract.py,
    which validates our documents against Dagster's own schema)."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    launch_result: str = "LaunchRunSuccess"
    runs: set[str] = field(default_factory=set)
    run_status: dict[str, str] = field(default_factory=dict)  # default STARTED
    starting: dict[str, int] = field(default_factory=dict)  # run id → terminate calls answered STARTING

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(body)
        query = body.get("query", "")
        if "launchRun" in query:
            if self.launch_result == "RunConfigValidationInvalid":
                return {
                    "data": {
                        "launchRun": {
                            "__typename": "RunConfigValidationInvalid",
                            "errors": [
                                {"message": "Received unexpected config entry", "reason": "FIELD_NOT_DEFINED"}
                            ],
                        }
                    }
                }
            if self.launch_result == "PythonError":
                return {"data": {"launchRun": {"__typename": "PythonError", "message": "boom"}}}
            run_id = str(uuid.uuid4())
            self.runs.add(run_id)
            return {
                "data": {
                    "launchRun": {
                        "__typename": "LaunchRunSuccess",
                        "run": {"runId": run_id, "status": "QUEUED"},
                    }
                }
            }
        if "terminateRun" in query:
            run_id = body["variables"]["runId"]
            if run_id not in self.runs:
                return {
                    "data": {
                        "terminateRun": {
                            "__typename": "RunNotFoundError",
                            "runId": run_id,
                            "message": f"Run {run_id} could not be found.",
                        }
                    }
                }
            status = self.run_status.get(run_id, "STARTED")
            if self.starting.get(run_id, 0) > 0:  # Dagster refuses a run that is being launched
                self.starting[run_id] -= 1
                status = "STARTING"
            if status not in ("QUEUED", "STARTED"):
                return {
                    "data": {
                        "terminateRun": {
                            "__typename": "TerminateRunFailure",
                            "run": {"runId": run_id, "status": status},
                            "message": f"Run {run_id} could not be terminated due to having status {status}.",
                        }
                    }
                }
            return {
                "data": {
                    "terminateRun": {
                        "__typename": "TerminateRunSuccess",
                        "run": {"runId": run_id, "status": "CANCELING"},
                    }
                }
            }
        return {"errors": [{"message": "unknown document"}]}


@pytest.fixture
def fake_dagster() -> Iterator[FakeDagster]:
    fake = FakeDagster()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/server_info":
                self._send(200, {"dagster_webserver_version": "1.13.27"})
            else:
                self._send(404, {})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            self._send(200, fake.answer(body))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Api:
    client: TestClient
    stack: Any
    dagster: FakeDagster

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def make_client(stack: Any, dagster_url: str, **api_env: Any) -> TestClient:
    settings = stack.settings.model_copy(update={"dagster_url": dagster_url})
    # Dependencies that are down here refuse at once; the budget only has to cover a busy machine.
    api_settings = ApiSettings(**{"API_HEALTH_TIMEOUT_SECONDS": 10, **api_env})
    return TestClient(create_app(settings, api_settings), raise_server_exceptions=False)


@pytest.fixture
def api(stack: Any, fake_dagster: FakeDagster) -> Iterator[Api]:
    seed_entities(stack.pg.owner_url)
    with make_client(stack, fake_dagster.url) as client:
        yield Api(client, stack, fake_dagster)
