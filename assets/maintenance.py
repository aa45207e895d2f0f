"""Retention of Dagster's own history: finished runs older than the retention period are deleted (with
their event logs), a bounded number per tick, by a daily schedule. Sensor and schedule ticks are
purged by the instance itself (`retention:` in infra/dagster.yaml); open-source Dagster has no such
setting for runs.
"""

from datetime import UTC, datetime, timedelta

from dagster import (
    Config,
    DagsterRunStatus,
    DefaultScheduleStatus,
    OpExecutionContext,
    RunsFilter,
    ScheduleDefinition,
    job,
    op,
)
from pydantic import Field

FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]


class PurgeConfig(Config):
    older_than_days: int = Field(
        90, ge=1, description="Finished runs created longer ago than this are deleted"
    )
    max_runs: int = Field(
        5000, ge=1, le=100_000, description="At most this many per run (the rest next time)"
    )


@op(
    description="Deletes finished runs (and their event logs) older than the retention period.",
    tags={"kind": "maintenance"},
)
def purge_old_runs(context: OpExecutionContext, config: PurgeConfig) -> int:
    cutoff = datetime.now(UTC) - timedelta(days=config.older_than_days)
    records = context.instance.get_run_records(
        filters=RunsFilter(statuses=FINISHED, created_before=cutoff), limit=config.max_runs
    )
    for record in records:
        context.instance.delete_run(record.dagster_run.run_id)
    context.log.info(f"deleted {len(records)} finished run(s) created before {cutoff.isoformat()}")
    context.add_output_metadata({"deleted": len(records), "cutoff": cutoff.isoformat()})
    return len(records)


@job(
    description="Deletes finished Dagster runs older than the retention period (DAGSTER_RUN_RETENTION_DAYS).",
    tags={"pipeline/kind": "maintenance"},
)
def purge_old_runs_job() -> None:
    purge_old_runs()


def run_retention_schedule(retention_days: int) -> ScheduleDefinition:
    """Daily at 04:30 UTC: delete finished runs older than `retention_days` (the code location passes
    DAGSTER_RUN_RETENTION_DAYS)."""
    return ScheduleDefinition(
        name="run_retention",
        job=purge_old_runs_job,
        cron_schedule="30 4 * * *",
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        run_config={"ops": {"purge_old_runs": {"config": {"older_than_days": retention_days}}}},
        description=f"Daily at 04:30 UTC: deletes finished runs older than {retention_days} days "
        "(DAGSTER_RUN_RETENTION_DAYS).",
    )
