"""Golden entities: canonical records resolved into real-world companies (the matching engine, then the
golden store).

One run reads canonical.entities in one streaming query, resolves it with the matching engine
(resources/resolution) and writes the clustering through the golden store (resources/golden), which
keeps golden ids stable, applies steward decisions and rebuilds the records whose members changed.

Modes: `full` scores every blocked pair; `incremental` scores only the pairs touching the records written
since the last resolution, against the whole store, and builds the clusters from those plus the pairs the
store kept (golden.pairs): the same clusters a full run would give. `auto` (what the automation runs)
takes incremental when the active model scored the last run, else full. A new model (`retrain`, or the
shipped default activated when none is active yet) always scores in full: every pair's weight changes with it.

The asset runs after every ingest run that changed canonical.entities (an eager automation condition),
on its own connection, never inside an ingest transaction.
"""

import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import psycopg
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AutomationCondition,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    define_asset_job,
    in_process_executor,
)
from pydantic import Field

from assets.ingest import ENTITIES
from assets.raw import OWNERS
from resources.dagster_resources import PostgresResource
from resources.golden.run import (
    NotResolved,
    RunMode,
    choose_mode,
    resolve_store,
)
from resources.golden.store import active_model
from resources.resolution.config import ConfigError, ResolutionConfig, load_config

if TYPE_CHECKING:
    # The engine pulls in pandas, pyarrow, DuckDB and Splink: imported when a run resolves, not when the
    # code location loads.
    from resources.resolution.model import MatchModel

# The run itself lives in resources/golden/run.py (dagster-free, also what the benchmark times).
__all__ = [
    "GOLDEN_ENTITIES",
    "GOLDEN_JOB",
    "GoldenConfig",
    "golden_entities",
    "golden_entities_job",
]

GOLDEN_ENTITIES = AssetKey(["canonical", "golden_entities"])
GOLDEN_JOB = "golden_entities_job"

CHECK_EXCLUSIVE_SOURCE = "no_golden_entity_holds_two_records_of_a_source_without_duplicates"
CHECK_ONE_MEMBERSHIP = "every_canonical_entity_in_exactly_one_golden_entity"
CHECK_REVIEW_GROWTH = "review_queue_growth_within_bound"


class GoldenConfig(Config):
    mode: Literal["auto", "full", "incremental"] = Field(
        default="auto",
        description="auto: incremental when the active model scored the last resolution, else full. "
        "incremental: score only the records written since the last resolution, against the whole store.",
    )
    retrain: bool = Field(
        default=False,
        description="Train a new model on the store and activate it (a full run). Otherwise score with the "
        "active model, or, when none is active yet, the shipped one (trained on the labelled company "
        "generator).",
    )
    config_path: str = Field(
        default="",
        description="A JSON file overriding the matcher's defaults (resources/resolution/config.py); "
        "empty: the defaults.",
    )
    prepared_store_path: str = Field(
        default="",
        description="The file an incremental run starts from instead of reading and preparing the whole "
        "store (normalised records, their blocking keys, word counts; written by every run, refused and "
        "written again when stale). Empty: golden/prepared_store.duckdb under the Dagster instance's "
        "storage directory; 'off': none, every run reads the whole store.",
    )
    max_review_growth_share: float = Field(
        default=0.5,
        ge=0,
        description="The review-queue check warns when the queue grew by more than this share of its "
        "previous length since the previous materialization.",
    )


# --- metadata ----------------------------------------------------------------------------------------


def weight_histogram(weights: Iterable[float], width: float = 5.0) -> str:
    """Scored pairs per match-weight band, as a markdown table."""
    bands = Counter(int(w // width) for w in weights)
    lines = ["| match weight | pairs |", "|---|---:|"]
    for b in sorted(bands):
        lines.append(f"| [{b * width:g}, {(b + 1) * width:g}) | {bands[b]} |")
    return "\n".join(lines) if bands else "no scored pairs"


def model_table(model: "MatchModel") -> str:
    from resources.resolution.model import match_weights

    lines = ["| comparison | level | m | u | match weight |", "|---|---|---:|---:|---:|"]
    for w in match_weights(model):

        def fmt(x: float | None, digits: int = 4) -> str:
            return "" if x is None else f"{x:.{digits}g}"

        lines.append(
            f"| {w.comparison} | {w.level} | {fmt(w.m_probability)} | {fmt(w.u_probability)} | "
            f"{fmt(w.match_weight, 3)} |"
        )
    return "\n".join(lines)


def membership_stats(conn: psycopg.Connection[Any]) -> dict[str, int]:
    row = conn.execute(
        """SELECT count(*), count(*) FILTER (WHERE n > 1), coalesce(max(n), 0)
           FROM (SELECT count(*) AS n FROM golden.members GROUP BY golden_id) s"""
    ).fetchone()
    review = conn.execute("SELECT count(*) FROM golden.review_queue").fetchone()
    conn.commit()
    assert row is not None and review is not None
    return {
        "golden_entities": int(row[0]),
        "multi_member_entities": int(row[1]),
        "largest_entity": int(row[2]),
        "review_queue": int(review[0]),
    }


def size_distribution(conn: psycopg.Connection[Any]) -> str:
    rows = conn.execute(
        """SELECT n, count(*) FROM (SELECT count(*) AS n FROM golden.members GROUP BY golden_id) s
           GROUP BY n ORDER BY n"""
    ).fetchall()
    conn.commit()
    return "\n".join(["| members | golden entities |", "|---:|---:|", *(f"| {n} | {c} |" for n, c in rows)])


# --- checks ------------------------------------------------------------------------------------------


def check_exclusive_sources(conn: psycopg.Connection[Any], config: ResolutionConfig) -> AssetCheckResult:
    """Two records of a source that does not duplicate itself share a golden entity only when a steward
    said they are the same, or the model scored them at or above the same-source threshold."""
    exclusive = [s for s in ("crm", "erp", "legacy") if not config.deduplicates_itself(s)]
    exclusive += [s for s, v in config.sources.items() if not v.deduplicates_itself and s not in exclusive]
    from resources.resolution.model import MatchModel, prior_weight

    model = active_model(conn)
    prior = prior_weight(MatchModel.from_settings(model.parameters)) if model else 0.0
    rows = conn.execute(
        """SELECT a.golden_id, a.canonical_id, b.canonical_id
           FROM golden.members a
           JOIN golden.members b ON b.golden_id = a.golden_id AND a.canonical_id < b.canonical_id COLLATE "C"
           JOIN canonical.entities ea ON ea.canonical_id = a.canonical_id
           JOIN canonical.entities eb ON eb.canonical_id = b.canonical_id
           WHERE ea.source_system = eb.source_system AND ea.source_system = ANY(%s)
             AND NOT EXISTS (SELECT 1 FROM golden.decisions d
                             WHERE d.kind = 'same' AND d.canonical_id_l = a.canonical_id
                               AND d.canonical_id_r = b.canonical_id)
             AND NOT EXISTS (SELECT 1 FROM golden.pairs p
                             WHERE p.canonical_id_l = a.canonical_id AND p.canonical_id_r = b.canonical_id
                               AND p.match_weight - %s >= %s)
           LIMIT 20""",
        (exclusive, prior, config.thresholds.same_source_link),
    ).fetchall()
    conn.commit()
    return AssetCheckResult(
        asset_key=GOLDEN_ENTITIES,
        check_name=CHECK_EXCLUSIVE_SOURCE,
        passed=not rows,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "sources_without_duplicates": MetadataValue.json(exclusive),
            "sample_offending_pairs": MetadataValue.json([list(r) for r in rows]),
        },
    )


def check_one_membership(conn: psycopg.Connection[Any]) -> AssetCheckResult:
    row = conn.execute(
        """SELECT (SELECT count(*) FROM canonical.entities),
                  (SELECT count(*) FROM golden.members),
                  (SELECT count(*) FROM canonical.entities e
                   WHERE NOT EXISTS (SELECT 1 FROM golden.members m WHERE m.canonical_id = e.canonical_id)),
                  (SELECT count(*) FROM golden.members m
                   WHERE NOT EXISTS (SELECT 1 FROM canonical.entities e WHERE e.canonical_id = m.canonical_id)),
                  (SELECT count(*) FROM golden.members m
                   WHERE NOT EXISTS (SELECT 1 FROM golden.entities g
                                     WHERE g.golden_id = m.golden_id AND g.status = 'active'))"""
    ).fetchone()
    conn.commit()
    assert row is not None
    entities, members, unresolved, orphaned, in_retired = (int(x) for x in row)
    # golden.members' primary key is the canonical id: no record can be in two golden entities.
    return AssetCheckResult(
        asset_key=GOLDEN_ENTITIES,
        check_name=CHECK_ONE_MEMBERSHIP,
        passed=unresolved == 0 and orphaned == 0 and in_retired == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "canonical_entities": entities,
            "golden_members": members,
            "not_resolved": unresolved,
            "members_without_canonical_entity": orphaned,
            "members_of_a_retired_id": in_retired,
        },
    )


def check_review_growth(previous: int | None, current: int, max_share: float) -> AssetCheckResult:
    grown = current - (previous or 0)
    share = grown / previous if previous else (0.0 if current == 0 else float("inf"))
    # The first resolution fills the queue from nothing: there is no previous length to grow from.
    passed = previous is None or share <= max_share
    return AssetCheckResult(
        asset_key=GOLDEN_ENTITIES,
        check_name=CHECK_REVIEW_GROWTH,
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "review_queue": current,
            "previous_review_queue": previous if previous is not None else "none",
            "growth": grown,
            "growth_share": round(share, 4) if share != float("inf") else "inf",
            "max_review_growth_share": max_share,
        },
    )


def _previous_review_queue(context: AssetExecutionContext) -> int | None:
    event = context.instance.get_latest_materialization_event(GOLDEN_ENTITIES)
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get("review_queue")
    return int(value.value) if value is not None and isinstance(value.value, int | float) else None


# --- the asset ---------------------------------------------------------------------------------------


def _choose_mode(
    config: GoldenConfig, model_version: str | None, last_run: tuple[Any, ...] | None
) -> RunMode | str:
    """The run's mode, or why the asked one cannot run (a string)."""
    return choose_mode(config.mode, config.retrain, model_version, last_run)


def _prepared_store(context: AssetExecutionContext, config: GoldenConfig) -> Path | None:
    if config.prepared_store_path == "off":
        return None
    if config.prepared_store_path:
        return Path(config.prepared_store_path)
    root = Path(context.instance.storage_directory()) / "golden"
    root.mkdir(parents=True, exist_ok=True)
    return root / "prepared_store.duckdb"


def _load_config(path: str) -> ResolutionConfig:
    try:
        return load_config(path or None)
    except ConfigError as e:
        raise Failure(description=f"resolution config: {e}", allow_retries=False) from e


@asset(
    key=GOLDEN_ENTITIES,
    deps=[ENTITIES],
    group_name="canonical",
    kinds={"postgres", "duckdb"},
    owners=OWNERS,
    tags={"layer": "golden"},
    description="Golden entities: canonical records resolved into companies (Splink on DuckDB), with stable "
    "golden ids, survivorship records, history and the review queue in schema golden. Runs after ingest "
    "(incremental), or in full / with a new model from golden_entities_job.",
    automation_condition=AutomationCondition.eager(),
    check_specs=[
        AssetCheckSpec(
            CHECK_EXCLUSIVE_SOURCE,
            asset=GOLDEN_ENTITIES,
            description="No golden entity holds two records of a source configured as not duplicating "
            "itself, unless a steward said they are the same or the model scored them past the "
            "same-source threshold.",
        ),
        AssetCheckSpec(
            CHECK_ONE_MEMBERSHIP,
            asset=GOLDEN_ENTITIES,
            description="Every canonical entity is a member of exactly one active golden entity.",
        ),
        AssetCheckSpec(
            CHECK_REVIEW_GROWTH,
            asset=GOLDEN_ENTITIES,
            description="The review queue grew by at most max_review_growth_share since the previous run.",
        ),
    ],
    op_tags={"kind": "golden"},
)
def golden_entities(
    context: AssetExecutionContext, config: GoldenConfig, postgres: PostgresResource
) -> Iterator[Any]:
    started = time.perf_counter()
    settings = _load_config(config.config_path)
    with postgres.connection() as conn:
        done = resolve_store(
            conn,
            settings,
            run_id=f"{context.run.run_id}:{uuid.uuid4().hex[:8]}",
            mode=config.mode,
            retrain=config.retrain,
            log=context.log.info,
            prepared_store=_prepared_store(context, config),
        )
        if isinstance(done, NotResolved):
            metadata_of_failure: dict[str, Any] = {}
            if done.model is not None:
                metadata_of_failure["reasons"] = MetadataValue.json(list(done.reasons))
                metadata_of_failure["match_weights"] = MetadataValue.md(model_table(done.model))
            if done.entities:
                metadata_of_failure["entities"] = done.entities
            raise Failure(description=done.reason, metadata=metadata_of_failure, allow_retries=False)
        out, summary, run_mode = done.resolution, done.summary, done.mode
        stats = membership_stats(conn)
        sizes = size_distribution(conn)
        previous_review = _previous_review_queue(context)

        metadata: dict[str, Any] = {
            "mode": run_mode,
            "model_version": done.model_version,
            "model_trained": done.trained,
            "entities": done.entities,
            "entities_scored": done.entities_scored,
            "prepared_store": done.prepared_store,
            "entities_written": summary.entities,
            "clusters": stats["golden_entities"],
            "multi_member_entities": stats["multi_member_entities"],
            "largest_entity": stats["largest_entity"],
            "cluster_sizes": MetadataValue.md(sizes),
            "ids_created": summary.ids_created,
            "ids_retired": summary.ids_retired,
            "members_moved": summary.members_moved,
            "records_written": summary.records_written,
            "pairs_scored": len(out.pairs),
            "review_queue": stats["review_queue"],
            "match_weights": MetadataValue.md(weight_histogram(out.pairs["match_weight"].tolist())),
            # The active model's weights on every run, not only when it was trained: what scored them.
            "model": MetadataValue.md(model_table(done.model)),
            "timings": MetadataValue.md(
                "| phase | seconds |\n|---|---:|\n"
                + "\n".join(f"| {k} | {v:.3f} |" for k, v in done.timings.items())
            ),
            "seconds": round(time.perf_counter() - started, 3),
            "dagster/row_count": stats["golden_entities"],
        }
        if out.conflicts or summary.conflicts:
            metadata["steward_conflicts"] = MetadataValue.json(
                [*out.conflicts, *(f"{c.canonical_id_l} / {c.canonical_id_r}" for c in summary.conflicts)]
            )
        if out.model_check.problems:
            context.log.warning("active model check: " + "; ".join(out.model_check.problems))
        context.log.info(
            f"{run_mode}: {stats['golden_entities']} golden entities, {summary.ids_created} created, "
            f"{summary.ids_retired} retired, {summary.members_moved} moved, review queue "
            f"{stats['review_queue']}"
        )
        yield MaterializeResult(asset_key=GOLDEN_ENTITIES, metadata=metadata)
        yield check_exclusive_sources(conn, settings)
        yield check_one_membership(conn)
        yield check_review_growth(previous_review, stats["review_queue"], config.max_review_growth_share)


golden_entities_job = define_asset_job(
    name=GOLDEN_JOB,
    selection=[GOLDEN_ENTITIES],
    description="Resolves canonical.entities into golden entities. Launch with config mode full, or "
    "retrain true to train and activate a new model; the automation runs it incremental after ingest.",
    tags={"pipeline/kind": "golden"},
    # One op per run: a step subprocess would only add an import of the code location.
    executor_def=in_process_executor,
)
