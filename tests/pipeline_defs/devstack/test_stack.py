"""The dev stack's pieces, without starting processes (`make dev` starts them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline_defs.devstack import stack as devstack
from resources.settings import Settings


def test_child_env_carries_every_setting_and_the_extras(monkeypatch):
    monkeypatch.setenv("SOMETHING_ELSE", "kept")
    s = Settings(RAW_BUCKET="r", AWS_ENDPOINT_URL="http://127.0.0.1:4566")
    env = devstack.child_env(s, {"DAGSTER_HOME": "/x"})
    aliases = {f.alias for n, f in Settings.model_fields.items() if getattr(s, n) is not None}
    assert aliases <= set(env)
    assert env["RAW_BUCKET"] == "r" and env["DAGSTER_HOME"] == "/x" and env["SOMETHING_ELSE"] == "kept"


def test_sample_files_map_to_source_prefixed_keys(tmp_path):
    (tmp_path / "samples" / "crm-data" / "sub").mkdir(parents=True)
    (tmp_path / "samples" / "crm-data" / "a.json").write_text("[]")
    (tmp_path / "samples" / "crm-data" / "sub" / "b.ndjson").write_text("")
    (tmp_path / "samples" / "crm-data" / ".hidden").write_text("")
    (tmp_path / "samples" / "other").mkdir()
    (tmp_path / "samples" / "other" / "c.json").write_text("[]")
    assert [k for _, k in devstack.sample_files(tmp_path)] == ["crm-data/a.json", "crm-data/sub/b.ndjson"]


def test_the_repository_samples_cover_every_source():
    keys = [k for _, k in devstack.sample_files(Path(devstack.PROJECT_ROOT))]
    assert {k.split("/")[0] + "/" for k in keys} == {"crm-data/", "erp-data/", "legacy-data/"}


def test_generated_dagster_yaml_is_a_valid_instance_config(tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    (tmp_path / "dagster.yaml").write_text(devstack.DAGSTER_YAML)
    monkeypatch.setenv("DAGSTER_DATABASE_URL", "postgresql+psycopg2://u:p@127.0.0.1:1/dagster")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_coordinator"]["config"]["max_concurrent_runs"] == 2
    assert config["run_coordinator"]["config"]["dequeue_interval_seconds"] == 1
    assert config["sensors"] == {"use_threads": True, "num_workers": 4}
    assert config["telemetry"]["enabled"] is False
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_DATABASE_URL"}


def test_a_port_taken_by_another_server_stops_pipeline_dev_before_it_starts_anything(tmp_path, http_404_server):
    s = Settings(
        DATABASE_URL=f"postgresql://pipeline_writer:pipeline_writer@127.0.0.1:{http_404_server}/canonical",
        PIPELINE_LOCAL_DIR=str(tmp_path),
    )
    stack = devstack.DevStack(s, echo=lambda msg: None)
    with pytest.raises(devstack.DevStackError, match=f"port {http_404_server} is taken"):
        stack.start()


def test_the_dev_queue_long_polls_less_than_one_daemon_sensor_loop():
    # A landing_sensor tick that waits on the queue must end before the daemon's next loop, or the loop
    # finds it still in flight and the sensor ticks every other loop.
    from dagster._daemon.sensor import MIN_INTERVAL_LOOP_TIME

    assert 0 < devstack.DEV_QUEUE_WAIT_SECONDS < MIN_INTERVAL_LOOP_TIME
