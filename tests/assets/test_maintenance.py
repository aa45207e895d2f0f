"""Run retention: the daily purge deletes finished runs older than the retention period, never one that
is still going, and the schedule carries the configured period."""

import datetime as dt

from dagster import DagsterRunStatus, build_schedule_context, instance_for_test
from dagster._core.test_utils import create_run_for_test

import assets.maintenance as maintenance
from assets.maintenance import purge_old_runs_job, run_retention_schedule


def test_finished_runs_past_the_retention_period_are_deleted_and_running_ones_kept(monkeypatch):
    with instance_for_test() as instance:
        finished = [
            create_run_for_test(instance, job_name="ingest_job", status=s).run_id
            for s in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
        ]
        running = create_run_for_test(instance, job_name="ingest_job", status=DagsterRunStatus.STARTED).run_id
        config = {"ops": {"purge_old_runs": {"config": {"older_than_days": 30}}}}
        # Today nothing is 30 days old: nothing goes.
        assert (
            purge_old_runs_job.execute_in_process(run_config=config, instance=instance).output_for_node(
                "purge_old_runs"
            )
            == 0
        )

        class Later(dt.datetime):
            @classmethod
            def now(cls, tz=None):
                return dt.datetime.now(tz) + dt.timedelta(days=31)

        monkeypatch.setattr(maintenance, "datetime", Later)
        result = purge_old_runs_job.execute_in_process(run_config=config, instance=instance)
        # The three, and the first purge run (finished too); the purge that is running stays.
        assert result.output_for_node("purge_old_runs") == 4
        assert instance.get_run_by_id(result.run_id) is not None
        for run_id in finished:
            assert instance.get_run_by_id(run_id) is None
        assert instance.get_run_by_id(running) is not None


def test_the_schedule_runs_daily_with_the_configured_period():
    schedule = run_retention_schedule(45)
    with instance_for_test() as instance:
        data = schedule.evaluate_tick(
            build_schedule_context(
                instance=instance, scheduled_execution_time=dt.datetime(2026, 3, 4, 4, 30, tzinfo=dt.UTC)
            )
        )
    [request] = data.run_requests
    assert request.run_config["ops"]["purge_old_runs"]["config"]["older_than_days"] == 45
    assert schedule.cron_schedule == "30 4 * * *" and schedule.execution_timezone == "UTC"
