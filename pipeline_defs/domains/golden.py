"""Golden entities: canonical records resolved into companies after each ingest (eager automation), and
golden_entities_job to run it full or with a new model from the UI."""

from dagster import Definitions

from assets.golden import golden_entities, golden_entities_job


def golden_definitions() -> Definitions:
    return Definitions(assets=[golden_entities], jobs=[golden_entities_job])
