"""An incremental resolution from a prepared store kept between runs, instead of the whole store read
and prepared again.

The prepared store is a DuckDB database file (`PreparedStore`): every record's normalised columns
(`prepared`), its blocking keys before the cap (`raw_keys`) and the name words' counts (`word_counts`,
see `key_counts`), tagged with the watermark of the run that left it and a fingerprint of the matching
configuration and of the code that normalises and keys (`fingerprint`). A run over the whole store (full,
or incremental without a store it can use) moves the last run's store on by its delta, or writes a new one
when there is none it can use (`PreparedStore.refresh`, `write_from`: `resolve`'s `keep`, on a thread of
its own while the clusters are built); `resolve_delta` applies a delta to it and resolves from it:

1. the delta's rows are normalised and replace their earlier versions; the word counts follow;
2. the delta is keyed as a run over the whole store would key it (`key_counts.delta_raw_keys`), and each of
   its keys is kept when the store, the delta counted in, holds it at most `max_block_size` times;
3. the engine's table is the whole prepared store with keys only where a pair can touch the delta: a
   delta record's kept keys, and on any other record those of its keys a delta record kept. Every pair a
   full run would score with a delta record on one side is scored, and no other;
4. clusters as `resolve` builds them in an incremental run, from those pairs and the earlier ones.

A store that is missing, written for another configuration or code, left by another run than the last
one, or that does not hold the store's records (records were deleted) is refused with a reason: the
caller resolves from the whole store and writes a new one.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from resources.resolution import blocking, key_counts, normalise
from resources.resolution.blocking import BLOCK_KEYS_COLUMN, ROW_ID
from resources.resolution.clusters import Decision, cluster_pairs
from resources.resolution.config import ResolutionConfig
from resources.resolution.key_counts import RAW_KEYS_TABLE
from resources.resolution.model import DELTA_COLUMN, MatchModel, check_model, predict_pairs
from resources.resolution.normalise import create_country_alias_table, normalised_select_sql
from resources.resolution.resolve import PAIR_COLUMNS, PREPARED_TABLE, Resolution

__all__ = ["PreparedStore", "StoreRefused", "fingerprint", "resolve_delta"]

FORMAT = "1"
# What the store keeps of a prepared row: its normalised columns. Not its keys (kept before the cap, in
# raw_keys), its delta flag, or blocking's row number (a run's own numbering).
_STORED_COLUMNS = f"COLUMNS(lambda c: c NOT IN ('{BLOCK_KEYS_COLUMN}', '{DELTA_COLUMN}', '{ROW_ID}'))"
_ALIAS = "prepared_store"


def fingerprint(config: ResolutionConfig) -> str:
    """What a prepared store's content follows: the configuration and the code that normalises and keys.
    A store written under another is refused, never used."""
    h = hashlib.sha256(FORMAT.encode())
    h.update(config.model_dump_json().encode())
    for module in (normalise, blocking, key_counts):
        h.update(Path(str(module.__file__)).read_bytes())
    return h.hexdigest()


@dataclass(frozen=True)
class StoreRefused:
    """Why the prepared store cannot serve this run."""

    reason: str


@dataclass(frozen=True)
class PreparedStore:
    """Where the prepared store lives, and what a run expects of it."""

    path: Path
    # The run that moves the store on: its mark holds the store until that run stamps it, so a run that
    # overlapped it never stamps what another one wrote.
    run: str = ""

    @property
    def pending(self) -> str:
        return f"pending {self.run}"

    def write_from(self, con: duckdb.DuckDBPyConnection, into: Path, config: ResolutionConfig) -> None:
        """Write the connection's prepared table (a run's `prepare`), with every record's keys before the
        cap, as a new store at `into`, its watermark unset until the run that read it commits (`stamp`)."""
        key_counts.create_raw_keys(con, PREPARED_TABLE, RAW_KEYS_TABLE, config.blocking)
        into.unlink(missing_ok=True)
        con.execute(f"ATTACH '{into}' AS {_ALIAS}")
        try:
            con.execute(f"CREATE TABLE {_ALIAS}.prepared AS SELECT {_STORED_COLUMNS} FROM {PREPARED_TABLE}")
            con.execute(f"CREATE TABLE {_ALIAS}.raw_keys AS SELECT * FROM {RAW_KEYS_TABLE}")
            key_counts.create_word_counts(con, PREPARED_TABLE, f"{_ALIAS}.word_counts")
            con.execute(f"CREATE TABLE {_ALIAS}.meta (name VARCHAR PRIMARY KEY, value VARCHAR)")
            con.execute(
                f"INSERT INTO {_ALIAS}.meta VALUES ('fingerprint', ?), ('watermark', ?)",
                [fingerprint(config), self.pending],
            )
        finally:
            con.execute(f"DETACH {_ALIAS}")

    def refresh(
        self,
        con: duckdb.DuckDBPyConnection,
        delta: Iterable[str],
        config: ResolutionConfig,
        watermark: str,
        into: Path,
    ) -> str:
        """After a run over the whole store (the connection's prepared table): move the store left at
        `watermark` on by `delta` (the records written or decided since) when it can serve, else write a
        new one at `into` (`write_from`). What it did, in words."""
        refused = _open(con, self, config, watermark)
        if refused is None:
            con.register("resolution_delta_ids", pd.DataFrame({"unique_id": sorted(delta)}, dtype=object))
            con.execute(
                f"""CREATE TABLE resolution_delta AS
SELECT {_STORED_COLUMNS} FROM {PREPARED_TABLE} SEMI JOIN resolution_delta_ids USING (unique_id)"""
            )
            entities = con.execute(f"SELECT count(*) FROM {PREPARED_TABLE}").fetchone()[0]  # type: ignore[index]
            refused = _holds(con, entities)
            if refused is None:
                _apply_delta(con, config, self.pending)
                con.execute(f"DETACH {_ALIAS}")
                return "moved on"
            con.execute(f"DETACH {_ALIAS}")
        self.write_from(con, into, config)
        return f"written ({refused.reason})"

    def stamp(self, watermark: str) -> str | None:
        """Record that the store this run moved on or wrote holds the store as of `watermark` (the
        committed run's read); why it could not, if it could not (the store then stays unstamped: the next
        run writes a new one)."""
        try:
            with duckdb.connect(str(self.path)) as con:
                stamped = con.execute(
                    "UPDATE meta SET value = ? WHERE name = 'watermark' AND value = ? RETURNING value",
                    [watermark, self.pending],
                ).fetchall()
        except duckdb.Error as e:
            return f"the prepared store could not be stamped: {str(e).splitlines()[0]}"
        return None if stamped else "the prepared store was moved on by another run meanwhile: left unstamped"


def _open(
    con: duckdb.DuckDBPyConnection, store: PreparedStore, config: ResolutionConfig, watermark: str
) -> StoreRefused | None:
    """Attach the store when it can serve a run after the one that left it at `watermark`."""
    if not store.path.exists():
        return StoreRefused("no prepared store yet")
    try:
        con.execute(f"ATTACH '{store.path}' AS {_ALIAS}")
    except duckdb.Error as e:
        return StoreRefused(f"the prepared store cannot be opened: {str(e).splitlines()[0]}")
    refused = _check(con, config, watermark)
    if refused is not None:
        con.execute(f"DETACH {_ALIAS}")
    return refused


def _holds(con: duckdb.DuckDBPyConnection, entities: int) -> StoreRefused | None:
    """Whether the store with `resolution_delta` in holds the store's `entities` records: a record
    deleted since is one it holds too many."""
    known = con.execute(
        f"""SELECT (SELECT count(*) FROM {_ALIAS}.prepared)
                 + (SELECT count(*) FROM resolution_delta d ANTI JOIN {_ALIAS}.prepared p USING (unique_id))"""
    ).fetchone()[0]  # type: ignore[index]
    if known != entities:
        return StoreRefused(f"the prepared store with the delta holds {known} records, the store {entities}")
    return None


def _apply_delta(con: duckdb.DuckDBPyConnection, config: ResolutionConfig, pending: str) -> None:
    """Move the attached store on by `resolution_delta` (normalised rows), its watermark unset: the rows
    replace their earlier versions, the word counts follow, and the delta's keys before the cap go into
    `raw_keys` and the connection's `delta_keys`."""
    s = _ALIAS
    # The words of the delta's earlier versions leave the counts, their new ones come in.
    con.execute(
        f"""CREATE TEMP TABLE word_change AS
SELECT word, sum(n)::BIGINT AS n FROM (
  SELECT word, -1 AS n FROM ({key_counts.words_sql(f"(SELECT * FROM {s}.prepared SEMI JOIN resolution_delta USING (unique_id))")})
  UNION ALL
  SELECT word, 1 AS n FROM ({key_counts.words_sql("resolution_delta")})
) GROUP BY word"""
    )
    con.execute(
        f"""CREATE TEMP TABLE delta_words AS
SELECT c.word, coalesce(w.n, 0) + c.n AS n FROM word_change c LEFT JOIN {s}.word_counts w USING (word)"""
    )
    key_counts.delta_raw_keys(con, "resolution_delta", "delta_words", "delta_keys", config.blocking)
    # One transaction writes the store (DuckDB writes one database per transaction): the delta in,
    # the watermark unset until the run commits.
    con.execute("BEGIN")
    con.execute(f"UPDATE {s}.meta SET value = ? WHERE name = 'watermark'", [pending])
    con.execute(
        f"UPDATE {s}.word_counts w SET n = w.n + c.n FROM word_change c WHERE w.word = c.word AND c.n <> 0"
    )
    con.execute(
        f"INSERT INTO {s}.word_counts SELECT word, n FROM word_change c ANTI JOIN {s}.word_counts USING (word)"
    )
    con.execute(f"DELETE FROM {s}.prepared WHERE unique_id IN (SELECT unique_id FROM resolution_delta)")
    con.execute(f"INSERT INTO {s}.prepared BY NAME SELECT * FROM resolution_delta")
    con.execute(f"DELETE FROM {s}.raw_keys WHERE unique_id IN (SELECT unique_id FROM resolution_delta)")
    con.execute(f"INSERT INTO {s}.raw_keys SELECT unique_id, key FROM delta_keys")
    con.execute("COMMIT")


def _check(con: duckdb.DuckDBPyConnection, config: ResolutionConfig, watermark: str) -> StoreRefused | None:
    meta = dict(con.execute(f"SELECT name, value FROM {_ALIAS}.meta").fetchall())
    if meta.get("fingerprint") != fingerprint(config):
        return StoreRefused("the prepared store was written by another configuration or code")
    if meta.get("watermark") != watermark:
        return StoreRefused("the prepared store is not the last run's")
    return None


def resolve_delta(
    store: PreparedStore,
    delta: pa.Table | pd.DataFrame,
    entities: int,
    config: ResolutionConfig,
    *,
    model: MatchModel,
    watermark: str,
    decisions: Iterable[Decision] = (),
    parents: Iterable[tuple[str, str]] = (),
    prior_pairs: pd.DataFrame | None = None,
    around: Callable[[pd.DataFrame, set[str]], tuple[set[str], pd.DataFrame]] | None = None,
) -> Resolution | StoreRefused:
    """Resolve the `delta` rows (the input columns of `resolve`, every record written or decided since
    the last run) against the prepared store left at `watermark`, with the store holding `entities`
    records once the delta is in. The clusters cover every record, as `resolve`'s do; the pairs are those
    touching the delta. The prepared store is moved on to the delta (its watermark unset until `stamp`):
    if this run never commits, the next one finds it stale and starts over.

    around: given the delta's scored pairs and its ids, the neighbourhood (`Neighbourhood`): the records
    whose clusters the delta can change, and the earlier pairs touching them. The clusters are then built
    for those records alone, from those pairs (instead of every record from `prior_pairs`), and the
    result's clusters hold them alone."""
    timings: dict[str, float] = {}
    t = time.perf_counter()
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET enable_progress_bar = false")
        refused = _open(con, store, config, watermark)
        if refused is not None:
            return refused
        create_country_alias_table(con)
        columns = set(delta.columns) if isinstance(delta, pd.DataFrame) else set(delta.column_names)
        con.register("resolution_input", delta)
        con.execute(f"CREATE TABLE resolution_delta AS {normalised_select_sql('resolution_input', columns)}")
        con.unregister("resolution_input")
        refused = _holds(con, entities)
        if refused is not None:
            return refused
        timings["normalise"] = time.perf_counter() - t

        t = time.perf_counter()
        s = _ALIAS
        _apply_delta(con, config, store.pending)
        # The delta's keys the store (the delta counted in) holds few enough times: blocks a full run keeps.
        con.execute(
            f"""CREATE TEMP TABLE kept_keys AS
SELECT key FROM {s}.raw_keys SEMI JOIN (SELECT DISTINCT key FROM delta_keys) USING (key)
GROUP BY key HAVING count(*) <= {config.blocking.max_block_size}"""
        )
        con.execute(
            f"""CREATE TABLE {PREPARED_TABLE} AS
WITH agg AS (SELECT unique_id, list_sort(list(key)) AS keys FROM {s}.raw_keys SEMI JOIN kept_keys USING (key)
             GROUP BY unique_id)
SELECT p.*, d.unique_id IS NOT NULL AS {DELTA_COLUMN}, coalesce(agg.keys, []::UBIGINT[]) AS {BLOCK_KEYS_COLUMN}
FROM {s}.prepared p LEFT JOIN agg USING (unique_id)
LEFT JOIN (SELECT unique_id FROM resolution_delta) d USING (unique_id)"""
        )
        timings["block_keys"] = time.perf_counter() - t

        delta_ids = {str(i) for (i,) in con.execute("SELECT unique_id FROM resolution_delta").fetchall()}
        check = check_model(model, config)
        t = time.perf_counter()
        pairs = predict_pairs(con, PREPARED_TABLE, model, config, delta_only=True)
        timings["predict"] = time.perf_counter() - t

        t = time.perf_counter()
        hood: set[str] | None = None
        if around is not None:
            hood, prior_pairs = around(pairs, delta_ids)
            timings["neighbourhood"] = time.perf_counter() - t
            t = time.perf_counter()
        to_cluster = pairs
        if prior_pairs is not None and len(prior_pairs):
            keep = ~(
                prior_pairs["canonical_id_l"].isin(delta_ids) | prior_pairs["canonical_id_r"].isin(delta_ids)
            )
            to_cluster = pd.concat([prior_pairs.loc[keep, list(PAIR_COLUMNS)], pairs[list(PAIR_COLUMNS)]])
        if hood is None:
            ids_sources = con.execute(f"SELECT unique_id, source_system FROM {PREPARED_TABLE}").fetchall()
        else:
            # The neighbourhood and the far ends of its pairs: those are each in a cluster of their own
            # here (no link leaves the neighbourhood), enough for the review of the pairs reaching them.
            ends = set(map(str, to_cluster["canonical_id_l"])) | set(map(str, to_cluster["canonical_id_r"]))
            con.register("resolution_hood", pd.DataFrame({"unique_id": sorted(hood | ends)}, dtype=object))
            ids_sources = con.execute(
                f"SELECT unique_id, source_system FROM {PREPARED_TABLE} SEMI JOIN resolution_hood USING (unique_id)"
            ).fetchall()
    finally:
        con.close()

    sources = {str(i): str(src) for i, src in ids_sources if src is not None}
    clustering = cluster_pairs(
        (str(i) for i, _ in ids_sources),
        sources,
        to_cluster,
        config,
        decisions=decisions,
        parents=[(str(c), str(p)) for c, p in parents],
    )
    clusters = (
        clustering.clusters if hood is None else {c: k for c, k in clustering.clusters.items() if c in hood}
    )
    timings["cluster"] = time.perf_counter() - t
    return Resolution(pairs, clusters, clustering.review, model, check, clustering.conflicts, timings)
