"""Ingest assets: files registered in `ingest.files` → canonical tables.

One run takes a batch of files chosen by the landing sensor (run config `file_ids`), or, launched by
hand with no file ids ("Materialize" in the UI), whatever is pending. Each file is loaded in its own
transaction; the run materializes the three canonical tables with what changed, checks the result, and
fails (after loading every other file of the batch) when a file failed. A run that finds its files
already loaded (a re-execution, a retry) reports them and ends cleanly.
"""

import time
from collections.abc import Iterator
from typing import Any

import psycopg
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    RetryRequested,
    define_asset_job,
    in_process_executor,
    multi_asset,
)
from pydantic import Field

from assets.raw import OWNERS, RAW_FILES
from assets.schemas import ENTITIES_SCHEMA, RELATIONSHIPS_SCHEMA, TIME_SERIES_SCHEMA
from resources.analytics.info import database_info
from resources.analytics.params import NoParams
from resources.contract import BATCH_TAG, INGEST_JOB, INGEST_OP
from resources.dagster_resources import (
    IngestTuningResource,
    MetricsResource,
    PostgresResource,
    RawBucketResource,
)
from resources.ingest import defaults as ingest_defaults
from resources.ingest.loader import FileLoadResult
from resources.ingest.registry import LOADED_COUNTS, claim_batches, get_files, list_files, newest_loaded
from resources.ingest.runner import FileOutcome, ingest_file
from resources.vocabularies.catalogue import get_vocabularies

ENTITIES = AssetKey(["canonical", "entities"])
RELATIONSHIPS = AssetKey(["canonical", "entity_relationships"])
TIME_SERIES = AssetKey(["canonical", "time_series_data"])

CHECK_REFUSED_SHARE = "refused_share_below_threshold"
CHECK_NEVER_BACK = "no_entity_moved_back_in_source_order"
CHECK_FRESHNESS = "newest_file_within_freshness_bound"
CHECK_REQUIRED_ATTRIBUTES = "required_attributes_present"
CHECK_SCHEMA_DRIFT = "loaded_files_kept_their_source_shape"
CHECK_UNMAPPED = "coded_values_in_vocabularies"
CHECK_NO_HELD_SNAPSHOT = "no_snapshot_held"
# A run launched by hand with no file ids takes at most this many pending files.
MANUAL_RUN_MAX_FILES = 1000


class IngestConfig(Config):
    file_ids: list[int] | None = Field(
        default=None,
        description="ingest.files ids to load, set by landing_sensor (or `pipeline reprocess KEY`). "
        f"Left empty, the run loads whatever is pending (up to {MANUAL_RUN_MAX_FILES} files).",
    )
    max_refused_share: float = Field(
        default=ingest_defaults.MAX_REFUSED_SHARE,
        ge=0,
        le=1,
        description="The blocking check fails when more than this share of the run's records is refused.",
    )
    max_file_age_hours: float | None = Field(
        default=None,
        gt=0,
        description="The freshness check warns when the newest loaded file arrived longer ago than this "
        "(default: INGEST_FRESHNESS_HOURS).",
    )


def _totals(outcomes: list[FileOutcome]) -> FileLoadResult:
    total = FileLoadResult()
    for o in outcomes:
        if o.result is None:
            continue
        for field in LOADED_COUNTS:
            setattr(total, field, getattr(total, field) + getattr(o.result, field))
        total.unmapped.merge(o.result.unmapped)
    return total


def _files_table(outcomes: list[FileOutcome]) -> str:
    lines = [
        "| file | outcome | received | inserted | updated | unchanged | superseded | refused | seconds |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        r = o.result
        outcome = (
            "loaded"
            if r
            else "skipped: " + o.skipped
            if o.skipped
            else "HELD: " + o.held
            if o.held
            else "FAILED: " + (o.error or "")
        )
        if r and o.drift is not None and o.drift.drifted:
            outcome += f" (drift {o.drift.marker()})"
        outcome = outcome.replace("|", "\\|")[:300]
        if r:
            lines.append(
                f"| {o.file.s3_key} | {outcome} | {r.received} | {r.inserted} | {r.updated} | "
                f"{r.unchanged} | {r.superseded} | {r.rejected} | {r.seconds:.2f} |"
            )
        else:
            lines.append(f"| {o.file.s3_key} | {outcome} | | | | | | | |")
    return "\n".join(lines)


def _check_never_back(total: FileLoadResult) -> AssetCheckResult:
    # moved_back is counted by the merge itself (old vs new source position of every replaced row).
    return AssetCheckResult(
        asset_key=ENTITIES,
        check_name=CHECK_NEVER_BACK,
        passed=total.moved_back == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"moved_back": total.moved_back, "superseded": total.superseded, "updated": total.updated},
    )


def _check_freshness(conn: psycopg.Connection, max_age_hours: float) -> AssetCheckResult:
    newest = newest_loaded(conn)
    conn.commit()
    passed = newest.age_hours is not None and newest.age_hours <= max_age_hours
    return AssetCheckResult(
        asset_key=ENTITIES,
        check_name=CHECK_FRESHNESS,
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "newest_file_arrived": str(newest.arrived),
            "max_age_hours": max_age_hours,
            "age_hours": round(newest.age_hours, 2) if newest.age_hours is not None else None,
        },
    )


def _check_required_attributes(conn: psycopg.Connection, run_id: str) -> AssetCheckResult:
    bad = conn.execute(
        """SELECT canonical_id FROM canonical.entities
           WHERE metadata->>'run_id' = %s
             AND (NOT attributes ? 'name' OR btrim(name) = '' OR attributes->>'name' IS DISTINCT FROM name
                  OR canonical_id <> source_system || '_' || (metadata->>'source_id'))
           LIMIT 20""",
        (run_id,),
    ).fetchall()
    return AssetCheckResult(
        asset_key=ENTITIES,
        check_name=CHECK_REQUIRED_ATTRIBUTES,
        passed=not bad,
        metadata={"sample_failing_ids": MetadataValue.json([r[0] for r in bad])},
    )


def _drifted(outcomes: list[FileOutcome]) -> dict[str, dict[str, Any]]:
    """Loaded files whose shape changed against their source's earlier files, by key: their findings."""
    return {
        o.file.s3_key: o.drift.as_json()
        for o in outcomes
        if o.result is not None and o.drift is not None and o.drift.drifted
    }


def _check_schema_drift(outcomes: list[FileOutcome]) -> AssetCheckResult:
    # A warning: a drifted file loaded (its required fields were there); people should look at the source.
    drifted = _drifted(outcomes)
    return AssetCheckResult(
        asset_key=ENTITIES,
        check_name=CHECK_SCHEMA_DRIFT,
        passed=not drifted,
        severity=AssetCheckSeverity.WARN,
        description=(
            "; ".join(f"{key}: {d['summary']}" for key, d in drifted.items())[:2000]
            if drifted
            else "every loaded file kept its source's shape"
        ),
        metadata={
            "drifted_files": len(drifted),
            "findings": MetadataValue.json({k: d["summary"] for k, d in drifted.items()}),
        },
    )


def _check_unmapped(outcomes: list[FileOutcome]) -> AssetCheckResult:
    # A warning, never a failure: unmapped values are kept as they came; the files say which to add to
    # a vocabulary (VOCABULARY_PATH).
    files = {o.file.s3_key: o.result.unmapped.as_json() for o in outcomes if o.result and o.result.unmapped}
    return AssetCheckResult(
        asset_key=ENTITIES,
        check_name=CHECK_UNMAPPED,
        passed=not files,
        severity=AssetCheckSeverity.WARN,
        metadata={"files_with_unmapped_values": len(files), "unmapped": MetadataValue.json(files)},
    )


def _check_no_held_snapshot(conn: psycopg.Connection) -> AssetCheckResult:
    # Every held file, whichever run held it: the check stays failed until someone releases or replaces it.
    held = list_files(conn, status="held", limit=20)
    conn.commit()
    return AssetCheckResult(
        asset_key=ENTITIES,
        check_name=CHECK_NO_HELD_SNAPSHOT,
        passed=not held,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "held_files": MetadataValue.json([{"key": f.s3_key, "reason": f.reason} for f in held]),
            "release_with": "pipeline release KEY",
        },
    )


def _canonical_table(key: AssetKey, description: str, schema: Any) -> AssetSpec:
    """A canonical table the ingest op writes: what the three share, their key, words and columns apart."""
    return AssetSpec(
        key,
        description=description,
        group_name="canonical",
        kinds={"postgres"},
        skippable=True,
        deps=[RAW_FILES],
        owners=OWNERS,
        tags={"layer": "canonical"},
        metadata={"dagster/column_schema": schema, "dagster/table_name": ".".join(key.path)},
    )


@multi_asset(
    name=INGEST_OP,
    description=(
        "Loads a batch of raw files (chosen by landing_sensor from ingest.files) into the canonical "
        "tables: stream-parse, validate and map each record, COPY into staging and merge. One "
        "transaction per file; refused records are kept in ingest.rejected_records with reasons."
    ),
    specs=[
        _canonical_table(
            ENTITIES,
            "Canonical business entities (one row per source record id; versioned, previous versions in "
            "canonical.entity_history).",
            ENTITIES_SCHEMA,
        ),
        _canonical_table(
            RELATIONSHIPS, "Current and past parent links named by source records.", RELATIONSHIPS_SCHEMA
        ),
        _canonical_table(
            TIME_SERIES, "Metric points from records' `metrics`, partitioned by month.", TIME_SERIES_SCHEMA
        ),
    ],
    check_specs=[
        AssetCheckSpec(
            CHECK_REFUSED_SHARE,
            asset=ENTITIES,
            blocking=True,
            description="Share of refused records in this run is at most max_refused_share.",
        ),
        AssetCheckSpec(
            CHECK_NEVER_BACK,
            asset=ENTITIES,
            blocking=True,
            description="No entity written by this run replaced a version newer in source order "
            "(record change time, then the file's export date or LastModified, then "
            "registration order).",
        ),
        AssetCheckSpec(
            CHECK_FRESHNESS,
            asset=ENTITIES,
            description="The newest loaded file arrived within max_file_age_hours.",
        ),
        AssetCheckSpec(
            CHECK_REQUIRED_ATTRIBUTES,
            asset=ENTITIES,
            description="Entities written by this run carry a name and a consistent canonical id.",
        ),
        AssetCheckSpec(
            CHECK_SCHEMA_DRIFT,
            asset=ENTITIES,
            description="No file loaded by this run changed shape against its source's earlier loaded "
            "files (new fields, fields gone missing, changed JSON types); warns naming the files and "
            "findings.",
        ),
        AssetCheckSpec(
            CHECK_UNMAPPED,
            asset=ENTITIES,
            description="Every coded value (industry, country, status, currency) of the files this run "
            "loaded is in its vocabulary; warns, naming the files and values, when one was kept unmapped.",
        ),
        AssetCheckSpec(
            CHECK_NO_HELD_SNAPSHOT,
            asset=ENTITIES,
            description="No snapshot is held for retiring more of its source than "
            "INGEST_SNAPSHOT_MAX_RETIRE_SHARE allows (`pipeline release KEY` applies one).",
        ),
    ],
    op_tags={"kind": "ingest"},
)
def ingest_files(
    context: AssetExecutionContext,
    config: IngestConfig,
    postgres: PostgresResource,
    raw_bucket: RawBucketResource,
    metrics: MetricsResource,
    ingest_tuning: IngestTuningResource,
) -> Iterator[Any]:
    started = time.perf_counter()
    run_id = context.run.run_id
    outcomes: list[FileOutcome] = []
    try:
        with postgres.connection() as conn:
            if config.file_ids is None:
                files = _claim_pending(context, conn)
            else:
                files = get_files(conn, config.file_ids)
                conn.commit()
                missing = set(config.file_ids) - {f.file_id for f in files}
                if missing:
                    context.log.warning(f"file ids not in ingest.files, ignored: {sorted(missing)}")
            for file in files:
                outcome = ingest_file(
                    conn,
                    raw_bucket.s3,
                    raw_bucket.bucket,
                    file,
                    run_id,
                    ingest_tuning.change_time_fields,
                    max_retire_share=ingest_tuning.max_retire_share,
                    drift_required_min_share=ingest_tuning.drift_required_min_share,
                )
                outcomes.append(outcome)
                if outcome.result:
                    r = outcome.result
                    context.log.info(
                        f"{file.s3_key}: {r.received} received, {r.inserted} inserted, {r.updated} updated, "
                        f"{r.unchanged} unchanged, {r.superseded} superseded, {r.rejected} refused, "
                        + (f"{r.retired} retired, " if r.retired else "")
                        + f"{r.duplicates} duplicates in {r.seconds:.2f}s"
                    )
                    if outcome.drift is not None and outcome.drift.drifted:
                        context.log.warning(f"{file.s3_key} drifted: {outcome.drift.summary()}")
                elif outcome.error:
                    context.log.error(f"{file.s3_key} failed, nothing of it landed: {outcome.error}")
                elif outcome.held:
                    context.log.error(f"{file.s3_key} held: {outcome.held}")
                else:
                    context.log.warning(f"{file.s3_key} skipped: {outcome.skipped}")

            loaded = [o for o in outcomes if o.result]
            failed = [o for o in outcomes if o.error]
            refused = sum(o.result.rejected for o in loaded if o.result)
            if refused:
                # The CloudWatch alarm on refused records watches this metric (infra monitoring stack).
                problem = metrics.put_count("RefusedRecords", refused)
                if problem:
                    context.log.warning(problem)
            max_age = config.max_file_age_hours or ingest_tuning.freshness_hours
            if loaded:
                yield from _materialize(context, conn, config, outcomes, started, max_age)
            else:
                # Nothing new landed (every file was already loaded, e.g. a re-execution, or none was
                # pending): no materialization, but the checks still report on the tables as they are.
                context.log.info(
                    "no file loaded by this run: "
                    + (
                        "; ".join(f"{o.file.s3_key}: {o.skipped}" for o in outcomes if o.skipped)
                        or "none pending"
                    )
                )
                yield from _checks(context, conn, config, FileLoadResult(), max_age, outcomes)
    except psycopg.OperationalError as exc:
        # Connection lost or server restarting: worth another try. Files already loaded are
        # 'loaded' and are not claimed again; the one in flight rolled back and is retried.
        raise RetryRequested(max_retries=3, seconds_to_wait=5) from exc

    if failed:
        raise Failure(
            description=f"{len(failed)} of {len(outcomes)} file(s) failed; nothing of them landed: "
            + "; ".join(f"{o.file.s3_key}: {o.error}" for o in failed)[:2000],
            metadata={
                "failed_files": MetadataValue.json(
                    [{"key": o.file.s3_key, "reason": o.error} for o in failed]
                )
            },
            allow_retries=False,
        )


def _claim_pending(context: AssetExecutionContext, conn: psycopg.Connection) -> list[Any]:
    """A run started by hand with no file ids: take the pending files as one batch, tagged like the
    sensor's, so the sensor's lost-batch recovery knows the run that holds them."""
    batches = claim_batches(conn, max_files=MANUAL_RUN_MAX_FILES, max_bytes=1 << 62, max_batches=1)
    conn.commit()
    if not batches:
        return []
    context.instance.add_run_tags(context.run.run_id, {BATCH_TAG: batches[0].batch_id})
    context.log.info(f"no file ids in the config: loading the {len(batches[0].files)} pending file(s)")
    return list(batches[0].files)


def _materialize(
    context: AssetExecutionContext,
    conn: psycopg.Connection,
    config: IngestConfig,
    outcomes: list[FileOutcome],
    started: float,
    max_age_hours: float,
) -> Iterator[Any]:
    total = _totals(outcomes)
    elapsed = time.perf_counter() - started
    drifted = _drifted(outcomes)
    common: dict[str, Any] = {
        "files": MetadataValue.md(_files_table(outcomes)),
        "file_count": len([o for o in outcomes if o.result]),
        "drifted_files": len(drifted),
        "drift": MetadataValue.json(drifted),
    }
    counts = _row_counts(conn)
    yield MaterializeResult(
        asset_key=ENTITIES,
        metadata={
            **common,
            "dagster/row_count": counts["entities"],
            "received": total.received,
            "inserted": total.inserted,
            "updated": total.updated,
            "unchanged": total.unchanged,
            "rejected": total.rejected,
            "duplicates": total.duplicates,
            "superseded": total.superseded,
            "unmapped": MetadataValue.json(total.unmapped.as_json()),
            "vocabularies": MetadataValue.json(get_vocabularies().versions),
            "retired": total.retired,
            "seconds": round(elapsed, 3),
            "records_per_second": round(total.received / elapsed, 1) if elapsed > 0 else 0.0,
        },
    )
    yield MaterializeResult(
        asset_key=RELATIONSHIPS,
        metadata={
            **common,
            "links_changed": total.relationships,
            "dagster/row_count": counts["entity_relationships"],
        },
    )
    yield MaterializeResult(
        asset_key=TIME_SERIES,
        metadata={
            **common,
            "points_changed": total.time_series,
            "dagster/row_count": counts["time_series_data"],
        },
    )
    yield from _checks(context, conn, config, total, max_age_hours, outcomes)


def _row_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Rows per canonical table, counted as database_info counts them: exact below 100,000 rows (or when
    never analyzed), else the planner's estimate, so a run never pays a full count of a large table."""
    table = database_info(conn, NoParams(), max_rows=100)
    conn.commit()
    name, count = table.columns.index("table_name"), table.columns.index("row_count")
    return {row[name]: int(row[count]) for row in table.rows}


def _checks(
    context: AssetExecutionContext,
    conn: psycopg.Connection,
    config: IngestConfig,
    total: FileLoadResult,
    max_age_hours: float,
    outcomes: list[FileOutcome],
) -> Iterator[AssetCheckResult]:
    share = total.rejected / total.received if total.received else 0.0
    yield AssetCheckResult(
        asset_key=ENTITIES,
        check_name=CHECK_REFUSED_SHARE,
        passed=share <= config.max_refused_share,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "refused": total.rejected,
            "received": total.received,
            "refused_share": round(share, 4),
            "max_refused_share": config.max_refused_share,
        },
    )
    yield _check_never_back(total)
    yield _check_freshness(conn, max_age_hours)
    yield _check_required_attributes(conn, context.run.run_id)
    yield _check_schema_drift(outcomes)
    yield _check_unmapped(outcomes)
    conn.commit()
    yield _check_no_held_snapshot(conn)


ingest_job = define_asset_job(
    name=INGEST_JOB,
    selection=[ENTITIES, RELATIONSHIPS, TIME_SERIES],
    description="Loads the raw files named in its config (or, with none, whatever is pending) into the "
    "canonical tables. Launched by landing_sensor.",
    tags={"pipeline/kind": "ingest"},
    # One op per run, so a step subprocess buys no parallelism; it cost a second Python start-up and
    # import of the code location in every run (seconds of a small file's upload-to-queryable time, on
    # a laptop and in every ECS run task alike). RetryRequested retries in process just the same.
    executor_def=in_process_executor,
)
