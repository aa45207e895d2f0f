"""What users rely on stays as it is while the code moves: the OpenAPI document and the Dagster definitions
(jobs, assets, checks, sensors, schedules, resources) are compared with the snapshots in tests/snapshots/.

A change to either that is meant is made on purpose: run `UPDATE_SNAPSHOTS=1 pytest
tests/test_contracts_unchanged.py`, and the diff of the snapshot is the change a reviewer reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def openapi_document() -> dict[str, Any]:
    from api.app import create_app

    return create_app().openapi()


def definitions_summary() -> dict[str, Any]:
    from pipeline_defs.definitions import defs as load_definitions

    defs = load_definitions()
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        metadata = node.metadata or {}
        schema = metadata.get("dagster/column_schema")
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "description": node.description,
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "external": node.is_external,
            "owners": sorted(node.owners),
            "tags": dict(sorted(node.tags.items())),
            "automation": str(node.automation_condition) if node.automation_condition else None,
            "metadata_keys": sorted(metadata),
            "columns": [c.name for c in schema.columns] if schema is not None else None,
        }
    checks = {}
    for check_key in sorted(graph.asset_check_keys, key=str):
        spec = graph.get_check_spec(check_key)
        checks[f"{check_key.asset_key.to_user_string()}:{check_key.name}"] = {
            "blocking": spec.blocking,
            "description": spec.description,
        }
    jobs = {
        j.name: {
            "description": j.description,
            "tags": dict(sorted((j.tags or {}).items())),
            "ops": sorted(n.name for n in j.nodes),
            "executor": j.executor_def.name,
        }
        for j in sorted(repo.get_all_jobs(), key=lambda j: j.name)
        if not j.name.startswith("__")
    }
    schedules = {
        s.name: {
            "cron": s.cron_schedule,
            "job": s.job_name,
            "timezone": s.execution_timezone,
            "default_status": s.default_status.value,
            "description": s.description,
        }
        for s in sorted(repo.schedule_defs, key=lambda s: s.name)
    }
    sensors = {
        s.name: {
            "kind": type(s).__name__,
            "minimum_interval_seconds": s.minimum_interval_seconds,
            "default_status": s.default_status.value,
            "job": s.job_name if s.has_jobs else None,
            "description": s.description,
        }
        for s in sorted(repo.sensor_defs, key=lambda s: s.name)
    }
    resources = {
        name: {"type": type(r).__name__, "fields": sorted(getattr(type(r), "model_fields", {}))}
        for name, r in sorted((defs.resources or {}).items())
    }
    return {
        "assets": assets,
        "asset_checks": checks,
        "jobs": jobs,
        "schedules": schedules,
        "sensors": sensors,
        "resources": resources,
    }


def _in_a_fresh_process(build: Any) -> str:
    """The contract as a new process sees it, as the code server and the API load it: what earlier tests in
    this worker did to Dagster's process state (a disposed test instance) cannot leak into it."""
    code = (
        f"import json; from tests.test_contracts_unchanged import {build.__name__} as b; "
        "print(json.dumps(b(), sort_keys=True, default=str))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("name", "build"), [("openapi.json", openapi_document), ("definitions.json", definitions_summary)]
)
def test_the_public_contract_matches_its_snapshot(name: str, build: Any) -> None:
    now = json.loads(_in_a_fresh_process(build))
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
    assert now == json.loads(path.read_text()), (
        f"{name} changed: if on purpose, UPDATE_SNAPSHOTS=1 (module doc)"
    )
