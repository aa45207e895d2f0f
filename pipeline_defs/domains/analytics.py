"""Analytics: analytics_job (one catalogue operation on request) and the scheduled analytics tables."""

from dagster import Definitions

from assets.analytics_job import analytics_job
from assets.analytics_tables import (
    analytics_daily_schedule,
    analytics_monthly_schedule,
    analytics_table_assets,
)


def analytics_definitions() -> Definitions:
    return Definitions(
        assets=analytics_table_assets,
        jobs=[analytics_job],
        schedules=[analytics_daily_schedule, analytics_monthly_schedule],
    )
