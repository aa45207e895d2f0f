"""One resolution of the golden store, from reading canonical.entities to golden ids committed
(dagster-free): what the asset canonical/golden_entities runs, and what the benchmark times.

`resolve_store` chooses the mode (`choose_mode`), reads the store in one snapshot (`read_store`), runs the
matching engine (resources/resolution, imported when a run resolves: pandas, DuckDB and Splink stay out
of whatever merely imports this module) and writes the result through `store.write_resolution`. Why a
run cannot go ahead is a value (`NotResolved`), not an exception.

Modes: `full` scores every blocked pair; `incremental` scores only the pairs touching the records written
since the last resolution, against the whole store, and builds the clusters from those plus the pairs the
store kept (golden.pairs): the same clusters a full run would give. With a prepared store
(`resolution.incremental`, a file every run leaves for the next), an incremental run reads only its
delta's rows, keys and scores them against that store, and clusters only the neighbourhood the delta
can change (`neighbourhood`), from the stored pairs around it; a missing or stale prepared store is
refused with its reason and the run resolves from the whole store. `auto` takes incremental when the
active model scored the last run, else full. A new model (`retrain`, or the shipped default activated
when none is active yet) always scores in full: every pair's weight changes with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import psycopg

from resources.golden.neighbourhood import Neighbourhood, pairs_frame
from resources.golden.store import (
    RunSummary,
    ScoredPair,
    active_model,
    save_model,
    source_priorities,
    steward_constraints,
    write_resolution,
)

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa

    from resources.resolution.clusters import Decision
    from resources.resolution.config import ResolutionConfig
    from resources.resolution.incremental import PreparedStore
    from resources.resolution.model import MatchModel
    from resources.resolution.resolve import Resolution

RunMode = Literal["full", "incremental"]
AskedMode = Literal["auto", "full", "incremental"]

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

# Prior pairs, for clustering an incremental run as a full run would (resolve's prior_pairs), each pair's
# comparison weights as JSON text: parsed in bulk into columns.
STORED_PAIRS_TEXT = """SELECT canonical_id_l, canonical_id_r, match_weight, match_probability, comparisons::text
                       FROM golden.pairs"""

# The previous golden entities of some records, whole: the incremental scope's closure reads only these.
MEMBERS_OF_GOLDEN_OF = """SELECT m.canonical_id, m.golden_id FROM golden.members m
                          WHERE m.golden_id IN (SELECT golden_id FROM golden.members
                                                WHERE canonical_id = ANY(%s))"""


# Every canonical entity, flagged when it is in the delta: written at or after `since`, named by a steward
# decision since then (a decision changes no canonical row, yet its records must be resolved again for the
# store to apply it), or not yet a golden member.
_ENTITIES = """WITH decided AS (
    SELECT DISTINCT unnest(array[d.canonical_id_l, d.canonical_id_r] || d.apart_from) AS canonical_id
    FROM golden.decisions d WHERE d.decided_at >= %(since)s)
SELECT * FROM (
    SELECT e.canonical_id, e.source_system, e.name, e.industry, e.revenue::float8, e.employees,
           e.attributes::text,
           (m.canonical_id IS NULL OR (%(since)s::timestamptz IS NOT NULL
                                       AND (e.updated_at >= %(since)s
                                            OR e.canonical_id IN (SELECT canonical_id FROM decided))))
           AS in_delta
    FROM canonical.entities e LEFT JOIN golden.members m USING (canonical_id)) entities"""
ENTITIES_READ = _ENTITIES
DELTA_READ = _ENTITIES + " WHERE in_delta"


@dataclass
class StoreRead:
    frame: pa.Table  # the engine's input (resolution/inputs.py); dropped once the engine has run
    delta: frozenset[str]  # written since the watermark, or never resolved
    watermark: datetime
    parents: list[tuple[str, str]]
    seconds: float
    entities: int  # the store's size (the frame holds the delta alone when read by `read_delta`)


@dataclass(frozen=True)
class NotResolved:
    """Why a run did not resolve; `model` is a trained model its check refused, `entities` the store's
    size when it was read."""

    reason: str
    model: MatchModel | None = None
    entities: int | None = None
    reasons: tuple[str, ...] = ()  # the refused model's check problems


@dataclass(frozen=True)
class StoreResolution:
    mode: RunMode
    trained: bool
    model: MatchModel
    model_version: str
    entities: int
    entities_scored: int
    resolution: Resolution
    summary: RunSummary
    timings: dict[str, float] = field(default_factory=dict)  # wall seconds per phase, in order
    # How the run used the prepared store: "started from it", "written" (with why it did not start from
    # one, in an incremental run), or "none" (the run keeps none).
    prepared_store: str = "none"


def choose_mode(
    mode: AskedMode, retrain: bool, model_version: str | None, last_run: tuple[Any, ...] | None
) -> RunMode | str:
    """The run's mode, or why the asked one cannot run (a string)."""
    scored_by_active = last_run is not None and model_version is not None and last_run[2] == model_version
    if retrain or model_version is None:
        if mode == "incremental":
            return (
                "an incremental run scores with the active model; "
                + ("retrain scores every pair again" if retrain else "no model is active yet")
                + ": run it with mode full (or auto)"
            )
        return "full"
    if mode == "auto":
        return "incremental" if scored_by_active else "full"
    if mode == "incremental" and not scored_by_active:
        return (
            "an incremental run needs a previous resolution scored by the active model "
            "(its pairs are the ones the new records join): run it full"
        )
    return mode


# --- reading the store -------------------------------------------------------------------------------


def read_store(conn: psycopg.Connection[Any], since: datetime | None) -> StoreRead:
    """Every canonical entity (one streaming query on a server-side cursor) and those written at or after
    `since`, named by a steward decision since then, or not yet a golden member, in one snapshot with
    the watermark the next run starts from."""
    return _read(conn, since, ENTITIES_READ)


def read_delta(conn: psycopg.Connection[Any], since: datetime) -> StoreRead:
    """`read_store` for the delta's rows alone (what a prepared store lacks), with the store's size in
    `entities`."""
    return _read(conn, since, DELTA_READ, count=True)


def _read(
    conn: psycopg.Connection[Any], since: datetime | None, query: str, *, count: bool = False
) -> StoreRead:
    from resources.resolution.inputs import table_from_entity_rows

    t = time.perf_counter()
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
    watermark = conn.execute(WATERMARK).fetchone()[0]  # type: ignore[index]
    delta: set[str] = set()
    with conn.cursor(name="golden_read_entities") as cur:
        cur.itersize = 50_000
        cur.execute(query, {"since": since})
        frame = table_from_entity_rows(cur, delta)
    parents = [(str(c), str(p)) for c, p in conn.execute(CURRENT_PARENTS).fetchall()]
    entities = (
        int(conn.execute("SELECT count(*) FROM canonical.entities").fetchone()[0])  # type: ignore[index]
        if count
        else frame.num_rows
    )
    conn.commit()
    return StoreRead(frame, frozenset(delta), watermark, parents, time.perf_counter() - t, entities)


def stored_pairs(conn: psycopg.Connection[Any], model: MatchModel) -> pd.DataFrame:
    """golden.pairs, whole, as the engine's pairs (`neighbourhood.pairs_frame`)."""
    from resources.resolution.model import prior_weight

    with conn.cursor() as cur:
        cur.execute(STORED_PAIRS_TEXT)
        rows = cur.fetchall()
    conn.commit()
    return pairs_frame(rows, prior_weight(model))


def engine_decisions(conn: psycopg.Connection[Any]) -> list[Decision]:
    from resources.resolution.clusters import Decision

    must, cannot = steward_constraints(conn).pairs()
    conn.commit()
    return [Decision(a, b, "must_link") for a, b in must] + [Decision(a, b, "cannot_link") for a, b in cannot]


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


def previous_around(
    conn: psycopg.Connection[Any], clusters: Mapping[str, str], delta: Iterable[str]
) -> dict[str, str]:
    """The previous membership `incremental_scope` reads, and no more: the golden entities (whole) of
    the delta, closed over the new clusters and those golden entities' members. Read in rounds of
    small queries instead of the whole of golden.members."""
    by_cluster: dict[str, list[str]] = {}
    for cid, key in clusters.items():
        by_cluster.setdefault(key, []).append(cid)
    previous: dict[str, str] = {}
    asked: set[str] = set()
    seen_clusters: set[str] = set()
    todo = {c for c in delta if c in clusters}
    while todo:
        # Every record a round reaches brings its whole new cluster; their golden entities come next.
        for cid in list(todo):
            key = clusters[cid]
            if key not in seen_clusters:
                seen_clusters.add(key)
                todo.update(by_cluster[key])
        ask = sorted(todo - asked)
        asked.update(ask)
        todo = set()
        if not ask:
            break
        for cid, gid in conn.execute(MEMBERS_OF_GOLDEN_OF, (ask,)).fetchall():
            if cid not in previous:
                previous[cid] = gid
                if cid in clusters and cid not in asked:
                    todo.add(cid)
    conn.commit()
    return previous


def _stamp(watermark: datetime) -> str:
    """A watermark as a prepared store records it: one text for one instant, whatever the session's zone."""
    return watermark.astimezone(UTC).isoformat()


def _keeper(
    store: PreparedStore,
    read: StoreRead,
    settings: ResolutionConfig,
    since: datetime | None,
    fresh: Path,
    outcome: dict[str, str],
) -> Callable[[duckdb.DuckDBPyConnection], None]:
    """`resolve`'s `keep` for a run over the whole store: the prepared store moved on by the run's delta
    when the last run left it, else written anew at `fresh`; what it did into `outcome`."""

    def keep(con: duckdb.DuckDBPyConnection) -> None:
        if since is None:
            store.write_from(con, fresh, settings)
            outcome["outcome"] = "written"
        else:
            outcome["outcome"] = store.refresh(con, read.delta, settings, _stamp(since), fresh)

    return keep


def scored_pairs(frame: pd.DataFrame) -> list[ScoredPair]:
    """The engine's pairs as the store takes them: each comparison's weight where it has one."""
    import numpy as np

    weights = [c for c in frame.columns if c.startswith("w_")]
    names = [c[2:] for c in weights]
    lefts = frame["canonical_id_l"].astype(str).tolist()
    rights = frame["canonical_id_r"].astype(str).tolist()
    match_weights = frame["match_weight"].astype(float).tolist()
    probabilities = frame["match_probability"].astype(float).tolist()
    columns = [frame[c].astype(float).to_numpy() for c in weights]
    present = [~np.isnan(v) for v in columns]
    values = [v.tolist() for v in columns]
    flags = [p.tolist() for p in present]
    out: list[ScoredPair] = []
    for i in range(len(lefts)):
        comparisons = {names[j]: values[j][i] for j in range(len(names)) if flags[j][i]}
        out.append(ScoredPair(lefts[i], rights[i], match_weights[i], probabilities[i], comparisons))
    return out


def _touching(frame: pd.DataFrame, ids: set[str]) -> pd.Series:
    return frame["canonical_id_l"].isin(ids) | frame["canonical_id_r"].isin(ids)


# --- the run -----------------------------------------------------------------------------------------


def resolve_store(
    conn: psycopg.Connection[Any],
    settings: ResolutionConfig,
    *,
    run_id: str,
    mode: AskedMode = "auto",
    retrain: bool = False,
    priorities: Mapping[str, int] | None = None,
    log: Callable[[str], None] | None = None,
    prepared_store: Path | None = None,
) -> StoreResolution | NotResolved:
    """Resolve canonical.entities and commit the golden ids (see the module doc). `conn` must not be
    inside a transaction. `prepared_store`: the file an incremental run starts from instead of the whole
    store (`resolution.incremental`); every run that resolves leaves it there for the next one."""
    from resources.resolution.incremental import PreparedStore, StoreRefused, resolve_delta
    from resources.resolution.model import MatchModel, shipped_model
    from resources.resolution.resolve import ModelRefused, resolve

    timings: dict[str, float] = {}
    stored = active_model(conn)
    last_run = conn.execute(LAST_RUN).fetchone()
    conn.commit()
    chosen = choose_mode(mode, retrain, stored.model_version if stored else None, last_run)
    if chosen not in ("full", "incremental"):
        return NotResolved(str(chosen))
    run_mode: RunMode = "full" if chosen == "full" else "incremental"
    # No model yet: the shipped one, trained on the company generator, until `retrain` trains one on
    # the store (a fresh store of a few dozen records has too few pairs for EM).
    model = (
        None
        if retrain
        else shipped_model()
        if stored is None
        else MatchModel.from_settings(stored.parameters)
    )

    since = last_run[3] if run_mode == "incremental" and last_run else None
    store = PreparedStore(prepared_store, run_id) if prepared_store is not None else None
    fresh = prepared_store.with_name(prepared_store.name + f".{run_id}.new") if prepared_store else None
    out: Resolution | ModelRefused | StoreRefused | None = None
    read: StoreRead | None = None
    prior: pd.DataFrame | None = None
    used = "none" if store is None else "written"
    if store is not None and since is not None and model is not None:
        read = read_delta(conn, since)
        timings["read"] = read.seconds
        t = time.perf_counter()
        decisions = engine_decisions(conn)
        must = [(d.canonical_id_l, d.canonical_id_r) for d in decisions if d.kind == "must_link"]
        timings["read_decisions"] = time.perf_counter() - t
        if log is not None:
            log(
                f"incremental resolution of {read.entities} entities from the prepared store, "
                f"{len(read.delta)} new or changed, model {model.version[:12]}"
            )
        out = resolve_delta(
            store,
            read.frame,
            read.entities,
            settings,
            model=model,
            watermark=_stamp(since),
            decisions=decisions,
            parents=read.parents,
            around=(hood := Neighbourhood(conn, model, settings, must)),
        )
        if isinstance(out, StoreRefused):
            if log is not None:
                log(f"{out.reason}: resolving from the whole store")
            out = None
        else:
            used = "started from it"
            prior = hood.pairs
    store_outcome: dict[str, str] = {}
    if out is None:
        # With a prepared store, a run over the whole store flags the delta since the last run too: the
        # store is moved on by it rather than written whole.
        last_since = last_run[3] if store is not None and last_run is not None else None
        read = read_store(conn, since if run_mode == "incremental" else last_since)
        timings["read"] = read.seconds
        if read.entities == 0:
            return NotResolved("canonical.entities is empty: nothing to resolve", entities=0)
        t = time.perf_counter()
        decisions = engine_decisions(conn)
        if run_mode == "incremental" and model is not None:
            prior = stored_pairs(conn, model)
        timings["read_decisions_and_pairs"] = time.perf_counter() - t
        if log is not None:
            log(
                f"{run_mode} resolution of {read.entities} entities"
                + (f", {len(read.delta)} new or changed" if run_mode == "incremental" else "")
                + (", training a model" if retrain else f", model {model.version[:12] if model else ''}")
            )
        # A store too small to train on comes back as a refused model whose reason says so.
        out = resolve(
            read.frame,
            settings,
            model=model,
            decisions=decisions,
            parents=read.parents,
            only_ids=sorted(read.delta) if run_mode == "incremental" else None,
            prior_pairs=prior,
            keep=(
                None
                if store is None or fresh is None
                else _keeper(store, read, settings, last_since, fresh, store_outcome)
            ),
        )
    assert read is not None and out is not None and not isinstance(out, StoreRefused)
    used = store_outcome.get("outcome", used)
    entities = read.entities
    timings.update(out.timings)
    # The input is the largest thing held from here on, and nothing after the engine reads it.
    read.frame = read.frame.slice(0, 0)
    if isinstance(out, ModelRefused):
        if fresh is not None:
            fresh.unlink(missing_ok=True)
        return NotResolved(
            "the model was refused: " + "; ".join(out.reasons),
            out.model,
            entities,
            out.reasons,
        )

    version = (
        save_model(conn, out.model.settings, activate=True)
        if retrain or stored is None
        else out.model.version
    )
    conn.commit()
    t = time.perf_counter()
    if run_mode == "full":
        clustering: dict[str, str] = out.clusters
        pairs = scored_pairs(out.pairs)
    else:
        previous = previous_around(conn, out.clusters, read.delta)
        scope = incremental_scope(out.clusters, previous, read.delta)
        clustering = {c: out.clusters[c] for c in scope}
        # The store replaces the stored pairs of every record it is given; those between records
        # outside the delta were not scored again and are given back as they were.
        assert prior is not None
        kept = prior.loc[_touching(prior, scope) & ~_touching(prior, set(read.delta))]
        pairs = scored_pairs(out.pairs) + scored_pairs(kept)
    review = [(str(a), str(b)) for a, b in out.review[["canonical_id_l", "canonical_id_r"]].itertuples(False)]
    timings["hand_over"] = time.perf_counter() - t

    t = time.perf_counter()
    steps: dict[str, float] = {}
    summary = write_resolution(
        conn,
        run_id=run_id,
        mode=run_mode,
        clustering=clustering,
        pairs=pairs,
        review_pairs=review,
        model_version=version,
        priorities=priorities if priorities is not None else source_priorities(),
        started_at=read.watermark,
        timings=steps,
    )
    timings["write"] = time.perf_counter() - t
    timings.update({f"write: {k}": v for k, v in steps.items()})
    if prepared_store is not None:
        # The store the next run starts from is the one this committed run read: stamped with its watermark.
        if fresh is not None and fresh.exists():
            fresh.replace(prepared_store)
        if store is not None and prepared_store.exists():
            # The golden ids are committed: a store that cannot be stamped is only a slower next run.
            unstamped = store.stamp(_stamp(read.watermark))
            if unstamped is not None:
                used = unstamped
                if log is not None:
                    log(unstamped)
    return StoreResolution(
        mode=run_mode,
        trained=retrain,
        model=out.model,
        model_version=version,
        entities=entities,
        entities_scored=len(read.delta) if run_mode == "incremental" else entities,
        resolution=out,
        summary=summary,
        timings=timings,
        prepared_store=used,
    )
