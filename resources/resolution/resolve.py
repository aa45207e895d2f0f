"""The one entry point: entities in, clusters out.

`resolve(entities, config)` normalises, trains when no model is given, scores the blocked pairs and
clusters them. Input columns (every one nullable but canonical_id; missing columns count as null):
canonical_id, source_system, name, industry, revenue, employees, country_code, country, email, website,
phone, address, parent_canonical_id (see `inputs.frame_from_rows` to build it from canonical rows).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import duckdb
import pandas as pd
import pyarrow as pa

from resources.resolution.blocking import add_block_keys
from resources.resolution.clusters import Clustering, Decision, cluster_pairs
from resources.resolution.config import ResolutionConfig
from resources.resolution.model import (
    DELTA_COLUMN,
    MatchModel,
    ModelCheck,
    TrainingFailed,
    check_model,
    predict_pairs,
    train_model,
)
from resources.resolution.normalise import create_country_alias_table, normalised_select_sql

__all__ = ["ModelRefused", "Resolution", "prepare", "resolve"]

PREPARED_TABLE = "resolution_prepared"
PAIR_COLUMNS = ("canonical_id_l", "canonical_id_r", "evidence_weight", "match_weight", "match_probability")


@dataclass(frozen=True)
class Resolution:
    """pairs: every scored pair at or above the lower threshold (canonical_id_l < canonical_id_r,
    evidence_weight (what the thresholds apply to), match_weight, match_probability, w_<comparison> per comparison: the match evidence); in an incremental
    run, the pairs touching the delta only. clusters: canonical_id -> cluster key for every input entity.
    review: pairs between the thresholds, or refused links, not linked (with a reason)."""

    pairs: pd.DataFrame
    clusters: dict[str, str]
    review: pd.DataFrame
    model: MatchModel
    model_check: ModelCheck
    conflicts: tuple[str, ...]
    timings: dict[str, float] = field(default_factory=dict)  # wall seconds per phase

    def clusters_frame(self) -> pd.DataFrame:
        """The clusters as two columns (canonical_id, cluster_key), sorted by canonical_id."""
        return pd.DataFrame(list(self.clusters.items()), columns=["canonical_id", "cluster_key"])


@dataclass(frozen=True)
class ModelRefused:
    """Training failed (too few pairs for EM: a store of a few dozen records), or the trained model failed
    its sanity check: nothing was scored or clustered. `model` is what training produced, `reasons` why
    it was refused."""

    model: MatchModel
    model_check: ModelCheck
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def reasons(self) -> tuple[str, ...]:
        return self.model_check.problems


def prepare(
    con: duckdb.DuckDBPyConnection,
    entities: pd.DataFrame | pa.Table,
    only_ids: Iterable[str] | None = None,
    config: ResolutionConfig | None = None,
    timings: dict[str, float] | None = None,
) -> None:
    """Normalise `entities` into the connection's prepared table with its blocking keys, flagging
    `only_ids` as the delta; wall seconds of each step into `timings` when given."""
    t = time.perf_counter()
    con.execute("SET enable_progress_bar = false")
    create_country_alias_table(con)
    con.register("resolution_input", entities)
    columns = set(entities.columns) if isinstance(entities, pd.DataFrame) else set(entities.column_names)
    delta = pd.DataFrame({"canonical_id": sorted(set(only_ids or ()))}, dtype=object)
    con.register("resolution_delta", delta)
    con.execute(
        f"""CREATE OR REPLACE TABLE {PREPARED_TABLE} AS
SELECT n.*, d.canonical_id IS NOT NULL AS {DELTA_COLUMN}
FROM ({normalised_select_sql("resolution_input", columns)}) n
LEFT JOIN resolution_delta d ON d.canonical_id = n.unique_id"""
    )
    con.unregister("resolution_input")
    con.unregister("resolution_delta")
    normalised = time.perf_counter()
    add_block_keys(con, PREPARED_TABLE, (config or ResolutionConfig()).blocking)
    if timings is not None:
        timings["normalise"] = normalised - t
        timings["block_keys"] = time.perf_counter() - normalised


def _parent_links(
    entities: pd.DataFrame | pa.Table, parents: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    links = [(str(c), str(p)) for c, p in parents]
    cols = entities.columns if isinstance(entities, pd.DataFrame) else entities.column_names
    if "parent_canonical_id" in cols and "canonical_id" in cols:
        frame = (
            entities
            if isinstance(entities, pd.DataFrame)
            else entities.select(["canonical_id", "parent_canonical_id"]).to_pandas()
        )
        sub = frame.loc[frame["parent_canonical_id"].notna(), ["canonical_id", "parent_canonical_id"]]
        links += [(str(c), str(p)) for c, p in sub.itertuples(index=False)]
    return links


class _Keeper:
    """`resolve`'s `keep` on a thread of its own, on a cursor of the engine's connection; `join` raises
    what it raised."""

    def __init__(
        self, keep: Callable[[duckdb.DuckDBPyConnection], None], con: duckdb.DuckDBPyConnection
    ) -> None:
        self.seconds = 0.0
        self._error: BaseException | None = None
        self._cursor = con.cursor()
        self._thread = threading.Thread(target=self._run, args=(keep,), name="keep-prepared", daemon=True)
        self._thread.start()

    def _run(self, keep: Callable[[duckdb.DuckDBPyConnection], None]) -> None:
        t = time.perf_counter()
        try:
            keep(self._cursor)
        except Exception as e:  # noqa: BLE001 - whatever it is, join raises it in the caller's thread
            self._error = e
        finally:
            self.seconds = time.perf_counter() - t
            self._cursor.close()

    def join(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


def resolve(
    entities: pd.DataFrame | pa.Table,
    config: ResolutionConfig | None = None,
    *,
    model: MatchModel | None = None,
    decisions: Iterable[Decision] = (),
    parents: Iterable[tuple[str, str]] = (),
    only_ids: Iterable[str] | None = None,
    prior_pairs: pd.DataFrame | None = None,
    keep: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
) -> Resolution | ModelRefused:
    """Resolve `entities` (the whole store) into clusters.

    model: a trained model to score with; trained on `entities` when None (and refused, as a value, when
    training fails or its weights fail `check_model`; a given model is checked and reported but trusted).
    decisions: steward must-link / cannot-link pairs, which win over the model.
    parents: (child, parent) canonical id pairs, each a cannot-link (added to the input's
    parent_canonical_id column, when it has one).
    only_ids: incremental run: score only pairs with at least one side in these ids, against the whole
    store. The clusters are then built from these pairs plus `prior_pairs` (the pairs of an earlier run;
    those touching `only_ids` are dropped, since they were scored again), which gives the clusters a full run
    would on the same data. Blocking keys follow the whole store (a word's rarity, a block's size): when the
    delta itself moves a key past its cap, two unchanged records may gain or lose a comparison that only a
    full run makes or drops.
    keep: called with a cursor of the engine's connection once the pairs are scored, its prepared table
    still there, on a thread of its own while the clusters are built: what keeps the prepared store an
    incremental run starts from (`incremental`). What it raises, the call raises.
    """
    config = config or ResolutionConfig()
    timings: dict[str, float] = {}
    con = duckdb.connect(":memory:")
    keeper: _Keeper | None = None
    try:
        delta = None if only_ids is None else set(map(str, only_ids))
        prepare(con, entities, delta, config, timings)
        ids_sources = con.execute(f"SELECT unique_id, source_system FROM {PREPARED_TABLE}").fetchall()

        if model is None:
            t = time.perf_counter()
            try:
                model = train_model(con, PREPARED_TABLE, config)
            except TrainingFailed as e:
                timings["train"] = time.perf_counter() - t
                return ModelRefused(e.model, ModelCheck((e.reason,)), timings)
            timings["train"] = time.perf_counter() - t
            check = check_model(model, config)
            if not check.ok:
                return ModelRefused(model, check, timings)
        else:
            check = check_model(model, config)

        t = time.perf_counter()
        pairs = predict_pairs(con, PREPARED_TABLE, model, config, delta_only=delta is not None)
        timings["predict"] = time.perf_counter() - t
        if keep is not None:
            # DuckDB writes the prepared store on its own cursor while the clusters are built here.
            keeper = _Keeper(keep, con)
    finally:
        if keeper is None:
            con.close()

    try:
        t = time.perf_counter()
        to_cluster = pairs
        if delta is not None and prior_pairs is not None and len(prior_pairs):
            kept = ~(prior_pairs["canonical_id_l"].isin(delta) | prior_pairs["canonical_id_r"].isin(delta))
            to_cluster = pd.concat([prior_pairs.loc[kept, list(PAIR_COLUMNS)], pairs[list(PAIR_COLUMNS)]])
        sources = {str(i): str(s) for i, s in ids_sources if s is not None}
        clustering: Clustering = cluster_pairs(
            (str(i) for i, _ in ids_sources),
            sources,
            to_cluster,
            config,
            decisions=decisions,
            parents=_parent_links(entities, parents),
        )
        timings["cluster"] = time.perf_counter() - t
    finally:
        if keeper is not None:
            t = time.perf_counter()
            keeper.join()
            timings["keep_prepared_wait"] = time.perf_counter() - t
            timings["keep_prepared"] = keeper.seconds
            con.close()
    return Resolution(
        pairs, clustering.clusters, clustering.review, model, check, clustering.conflicts, timings
    )
