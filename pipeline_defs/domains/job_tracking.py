"""Job tracking: the sensors that mirror run status into the jobs table and send the notices."""

from dagster import Definitions

from sensors.job_status import (
    job_canceled_mirror,
    job_failed_mirror,
    job_started_mirror,
    job_status_reconciler,
    job_succeeded_mirror,
)


def job_tracking_definitions() -> Definitions:
    return Definitions(
        sensors=[
            job_started_mirror,
            job_succeeded_mirror,
            job_failed_mirror,
            job_canceled_mirror,
            job_status_reconciler,
        ]
    )
