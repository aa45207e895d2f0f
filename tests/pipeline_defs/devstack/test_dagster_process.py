"""`dagster dev` as the dev stack runs it, without starting it (`make dev` does)."""

from __future__ import annotations

from pipeline_defs.devstack.dagster_process import (
    DAGSTER_RESTART_WINDOW,
    DAGSTER_YAML,
    MAX_DAGSTER_RESTARTS,
    DagsterProcess,
    RestartBudget,
)


def test_generated_dagster_yaml_is_a_valid_instance_config(tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    (tmp_path / "dagster.yaml").write_text(DAGSTER_YAML)
    monkeypatch.setenv("DAGSTER_DATABASE_URL", "postgresql+psycopg2://u:p@127.0.0.1:1/dagster")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_coordinator"]["config"]["max_concurrent_runs"] == 2
    assert config["run_coordinator"]["config"]["dequeue_interval_seconds"] == 1
    assert config["sensors"] == {"use_threads": True, "num_workers": 4}
    assert config["telemetry"]["enabled"] is False
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_DATABASE_URL"}


def test_dagster_dev_is_restarted_only_so_often_within_the_window():
    budget = RestartBudget()
    assert all(budget.spend(float(t)) for t in range(MAX_DAGSTER_RESTARTS))
    assert not budget.spend(float(MAX_DAGSTER_RESTARTS))
    assert budget.deaths() == MAX_DAGSTER_RESTARTS + 1
    assert budget.spend(DAGSTER_RESTART_WINDOW + 0.5)  # the first deaths have left the window


def test_the_log_says_which_process_ended_dagster_dev(tmp_path):
    log = tmp_path / "dagster.log"
    process = DagsterProcess(
        tmp_path, tmp_path / "home", log, "127.0.0.1", 3000, follow_logs=False, echo=lambda msg: None
    )
    log.write_text("...\ndagster-daemon process shut down unexpectedly with return code -9\n")
    assert process.what_died(1) == "the Dagster daemon died, and `dagster dev` with it (exit code 1)"
    log.write_text("nothing said\n")
    assert process.what_died(2) == "`dagster dev` (Dagster UI + daemon) exited on its own with code 2"
