"""Golden entities: canonical records resolved into companies after each ingest (eager automation), and
golden_entities_job to run it full or with a new model from the UI."""

from dagster import AutomationConditionSensorDefinition, DefaultSensorStatus, Definitions

from assets.golden import GOLDEN_ENTITIES, golden_entities, golden_entities_job

# Evaluates the golden asset's eager condition. Its own sensor, running by default: Dagster's default
# automation sensor starts stopped, and resolution must follow ingest without anyone switching it on.
golden_automation = AutomationConditionSensorDefinition(
    "golden_automation",
    target=[GOLDEN_ENTITIES],
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Requests canonical/golden_entities once an ingest run changed canonical/entities "
    "(its eager automation condition), one run at a time.",
)


def golden_definitions() -> Definitions:
    return Definitions(assets=[golden_entities], jobs=[golden_entities_job], sensors=[golden_automation])
