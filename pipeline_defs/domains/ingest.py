"""Ingest: the raw files (observed by landing_sensor) → the canonical tables (ingest_job); replay_source
loads a source's files again after a mapping fix."""

from dagster import Definitions

from assets.ingest import ingest_files, ingest_job
from assets.raw import raw_files
from assets.replay import replay_source_job
from sensors.landing import landing_sensor


def ingest_definitions() -> Definitions:
    return Definitions(
        assets=[raw_files, ingest_files], jobs=[ingest_job, replay_source_job], sensors=[landing_sensor]
    )
