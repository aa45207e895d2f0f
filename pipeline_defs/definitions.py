"""The Dagster code location: assets, jobs, sensors and resources, wired from the environment."""

from __future__ import annotations

from dagster import Definitions

from assets.ingest import ingest_files, ingest_job
from resources.dagster_resources import build_resources
from sensors.landing import landing_sensor

defs = Definitions(
    assets=[ingest_files],
    jobs=[ingest_job],
    sensors=[landing_sensor],
    resources=build_resources(),
)
