"""The Dagster code location: assets, jobs, schedules, sensors and resources, wired from the environment.

Lineage reads left to right: raw/files (observed by landing_sensor) → canonical/* (ingest_job) →
analytics/* (the daily and monthly schedules).
"""

from dagster import Definitions

from assets.analytics_job import analytics_job
from assets.analytics_tables import (
    analytics_daily_schedule,
    analytics_monthly_schedule,
    analytics_table_assets,
)
from assets.ingest import ingest_files, ingest_job
from assets.maintenance import purge_old_runs_job, run_retention_schedule
from assets.raw import raw_files
from resources.dagster_resources import build_resources
from resources.settings import get_settings
from sensors.job_status import (
    job_canceled_mirror,
    job_failed_mirror,
    job_started_mirror,
    job_status_reconciler,
    job_succeeded_mirror,
)
from sensors.landing import landing_sensor

defs = Definitions(
    assets=[raw_files, ingest_files, *analytics_table_assets],
    jobs=[ingest_job, analytics_job, purge_old_runs_job],
    schedules=[analytics_daily_schedule, analytics_monthly_schedule,
               run_retention_schedule(get_settings().dagster_run_retention_days)],
    sensors=[landing_sensor, job_started_mirror, job_succeeded_mirror, job_failed_mirror, job_canceled_mirror,
             job_status_reconciler],
    resources=build_resources(),
)
