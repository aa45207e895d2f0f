"""replay_source: the current source definitions applied again to a source's loaded files, launched from
the launchpad after a mapping fix (the same core as `pipeline replay`: resources/ingest/replay.py).

One op: it loads the files one at a time, oldest first in the source's history, logs each file's counts
and ends with the totals as its output metadata. When something changed, the canonical tables it wrote
are reported as materialized by this run, so their asset pages show the replay.
"""

from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetMaterialization,
    Config,
    Failure,
    MetadataValue,
    OpExecutionContext,
    Output,
    in_process_executor,
    job,
    op,
)
from pydantic import Field

from assets.ingest import ENTITIES, RELATIONSHIPS, TIME_SERIES
from resources.contract import REPLAY_JOB, REPLAY_OP
from resources.dagster_resources import IngestTuningResource, PostgresResource, RawBucketResource
from resources.ingest.replay import (
    FileReplayed,
    ReplayPlan,
    ReplayRefused,
    ReplayTotals,
    parse_since,
    plan_replay,
    replay_files,
)


class ReplayConfig(Config):
    source: str = Field(
        description="The source system whose loaded files are replayed: a defined source's name "
        "(crm, erp, legacy, or one of SOURCE_DEFINITIONS_PATH's)."
    )
    since: str | None = Field(
        default=None,
        description="Only files whose time in the source's history (the export's date, else S3 "
        "LastModified) is at or after this: an ISO date (midnight UTC) or date and time (UTC unless "
        "it says). Empty: every loaded file of the source.",
    )


def _log(context: OpExecutionContext, step: FileReplayed) -> None:
    if step.outcome.error is not None:
        context.log.error(step.describe())
    elif step.outcome.skipped is not None:
        context.log.warning(step.describe())
    else:
        context.log.info(step.describe())


def _materializations(plan: ReplayPlan, totals: ReplayTotals, run_id: str) -> Iterator[AssetMaterialization]:
    counts = totals.counts
    written = {
        ENTITIES: {"inserted": counts.inserted, "updated": counts.updated},
        RELATIONSHIPS: {"links_changed": counts.relationships},
        TIME_SERIES: {"points_changed": counts.time_series},
    }
    for key, changed in written.items():
        if any(changed.values()):
            yield AssetMaterialization(
                asset_key=key,
                description=f"replay of {plan.source} (run {run_id})",
                metadata={**changed, "transformation_version": plan.transformation_version},
            )


@op(
    name=REPLAY_OP,
    description="Loads a source's loaded raw files again with the current source definitions, one at a "
    "time, oldest first in the source's history: each a new attempt (cause 'replay'); only what comes "
    "out different is written.",
    tags={"kind": "ingest"},
)
def replay_source_files(
    context: OpExecutionContext,
    config: ReplayConfig,
    postgres: PostgresResource,
    raw_bucket: RawBucketResource,
    ingest_tuning: IngestTuningResource,
) -> Iterator[Any]:
    since = parse_since(config.since)
    if isinstance(since, ReplayRefused):
        raise Failure(description=since.reason, allow_retries=False)
    totals = ReplayTotals()
    with postgres.connection() as conn:
        plan = plan_replay(conn, config.source, since)
        if isinstance(plan, ReplayRefused):
            raise Failure(description=plan.reason, allow_retries=False)
        context.log.info(
            f"replaying {len(plan.files)} loaded file(s) of {plan.source}"
            + (f" since {since.isoformat()}" if since else "")
            + f" with transformation version {plan.transformation_version}"
        )
        steps = replay_files(
            conn, raw_bucket.s3, raw_bucket.bucket, plan, context.run_id, ingest_tuning.change_time_fields
        )
        for step in steps:
            totals.add(step)
            _log(context, step)
    context.log.info(totals.describe(plan))
    yield from _materializations(plan, totals, context.run_id)
    if totals.failed:
        raise Failure(
            description=f"{totals.failed} of {totals.files} file(s) failed their replay; nothing of them "
            "landed: " + "; ".join(totals.failures)[:2000],
            metadata={"failed_files": MetadataValue.json(totals.failures)},
            allow_retries=False,
        )
    yield Output(
        totals.as_dict(),
        metadata={
            **totals.as_dict(),
            "source": plan.source,
            "since": since.isoformat() if since else "",
            "transformation_version": plan.transformation_version,
        },
    )


@job(
    name=REPLAY_JOB,
    description="Replays a source's loaded raw files with the current source definitions (after a "
    "mapping fix): only the entities whose content changes get a new version.",
    tags={"pipeline/kind": "ingest"},
    # One op: a step subprocess would buy no parallelism (as ingest_job).
    executor_def=in_process_executor,
)
def replay_source_job() -> None:
    replay_source_files()
