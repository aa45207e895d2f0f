"""A stack that restarts cleanly: what a previous stack left in progress is ended when the next one
starts, and cleaning up interrupts before it kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterRunStatus
from dagster._core.test_utils import create_run_for_test, instance_for_test

from pipeline_defs.devstack.dagster_process import DAGSTER_YAML
from pipeline_defs.devstack.processes import group_alive, stop_group
from pipeline_defs.devstack.recovery import MESSAGE, recover
from resources.ingest.registry import FileObject, register_files, start_loading
from resources.settings import PROJECT_ROOT
from tests.support.ingest import q

# A group leader that starts a child in its group and exits at once, as `dagster dev` leaves a run worker
# behind when its daemon dies. The child notes each signal it gets, then exits on SIGINT.
LEADER = textwrap.dedent("""
    import subprocess, sys
    subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]])
""")
WORKER = textwrap.dedent("""
    import signal, sys, time
    out = open(sys.argv[1], "a")
    def note(signum, frame):
        out.write(signal.Signals(signum).name + "\\n"); out.flush()
        sys.exit(0)
    signal.signal(signal.SIGINT, note)
    out.write("started\\n"); out.flush()
    while True:
        time.sleep(0.1)
""")


def test_cleaning_up_interrupts_a_dead_leaders_leftover_workers_before_it_kills(tmp_path: Path):
    notes = tmp_path / "worker.log"
    leader = subprocess.Popen([sys.executable, "-c", LEADER, WORKER, str(notes)], start_new_session=True)
    leader.wait(30)
    deadline = time.monotonic() + 30
    while "started" not in (notes.read_text() if notes.exists() else ""):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert group_alive(leader.pid)
    stop_group(leader, signal.SIGINT, timeout=20)
    assert notes.read_text().split() == ["started", "SIGINT"]
    assert not group_alive(leader.pid)


@pytest.mark.integration
def test_the_next_start_ends_runs_left_in_progress_and_fails_files_whose_loader_is_gone(pg, db, tmp_path):
    pg.server.ensure_database("dagster_recovery")
    dagster_url = pg.server.url("dagster_recovery")
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    overrides = {"storage": {"postgres": {"postgres_url": dagster_url}}, "telemetry": {"enabled": False}}
    (tmp_path / "t").mkdir()
    (tmp_path / "t2").mkdir()
    with instance_for_test(overrides=overrides, temp_dir=str(tmp_path / "t")) as instance:
        started = create_run_for_test(instance, job_name="ingest_job", status=DagsterRunStatus.STARTED)
        starting = create_run_for_test(instance, job_name="analytics_job", status=DagsterRunStatus.STARTING)
        done = create_run_for_test(instance, job_name="ingest_job", status=DagsterRunStatus.SUCCESS)
        queued = create_run_for_test(instance, job_name="ingest_job", status=DagsterRunStatus.NOT_STARTED)
    with psycopg.connect(db.writer_url) as conn:
        [row] = register_files(conn, [FileObject("crm-data/left.json", "e1", 10)], via="test")
    dead = psycopg.connect(db.writer_url)
    assert start_loading(dead, row.file_id, started.run_id) is None
    dead.close()  # the stack died under it

    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DATABASE_URL": dagster_url}
    found = recover(dagster_url, db.writer_url, env, PROJECT_ROOT)
    assert sorted(r["run_id"] for r in found.runs) == sorted([started.run_id, starting.run_id])
    assert found.files == ["crm-data/left.json"]
    assert any("2 run(s)" in line for line in found.lines())
    with instance_for_test(overrides=overrides, temp_dir=str(tmp_path / "t2")) as instance:
        status = {
            r: instance.get_run_by_id(r).status
            for r in (started.run_id, starting.run_id, done.run_id, queued.run_id)
        }
        failure = instance.get_records_for_run(started.run_id, ascending=False).records[0]
    assert status == {
        started.run_id: DagsterRunStatus.FAILURE,
        starting.run_id: DagsterRunStatus.FAILURE,
        done.run_id: DagsterRunStatus.SUCCESS,
        queued.run_id: DagsterRunStatus.NOT_STARTED,
    }
    assert MESSAGE in (failure.event_log_entry.dagster_event.message or "")
    assert q(db.owner_url, "SELECT status, failure_kind FROM ingest.files") == [("failed", "infrastructure")]
    # A second start finds nothing more to do.
    again = recover(dagster_url, db.writer_url, env, PROJECT_ROOT)
    assert again.runs == [] and again.files == [] and again.lines() == []
