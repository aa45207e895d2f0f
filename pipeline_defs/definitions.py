"""The Dagster code location: assets, jobs, sensors and resources, wired from the environment."""

from dagster import Definitions

from assets.analytics import analytics_job
from assets.ingest import ingest_files, ingest_job
from resources.dagster_resources import build_resources
from sensors.job_status import (
    job_canceled_mirror,
    job_failed_mirror,
    job_started_mirror,
    job_status_reconciler,
    job_succeeded_mirror,
)
from sensors.landing import landing_sensor

defs = Definitions(
    assets=[ingest_files],
    jobs=[ingest_job, analytics_job],
    sensors=[landing_sensor, job_started_mirror, job_succeeded_mirror, job_failed_mirror, job_canceled_mirror,
             job_status_reconciler],
    resources=build_resources(),
)
