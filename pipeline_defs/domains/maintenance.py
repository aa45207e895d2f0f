"""Maintenance: deleting finished Dagster runs past their retention."""

from dagster import Definitions

from assets.maintenance import purge_old_runs_job, run_retention_schedule


def maintenance_definitions(run_retention_days: int) -> Definitions:
    return Definitions(jobs=[purge_old_runs_job], schedules=[run_retention_schedule(run_retention_days)])
