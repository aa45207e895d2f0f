"""Ingest: the raw files (observed by landing_sensor) → the canonical tables (ingest_job)."""

from dagster import Definitions

from assets.ingest import ingest_files, ingest_job
from assets.raw import raw_files
from sensors.landing import landing_sensor


def ingest_definitions() -> Definitions:
    return Definitions(assets=[raw_files, ingest_files], jobs=[ingest_job], sensors=[landing_sensor])
