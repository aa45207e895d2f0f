"""The code location loads as `dagster dev` loads it, and agrees with the names the other side uses.

Fast (no database, no AWS): it loads workspace.yaml's module, resolves every job and sensor, and checks
that the run configs built by resources/contract.py (what landing_sensor and the REST API send) are
valid for the jobs they target, so renaming an op or a config field fails here and not in production.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import dagster
import pytest
import yaml
from dagster import DagsterInvalidConfigError, Definitions, EnvVar, validate_run_config

from resources import contract
from resources.dagster_resources import build_resources
from resources.settings import PROJECT_ROOT, Settings


def _workspace_definitions() -> Definitions:
    ws = yaml.safe_load((Path(PROJECT_ROOT) / "workspace.yaml").read_text())
    [entry] = ws["load_from"]
    module = importlib.import_module(entry["python_module"]["module_name"])
    defs = getattr(module, entry["python_module"]["attribute"])()  # built lazily, as Dagster loads it
    assert isinstance(defs, Definitions)
    return defs


def test_workspace_yaml_loads_definitions_that_resolve_every_job_schedule_and_sensor():
    defs = _workspace_definitions()
    repo = defs.get_repository_def()
    assert {j.name for j in repo.get_all_jobs() if not j.name.startswith("__")} == {
        contract.INGEST_JOB,
        contract.ANALYTICS_JOB,
        contract.REPLAY_JOB,
        "analytics_daily_job",
        "analytics_monthly_job",
        "purge_old_runs_job",
        "golden_entities_job",
    }
    assert {s.name for s in repo.schedule_defs} == {"analytics_daily", "analytics_monthly", "run_retention"}
    for schedule in repo.schedule_defs:
        assert defs.get_schedule_def(schedule.name).job.name in {j.name for j in repo.get_all_jobs()}
    sensors = {s.name for s in repo.sensor_defs}
    assert contract.LANDING_SENSOR in sensors
    assert {
        "job_started_mirror",
        "job_succeeded_mirror",
        "job_failed_mirror",
        "job_canceled_mirror",
        "job_status_reconciler",
    } <= sensors
    for name in sensors:
        assert defs.get_sensor_def(name).name == name


def test_ingest_runs_execute_in_the_run_worker_without_a_step_process():
    # One op per run: a step subprocess bought no parallelism and cost a Python start-up and a code
    # location import per run (bench/latency_results.md). The tests' execute_in_process runs the same way.
    job = _workspace_definitions().resolve_job_def(contract.INGEST_JOB)
    assert job.executor_def is dagster.in_process_executor
    assert len(job.graph.node_defs) == 1


def test_the_ops_the_contract_names_are_the_jobs_ops():
    defs = _workspace_definitions()
    assert contract.INGEST_OP in {n.name for n in defs.resolve_job_def(contract.INGEST_JOB).nodes}
    assert contract.ANALYTICS_OP in {n.name for n in defs.resolve_job_def(contract.ANALYTICS_JOB).nodes}
    assert contract.REPLAY_OP in {n.name for n in defs.resolve_job_def(contract.REPLAY_JOB).nodes}


def test_run_configs_built_from_the_contract_are_valid_for_their_jobs():
    defs = _workspace_definitions()
    ingest = defs.resolve_job_def(contract.INGEST_JOB)
    analytics = defs.resolve_job_def(contract.ANALYTICS_JOB)

    def valid(job, run_config) -> bool:
        try:
            validate_run_config(job, run_config)
        except DagsterInvalidConfigError:
            return False
        return True

    assert valid(ingest, contract.ingest_run_config([1, 2], 0.5))
    assert valid(ingest, contract.ingest_run_config(None))  # "Materialize" with no file ids
    assert valid(ingest, {})  # no config at all
    assert valid(analytics, contract.analytics_run_config("simple_demo", {}, timeout_seconds=30, max_rows=10))
    replay = defs.resolve_job_def(contract.REPLAY_JOB)
    assert valid(replay, contract.replay_run_config("crm"))
    assert valid(replay, contract.replay_run_config("crm", since="2026-03-01"))
    assert not valid(replay, {})  # the source is required
    assert not valid(ingest, {"ops": {contract.INGEST_OP: {"config": {"file_ids": "one"}}}})
    assert not valid(analytics, {"ops": {"not_the_op": {"config": {}}}})


def test_op_config_reads_back_what_the_builders_wrote():
    cfg = contract.ingest_run_config([3], 0.2)
    assert contract.op_config(cfg, contract.INGEST_OP) == {"file_ids": [3], "max_refused_share": 0.2}
    assert contract.op_config(None, contract.INGEST_OP) == {}
    assert contract.op_config({"ops": {}}, contract.ANALYTICS_OP) == {}


def test_every_resource_a_definition_asks_for_is_provided():
    """A sensor or asset naming a resource the code location does not provide fails at load; pin the set."""
    defs = _workspace_definitions()
    assert set(defs.resources or {}) == {
        "postgres",
        "readonly_postgres",
        "raw_bucket",
        "job_tracking",
        "metrics",
        "ingest_tuning",
    }
    assert {"postgres", "raw_bucket", "ingest_tuning"} <= set(
        defs.get_sensor_def(contract.LANDING_SENSOR).required_resource_keys
    )


def test_resources_take_their_configuration_from_the_environment_as_env_vars(monkeypatch):
    """Set variables become EnvVars (the UI shows their names, never a password) resolved when the resource
    starts; unset ones fall back to Settings' defaults; nothing inside a sensor or asset reads the environment."""
    env = {
        "DATABASE_URL": "postgresql://w:secret@db.example/canonical",
        "INGEST_MAX_FILES_PER_RUN": "7",
        "DAGSTER_URL": "https://dagster.example",
        "INGEST_FRESHNESS_HOURS": "3",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    resources = build_resources(Settings())
    assert resources["postgres"].database_url == EnvVar("DATABASE_URL")
    with dagster.build_resources(resources) as r:
        assert r.postgres.database_url == env["DATABASE_URL"]
        assert r.ingest_tuning.max_files_per_run == 7
        assert r.ingest_tuning.freshness_hours == 3.0
        assert r.job_tracking.dagster_url == "https://dagster.example"
        assert r.raw_bucket.bucket == "canonical-raw"  # unset: the default


def test_run_links_use_the_public_dagster_url_when_set():
    resources = build_resources(
        Settings(DAGSTER_URL="http://internal-alb", DAGSTER_PUBLIC_URL="https://dagster.example"), environ={}
    )
    assert resources["job_tracking"].dagster_url == "https://dagster.example"
    assert build_resources(Settings(DAGSTER_URL="http://internal-alb"), environ={})[
        "job_tracking"
    ].dagster_url == ("http://internal-alb")


def test_resources_built_with_no_environment_hold_plain_values():
    """Tests and other deployments build resources from values; nothing is patched, no cache is cleared."""
    s = Settings(RAW_BUCKET="mine", INGEST_MAX_FILES_PER_RUN=3)
    resources = build_resources(s, environ={})
    assert resources["raw_bucket"].bucket == "mine"
    assert resources["ingest_tuning"].max_files_per_run == 3


def test_analytics_parameters_are_typed_config_fields_of_every_operation():
    """The launchpad shows each operation's fields, defaults, allowed values and descriptions: the config
    schema is generated from the parameter models the REST API validates with."""
    from resources.analytics.catalogue import CATALOGUE

    job = _workspace_definitions().resolve_job_def(contract.ANALYTICS_JOB)
    config_type = job.run_config_schema.config_type
    request = (
        config_type.fields["ops"]
        .config_type.fields[contract.ANALYTICS_OP]
        .config_type.fields["config"]
        .config_type.fields["request"]
        .config_type
    )
    assert set(request.fields) == set(CATALOGUE)
    for name, op in CATALOGUE.items():
        fields = request.fields[name].config_type.fields
        assert set(op.params_model.model_fields) <= set(fields), name
    metric = request.fields["customer_analysis"].config_type.fields["metric"]
    assert metric.default_value == "revenue" and metric.description
    assert {v.config_value for v in metric.config_type.enum_values} >= {"revenue", "lifetime_value"}


def test_the_analytics_config_rejects_a_bad_parameter_before_the_run():
    job = _workspace_definitions().resolve_job_def(contract.ANALYTICS_JOB)
    good = contract.analytics_run_config("customer_analysis", {"metric": "revenue", "group_by": "region"})
    validate_run_config(job, good)
    for bad in ({"metric": "salary"}, {"group_by": "e.name"}, {"nope": 1}):
        with pytest.raises(DagsterInvalidConfigError):
            validate_run_config(job, contract.analytics_run_config("customer_analysis", bad))
    with pytest.raises(DagsterInvalidConfigError):
        validate_run_config(job, contract.analytics_run_config("drop_tables", {}))
    # A custom query's values of mixed types travel as JSON text, and read back.
    custom = contract.analytics_run_config(
        "custom_complex_query", {"query": "SELECT $1", "params": [1, "a", None]}
    )
    validate_run_config(job, custom)
    assert contract.analytics_request(custom) == (
        "custom_complex_query",
        {"query": "SELECT $1", "params": [1, "a", None]},
    )


def test_ingest_defaults_have_one_owner():
    """Settings, the tuning resource and the landing sensor's limits all start from resources/ingest/defaults.py."""
    from resources.dagster_resources import IngestTuningResource
    from resources.ingest import defaults
    from sensors.landing import TickLimits

    owned = {
        "max_files_per_run": defaults.MAX_FILES_PER_RUN,
        "max_bytes_per_run": defaults.MAX_BYTES_PER_RUN,
        "reconcile_interval_seconds": defaults.RECONCILE_INTERVAL_SECONDS,
        "freshness_hours": defaults.FRESHNESS_HOURS,
        "max_refused_share": defaults.MAX_REFUSED_SHARE,
        "max_attempts": defaults.MAX_ATTEMPTS,
        "retry_backoff_seconds": defaults.RETRY_BACKOFF_SECONDS,
    }
    tuning, limits = IngestTuningResource(), TickLimits()
    for name, value in owned.items():
        assert Settings.model_fields[f"ingest_{name}"].default == value, name
        assert getattr(tuning, name) == value, name
        if hasattr(limits, name):
            assert getattr(limits, name) == value, name


def test_a_bad_environment_variable_fails_loading_the_definitions_by_name_not_importing_the_module():
    """The UI shows a code location that fails to load with its error: the variable and why, never its value.
    Importing the module (the import-graph checks, a run worker's imports) does not read the environment."""
    code = (
        "import pipeline_defs.definitions as m\n"
        "try:\n    m.defs()\nexcept Exception as e:\n    print(type(e).__name__, e)"
    )
    env = {
        **os.environ,
        "INGEST_MAX_FILES_PER_RUN": "abc",
        "DATABASE_URL": "postgresql://w:s3cret@db/canonical",
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT_ROOT,
        env=env,
        timeout=120,
    )
    assert out.stdout.startswith("SettingsError "), out.stdout + out.stderr
    assert "INGEST_MAX_FILES_PER_RUN" in out.stdout and "integer" in out.stdout
    assert "abc" not in out.stdout and "s3cret" not in out.stdout
