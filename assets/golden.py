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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
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
from psycopg.rows import dict_row
from pydantic import Field

from assets.ingest import ENTITIES
from assets.raw import OWNERS
from resources.dagster_resources import PostgresResource
from resources.golden.store import (
    RunSummary,
    ScoredPair,
    active_model,
    save_model,
    source_priorities,
    steward_constraints,
    write_resolution,
)
from resources.resolution.config import ConfigError, ResolutionConfig, load_config

if TYPE_CHECKING:
    # The engine pulls in pandas, pyarrow, DuckDB and Splink: imported when a run resolves, not when the
    # code location loads.
    import pandas as pd

    from resources.resolution.clusters import Decision
    from resources.resolution.model import MatchModel
    from resources.resolution.resolve import ModelRefused, Resolution

GOLDEN_ENTITIES = AssetKey(["canonical", "golden_entities"])
GOLDEN_JOB = "golden_entities_job"

CHECK_EXCLUSIVE_SOURCE = "no_golden_entity_holds_two_records_of_a_source_without_duplicates"
CHECK_ONE_MEMBERSHIP = "every_canonical_entity_in_exactly_one_golden_entity"
CHECK_REVIEW_GROWTH = "review_queue_growth_within_bound"

RunMode = Literal["full", "incremental"]


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
    max_review_growth_share: float = Field(
        default=0.5,
        ge=0,
        description="The review-queue check warns when the queue grew by more than this share of its "
        "previous length since the previous materialization.",
    )


# --- reading the store -------------------------------------------------------------------------------

ENTITY_COLUMNS = "e.canonical_id, e.source_system, e.name, e.industry, e.revenue, e.employees, e.attributes"

# The oldest transaction still open in this database (ours aside): rows it writes carry updated_at =
# its start (now()), possibly before our read, yet are not in our snapshot. The next incremental run must
# take them, so the read's watermark is never later than that start. Another role's sessions show no
# xact_start without pg_read_all_stats; ingest writes as this same role.
WATERMARK = """SELECT least(now(), (SELECT min(xact_start) FROM pg_stat_activity
                                   WHERE datname = current_database() AND pid <> pg_backend_pid()
                                     AND xact_start IS NOT NULL))"""

# The last resolution that finished: its started_at is the watermark its read was taken at.
LAST_RUN = """SELECT run_id, mode, model_version, started_at FROM golden.runs
              WHERE finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT 1"""

CURRENT_PARENTS = """SELECT DISTINCT child_canonical_id, parent_canonical_id FROM canonical.entity_relationships
                     WHERE effective_to IS NULL"""

# Prior pairs, for clustering an incremental run as a full run would (resolve's prior_pairs).
STORED_PAIRS = """SELECT canonical_id_l, canonical_id_r, match_weight, match_probability, comparisons
                  FROM golden.pairs"""


@dataclass(frozen=True)
class StoreRead:
    frame: "pd.DataFrame"
    delta: frozenset[str]  # written since the watermark, or never resolved
    watermark: datetime
    parents: list[tuple[str, str]]
    seconds: float


def read_store(conn: psycopg.Connection[Any], since: datetime | None) -> StoreRead:
    """Every canonical entity (one streaming query on a server-side cursor) and those written at or after
    `since`, named by a steward decision since then, or not yet a golden member, in one snapshot with the watermark the next run starts from."""
    from resources.resolution.inputs import frame_from_rows

    t = time.perf_counter()
    delta: set[str] = set()

    def rows(cur: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in cur:
            if row["in_delta"]:
                delta.add(row["canonical_id"])
            yield row

    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
    watermark = conn.execute(WATERMARK).fetchone()[0]  # type: ignore[index]
    with conn.cursor(name="golden_read_entities", row_factory=dict_row) as cur:
        cur.itersize = 20_000
        # A steward decision changes no canonical row, yet its records must be resolved again for
        # the store to apply it: they join the delta too.
        cur.execute(
            f"""WITH decided AS (
                    SELECT DISTINCT unnest(array[d.canonical_id_l, d.canonical_id_r] || d.apart_from) AS canonical_id
                    FROM golden.decisions d WHERE d.decided_at >= %(since)s)
                SELECT {ENTITY_COLUMNS},
                       (m.canonical_id IS NULL OR (%(since)s::timestamptz IS NOT NULL
                                                   AND (e.updated_at >= %(since)s
                                                        OR e.canonical_id IN (SELECT canonical_id FROM decided))))
                       AS in_delta
                FROM canonical.entities e LEFT JOIN golden.members m USING (canonical_id)""",
            {"since": since},
        )
        frame = frame_from_rows(rows(cur))
    parents = [(str(c), str(p)) for c, p in conn.execute(CURRENT_PARENTS).fetchall()]
    conn.commit()
    return StoreRead(frame, frozenset(delta), watermark, parents, time.perf_counter() - t)


def stored_pairs(conn: psycopg.Connection[Any], model: "MatchModel") -> "pd.DataFrame":
    """golden.pairs as the engine's pairs. The evidence weight is the match weight less the model's
    prior, as the engine computed it (the same double arithmetic, so the same thresholds decide)."""
    import pandas as pd

    from resources.resolution.model import prior_weight
    from resources.resolution.resolve import PAIR_COLUMNS

    prior = prior_weight(model)
    rows = conn.execute(STORED_PAIRS).fetchall()
    conn.commit()
    frame = pd.DataFrame(
        [
            {
                "canonical_id_l": left,
                "canonical_id_r": right,
                "evidence_weight": weight - prior,
                "match_weight": weight,
                "match_probability": probability,
                **{f"w_{k}": v for k, v in (comparisons or {}).items()},
            }
            for left, right, weight, probability, comparisons in rows
        ],
        columns=None if rows else list(PAIR_COLUMNS),
    )
    return frame


# --- what the store is given -------------------------------------------------------------------------


def incremental_scope(
    clusters: Mapping[str, str], previous: Mapping[str, str], delta: Iterable[str]
) -> set[str]:
    """The records an incremental write must carry: the delta, closed over the new clusters and the
    previous golden entities of whatever it holds. The store keeps the previous grouping of any member it
    is not given; closed this way, every golden entity the delta touched, and every cluster that took
    part of one, is given whole, so the result is the full run's."""
    by_cluster: dict[str, list[str]] = {}
    for cid, key in clusters.items():
        by_cluster.setdefault(key, []).append(cid)
    by_golden: dict[str, list[str]] = {}
    for cid, gid in previous.items():
        by_golden.setdefault(gid, []).append(cid)
    scope: set[str] = set()
    todo = [c for c in delta if c in clusters]
    seen_clusters: set[str] = set()
    seen_golden: set[str] = set()
    while todo:
        cid = todo.pop()
        if cid in scope:
            continue
        scope.add(cid)
        key = clusters[cid]
        if key not in seen_clusters:
            seen_clusters.add(key)
            todo.extend(by_cluster[key])
        golden = previous.get(cid)
        if golden is not None and golden not in seen_golden:
            seen_golden.add(golden)
            todo.extend(c for c in by_golden[golden] if c in clusters)
    return scope


def scored_pairs(frame: "pd.DataFrame") -> list[ScoredPair]:
    import pandas as pd

    weights = [c for c in frame.columns if c.startswith("w_")]
    out: list[ScoredPair] = []
    for row in frame.itertuples(index=False):
        r = row._asdict()
        out.append(
            ScoredPair(
                str(r["canonical_id_l"]),
                str(r["canonical_id_r"]),
                float(r["match_weight"]),
                float(r["match_probability"]),
                {c[2:]: float(r[c]) for c in weights if pd.notna(r[c])},
            )
        )
    return out


def _touching(frame: "pd.DataFrame", ids: set[str]) -> "pd.Series":
    return frame["canonical_id_l"].isin(ids) | frame["canonical_id_r"].isin(ids)


def engine_decisions(conn: psycopg.Connection[Any]) -> list["Decision"]:
    from resources.resolution.clusters import Decision

    must, cannot = steward_constraints(conn).pairs()
    conn.commit()
    return [Decision(a, b, "must_link") for a, b in must] + [Decision(a, b, "cannot_link") for a, b in cannot]


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
    scored_by_active = last_run is not None and model_version is not None and last_run[2] == model_version
    if config.retrain or model_version is None:
        if config.mode == "incremental":
            return (
                "an incremental run scores with the active model; "
                + ("retrain scores every pair again" if config.retrain else "no model is active yet")
                + ": run it with mode full (or auto)"
            )
        return "full"
    if config.mode == "auto":
        return "incremental" if scored_by_active else "full"
    if config.mode == "incremental" and not scored_by_active:
        return (
            "an incremental run needs a previous resolution scored by the active model "
            "(its pairs are the ones the new records join): run it full"
        )
    return config.mode


def _load_config(path: str) -> ResolutionConfig:
    try:
        return load_config(path or None)
    except ConfigError as e:
        raise Failure(description=f"resolution config: {e}", allow_retries=False) from e


def _resolve(frame: "pd.DataFrame", config: ResolutionConfig, **kw: Any) -> "Resolution | ModelRefused":
    from splink.internals.exceptions import EMTrainingException

    from resources.resolution.resolve import resolve

    try:
        return resolve(frame, config, **kw)
    except EMTrainingException as e:
        # Too few comparable pairs to train on (a store of a few dozen records): a value to report,
        # not a crash; a model trained elsewhere can be activated instead.
        raise Failure(
            description=f"training failed: {str(e).splitlines()[0]}",
            metadata={"entities": len(frame)},
            allow_retries=False,
        ) from e


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
    from resources.resolution.model import MatchModel, shipped_model
    from resources.resolution.resolve import ModelRefused

    started = time.perf_counter()
    settings = _load_config(config.config_path)
    with postgres.connection() as conn:
        stored = active_model(conn)
        last_run = conn.execute(LAST_RUN).fetchone()
        conn.commit()
        mode = _choose_mode(config, stored.model_version if stored else None, last_run)
        if mode not in ("full", "incremental"):
            raise Failure(description=str(mode), allow_retries=False)
        run_mode: RunMode = "full" if mode == "full" else "incremental"
        train = config.retrain
        # No model yet: the shipped one, trained on the company generator, until `retrain` trains one on
        # the store (a fresh store of a few dozen records has too few pairs for EM).
        model = (
            None
            if train
            else shipped_model()
            if stored is None
            else MatchModel.from_settings(stored.parameters)
        )

        read = read_store(conn, last_run[3] if run_mode == "incremental" and last_run else None)
        if read.frame.empty:
            raise Failure(description="canonical.entities is empty: nothing to resolve", allow_retries=False)
        decisions = engine_decisions(conn)
        prior = stored_pairs(conn, model) if run_mode == "incremental" and model is not None else None
        context.log.info(
            f"{run_mode} resolution of {len(read.frame)} entities"
            + (f", {len(read.delta)} new or changed" if run_mode == "incremental" else "")
            + (", training a model" if train else f", model {model.version[:12] if model else ''}")
        )
        out = _resolve(
            read.frame,
            settings,
            model=model,
            decisions=decisions,
            parents=read.parents,
            only_ids=sorted(read.delta) if run_mode == "incremental" else None,
            prior_pairs=prior,
        )
        if isinstance(out, ModelRefused):
            raise Failure(
                description="the trained model was refused: " + "; ".join(out.reasons),
                metadata={
                    "reasons": MetadataValue.json(list(out.reasons)),
                    "match_weights": MetadataValue.md(model_table(out.model)),
                },
                allow_retries=False,
            )

        version = (
            save_model(conn, out.model.settings, activate=True)
            if train or stored is None
            else out.model.version
        )
        conn.commit()
        if run_mode == "full":
            clustering: dict[str, str] = out.clusters
            pairs = scored_pairs(out.pairs)
        else:
            # Only an incremental run needs the membership here (the store reads it itself to assign ids).
            previous = dict(conn.execute("SELECT canonical_id, golden_id FROM golden.members").fetchall())
            conn.commit()
            scope = incremental_scope(out.clusters, previous, read.delta)
            clustering = {c: out.clusters[c] for c in scope}
            # The store replaces the stored pairs of every record it is given; those between records
            # outside the delta were not scored again and are given back as they were.
            assert prior is not None
            kept = prior.loc[_touching(prior, scope) & ~_touching(prior, set(read.delta))]
            pairs = scored_pairs(out.pairs) + scored_pairs(kept)
        review = [
            (str(a), str(b)) for a, b in out.review[["canonical_id_l", "canonical_id_r"]].itertuples(False)
        ]

        t = time.perf_counter()
        summary: RunSummary = write_resolution(
            conn,
            run_id=f"{context.run.run_id}:{uuid.uuid4().hex[:8]}",
            mode=run_mode,
            clustering=clustering,
            pairs=pairs,
            review_pairs=review,
            model_version=version,
            priorities=source_priorities(),
            started_at=read.watermark,
        )
        write_seconds = time.perf_counter() - t
        stats = membership_stats(conn)
        sizes = size_distribution(conn)
        previous_review = _previous_review_queue(context)

        timings = {"read": read.seconds, **out.timings, "write": write_seconds}
        metadata: dict[str, Any] = {
            "mode": run_mode,
            "model_version": version,
            "model_trained": train,
            "entities": len(read.frame),
            "entities_scored": len(read.delta) if run_mode == "incremental" else len(read.frame),
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
            "timings": MetadataValue.md(
                "| phase | seconds |\n|---|---:|\n"
                + "\n".join(f"| {k} | {v:.3f} |" for k, v in timings.items())
            ),
            "seconds": round(time.perf_counter() - started, 3),
            "dagster/row_count": stats["golden_entities"],
        }
        if train:
            metadata["model"] = MetadataValue.md(model_table(out.model))
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
