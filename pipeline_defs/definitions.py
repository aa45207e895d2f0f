"""The Dagster code location: each domain's definitions, merged, with the resources the environment gives.

Lineage reads left to right: raw/files (observed by landing_sensor) → canonical/* (ingest_job) →
analytics/* (the daily and monthly schedules); canonical/entities → canonical/golden_entities (after each
ingest, by its automation condition).

`defs` is built when Dagster loads the code location, not when this module is imported: a bad
environment variable or source definition then shows in the UI as a load error naming the variable, instead of a crash of
whatever imported the module.
"""

from functools import cache

from dagster import Definitions, definitions

from pipeline_defs.domains.analytics import analytics_definitions
from pipeline_defs.domains.golden import golden_definitions
from pipeline_defs.domains.ingest import ingest_definitions
from pipeline_defs.domains.job_tracking import job_tracking_definitions
from pipeline_defs.domains.maintenance import maintenance_definitions
from resources.dagster_resources import build_resources
from resources.settings import load_settings
from resources.sources.catalogue import get_sources
from resources.vocabularies.catalogue import get_vocabularies


@definitions
def defs() -> Definitions:
    return _code_location()


# One code location per process, as when it was a module-level object: every caller (the code server, a
# run worker, the tests) shares its resolved repository. A failed load is not cached: the next call retries.
@cache
def _code_location() -> Definitions:
    settings = load_settings()
    # The source definitions, shipped and SOURCE_DEFINITIONS_PATH's: a bad one fails the load here,
    # naming the file, the key and the problem. The vocabularies (VOCABULARY_PATH's too) likewise.
    get_sources()
    get_vocabularies()
    return Definitions.merge(
        ingest_definitions(),
        analytics_definitions(),
        golden_definitions(),
        job_tracking_definitions(),
        maintenance_definitions(settings.dagster_run_retention_days),
        Definitions(resources=build_resources(settings)),
    )
