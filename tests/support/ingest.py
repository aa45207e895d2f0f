"""Helpers for driving the real sensor → run → PostgreSQL path in tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from dagster import DagsterInstance, Definitions, SensorResult, build_sensor_context

from pipeline_defs.domains.analytics import analytics_definitions
from pipeline_defs.domains.ingest import ingest_definitions
from resources.contract import analytics_run_config
from resources.dagster_resources import IngestTuningResource, build_resources
from resources.ingest.registry import FileObject, FileRow, finish_loading, register_files, start_loading
from resources.ingest.runner import FileOutcome, ingest_file
from sensors.landing import landing_sensor


def resources_for(stack: Any, **tuning: Any) -> dict[str, Any]:
    """The code location's resources for this test's stack, as plain values (no environment read);
    `tuning` overrides IngestTuningResource fields (e.g. max_files_per_run=100)."""
    resources = build_resources(stack.settings, environ={})
    if tuning:
        resources["ingest_tuning"] = IngestTuningResource(
            **{**resources["ingest_tuning"].model_dump(), **tuning}
        )
    return resources


@dataclass
class Driver:
    """Ticks landing_sensor and executes the runs it requests, as the daemon would."""

    stack: Any
    instance: DagsterInstance
    cursor: str | None = None
    results: list[Any] = field(default_factory=list)
    tuning: dict[str, Any] = field(default_factory=dict)  # IngestTuningResource overrides

    def __post_init__(self) -> None:
        self.resources = resources_for(self.stack, **self.tuning)
        # The code location's ingest and analytics domains, with this stack's resources.
        self.defs = Definitions.merge(
            ingest_definitions(), analytics_definitions(), Definitions(resources=self.resources)
        )

    def upload(self, key: str, body: bytes | str | dict | list) -> str:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        resp = self.stack.client("s3").put_object(Bucket=self.stack.settings.raw_bucket, Key=key, Body=body)
        return resp["ETag"].strip('"')

    def tick(self) -> SensorResult:
        ctx = build_sensor_context(instance=self.instance, cursor=self.cursor, resources=self.resources)
        result = landing_sensor(ctx)
        assert isinstance(result, SensorResult)
        self.cursor = result.cursor
        return result

    def run(self, result: SensorResult) -> list[Any]:
        job = self.defs.resolve_job_def("ingest_job")
        outs = []
        for req in result.run_requests or []:
            outs.append(
                job.execute_in_process(
                    run_config=req.run_config, instance=self.instance, tags=req.tags, raise_on_error=False
                )
            )
        self.results.extend(outs)
        return outs

    def analytics(
        self, operation: str, parameters: dict | None = None, *, run_id: str | None = None, **config: Any
    ) -> Any:
        """Execute analytics_job in process, as a launched run would (`run_id`: the one the launch gave)."""
        run_config = analytics_run_config(operation, parameters or {}, **config)
        return self.defs.resolve_job_def("analytics_job").execute_in_process(
            run_config=run_config, instance=self.instance, raise_on_error=False, run_id=run_id
        )

    def tick_and_run(self) -> list[Any]:
        return self.run(self.tick())

    def settle(self, max_ticks: int = 20) -> None:
        """Tick and run until a tick requests nothing."""
        for _ in range(max_ticks):
            result = self.tick()
            if not result.run_requests:
                return
            self.run(result)
        raise AssertionError("the sensor kept requesting runs")


@contextmanager
def live_loader(url: str, file_id: int, run_id: str = "live-run") -> Iterator[psycopg.Connection]:
    """A loader that is alive: a session that took the file as `start_loading` does and holds it."""
    with psycopg.connect(url) as conn:
        assert start_loading(conn, file_id, run_id) is None
        try:
            yield conn
        finally:
            finish_loading(conn, file_id)


def q(url: str, sql: str, params: tuple | dict | None = None) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def q1(url: str, sql: str, params: tuple | dict | None = None) -> Any:
    rows = q(url, sql, params)
    return rows[0][0] if rows else None


class RawFiles:
    """Upload exports to the stack's raw bucket, register them with the LastModified a test chooses (as
    the sensor records it) and ingest them with `ingest_file`, in whatever order a case needs."""

    def __init__(self, stack: Any):
        self.stack = stack
        self.s3 = stack.client("s3")
        self.bucket = stack.settings.raw_bucket

    def add(self, key: str, doc: Any, last_modified: Any = None) -> FileRow:
        body = (doc if isinstance(doc, str) else json.dumps(doc)).encode()
        etag = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)["ETag"]
        with psycopg.connect(self.stack.settings.database_url) as conn:
            [row] = register_files(conn, [FileObject(key, etag, len(body), last_modified)], via="test")
        return row

    def ingest(self, row: FileRow, run_id: str = "test-run", **kw: Any) -> FileOutcome:
        with psycopg.connect(self.stack.settings.database_url) as conn:
            return ingest_file(conn, self.s3, self.bucket, row, run_id, **kw)
