"""The prepared store kept between runs (resources/resolution/incremental.py, key_counts.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from bench.resolution_data import generate
from resources.resolution.config import BlockingSettings, ResolutionConfig
from resources.resolution.incremental import PreparedStore, StoreRefused, resolve_delta
from resources.resolution.key_counts import (
    add_capped_keys,
    create_raw_keys,
    create_word_counts,
    delta_raw_keys,
)
from resources.resolution.model import shipped_model
from resources.resolution.resolve import PREPARED_TABLE, Resolution, prepare, resolve

# Small bounds, so that a delta of a few dozen records moves words past rarity and keys past the cap.
CONFIG = ResolutionConfig(blocking=BlockingSettings(max_block_size=4, rare_word_max_records=3))
MODEL = shipped_model()


@pytest.fixture(scope="module")
def before() -> pd.DataFrame:
    return generate(1500, seed=11).records.drop(columns=["entity_id"])


def _with_delta(before: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Renamed records, new twins of existing ones, and a crowd sharing one word and one domain."""
    after = before.copy()
    renamed = after.index[40:70]
    after.loc[renamed, "name"] = [f"{n} Holdings" for n in after.loc[after.index[100:130], "name"]]
    twins = before.iloc[200:240].copy()
    twins["canonical_id"] = [f"crm_NEW-{i}" for i in range(len(twins))]
    twins["source_system"] = "crm"
    twins["name"] = twins["name"].str.replace("a", "e", n=1)
    crowd = before.iloc[300:306].copy()
    crowd["canonical_id"] = [f"erp_CROWD-{i}" for i in range(len(crowd))]
    crowd["name"] = [f"Zyqor {w} Trading" for w in ("North", "South", "East", "West", "Upper", "Lower")]
    crowd["website"] = "zyqor.example"
    after = pd.concat([after, twins, crowd], ignore_index=True)
    delta = [*after.loc[renamed, "canonical_id"], *twins["canonical_id"], *crowd["canonical_id"]]
    return after, delta


def _keys(con: duckdb.DuckDBPyConnection, sql: str) -> set[tuple[str, int]]:
    return {(str(u), int(k)) for u, k in con.execute(sql).fetchall()}


def test_capped_keys_from_the_raw_keys_are_the_block_keys(before: pd.DataFrame) -> None:
    con = duckdb.connect()
    prepare(con, before, config=CONFIG)
    expected = con.execute(
        f"SELECT unique_id, block_keys FROM {PREPARED_TABLE} ORDER BY unique_id"
    ).fetchall()
    con.execute(f"CREATE TABLE t AS SELECT * EXCLUDE (block_keys) FROM {PREPARED_TABLE}")
    create_raw_keys(con, "t", "raw", CONFIG.blocking)
    add_capped_keys(con, "t", "raw", CONFIG.blocking)
    assert con.execute("SELECT unique_id, block_keys FROM t ORDER BY unique_id").fetchall() == expected


def test_the_delta_keyed_with_the_stores_word_counts_gets_the_keys_of_the_whole_store(
    before: pd.DataFrame,
) -> None:
    after, delta = _with_delta(before)
    con = duckdb.connect()
    prepare(con, after, config=CONFIG)
    con.execute(f"CREATE TABLE store AS SELECT * EXCLUDE (block_keys, in_delta) FROM {PREPARED_TABLE}")
    create_raw_keys(con, "store", "whole", CONFIG.blocking)
    create_word_counts(con, "store", "words")
    con.register("delta_ids", pd.DataFrame({"unique_id": delta}))
    con.execute("CREATE TABLE delta_rows AS SELECT * FROM store SEMI JOIN delta_ids USING (unique_id)")
    delta_raw_keys(con, "delta_rows", "words", "keyed", CONFIG.blocking)
    expected = _keys(con, "SELECT unique_id, key FROM whole SEMI JOIN delta_ids USING (unique_id)")
    assert _keys(con, "SELECT unique_id, key FROM keyed") == expected
    # The crowd made "zyqor" common: none of its records keeps a key that needed it rare.
    common = con.execute("SELECT n FROM words WHERE word = 'zyqor'").fetchone()
    assert common is not None and common[0] > CONFIG.blocking.rare_word_max_records


def _full_with_store(entities: pd.DataFrame, path: Path) -> Resolution:
    store = PreparedStore(path)
    fresh = path.with_suffix(".new")
    out = resolve(entities, CONFIG, model=MODEL, keep=lambda con: store.write_from(con, fresh, CONFIG))
    assert isinstance(out, Resolution)
    fresh.replace(path)
    PreparedStore(path).stamp("w1")
    return out


def _pairs(frame: pd.DataFrame) -> list[tuple[str, str, float]]:
    return sorted(
        (str(a), str(b), round(float(w), 9))
        for a, b, w in frame[["canonical_id_l", "canonical_id_r", "evidence_weight"]].itertuples(False)
    )


def test_a_delta_resolved_from_the_prepared_store_scores_and_clusters_as_a_run_over_the_whole_store(
    before: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "prepared.duckdb"
    first = _full_with_store(before, path)
    after, delta = _with_delta(before)
    rows = after.loc[after["canonical_id"].isin(delta)]
    out = resolve_delta(
        PreparedStore(path), rows, len(after), CONFIG, model=MODEL, watermark="w1", prior_pairs=first.pairs
    )
    assert isinstance(out, Resolution)
    whole = resolve(after, CONFIG, model=MODEL, only_ids=delta, prior_pairs=first.pairs)
    assert isinstance(whole, Resolution)
    assert len(out.pairs) > 0
    assert _pairs(out.pairs) == _pairs(whole.pairs)
    assert out.clusters == whole.clusters
    # The crowd shares a domain past the cap: no pair of it came from that key.
    full = resolve(after, CONFIG, model=MODEL)
    assert isinstance(full, Resolution)
    assert out.clusters == full.clusters


def test_the_next_delta_starts_from_the_store_the_last_one_left(before: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "prepared.duckdb"
    first = _full_with_store(before, path)
    after, delta = _with_delta(before)
    half = len(delta) // 2
    partial = after.loc[after["canonical_id"].isin(set(before["canonical_id"]) | set(delta[:half]))]
    one = resolve_delta(
        PreparedStore(path),
        after.loc[after["canonical_id"].isin(delta[:half])],
        len(partial),
        CONFIG,
        model=MODEL,
        watermark="w1",
        prior_pairs=first.pairs,
    )
    assert isinstance(one, Resolution)
    PreparedStore(path).stamp("w2")
    kept = first.pairs.loc[
        ~(first.pairs["canonical_id_l"].isin(delta[:half]) | first.pairs["canonical_id_r"].isin(delta[:half]))
    ]
    prior = pd.concat([kept, one.pairs])
    two = resolve_delta(
        PreparedStore(path),
        after.loc[after["canonical_id"].isin(delta[half:])],
        len(after),
        CONFIG,
        model=MODEL,
        watermark="w2",
        prior_pairs=prior,
    )
    assert isinstance(two, Resolution)
    whole = resolve(after, CONFIG, model=MODEL, only_ids=delta[half:], prior_pairs=prior)
    assert isinstance(whole, Resolution)
    assert _pairs(two.pairs) == _pairs(whole.pairs)
    assert two.clusters == whole.clusters


def test_a_missing_or_stale_prepared_store_is_refused_with_a_reason(
    before: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "prepared.duckdb"
    rows = before.iloc[:5]

    def run(watermark: str, entities: int, config: ResolutionConfig = CONFIG) -> Resolution | StoreRefused:
        return resolve_delta(PreparedStore(path), rows, entities, config, model=MODEL, watermark=watermark)

    missing = run("w1", len(before))
    assert isinstance(missing, StoreRefused) and "no prepared store" in missing.reason
    _full_with_store(before, path)
    other_run = run("w0", len(before))
    assert isinstance(other_run, StoreRefused) and "last run" in other_run.reason
    other_config = run("w1", len(before), ResolutionConfig())
    assert isinstance(other_config, StoreRefused) and "configuration" in other_config.reason
    deleted = run("w1", len(before) - 2)
    assert isinstance(deleted, StoreRefused) and "holds" in deleted.reason
    assert isinstance(run("w1", len(before)), Resolution)
    # A run that moved the store on but never committed leaves it unstamped: the next one refuses it.
    again = run("w1", len(before))
    assert isinstance(again, StoreRefused) and "last run" in again.reason


def test_the_full_runs_store_gives_back_every_records_block_keys(
    before: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "prepared.duckdb"
    _full_with_store(before, path)
    con = duckdb.connect()
    prepare(con, before, config=CONFIG)
    expected = con.execute(
        f"SELECT unique_id, block_keys FROM {PREPARED_TABLE} ORDER BY unique_id"
    ).fetchall()
    con.execute(f"ATTACH '{path}' AS kept (READ_ONLY)")
    con.execute("CREATE TABLE t AS SELECT * FROM kept.prepared")
    add_capped_keys(con, "t", "kept.raw_keys", CONFIG.blocking)
    assert con.execute("SELECT unique_id, block_keys FROM t ORDER BY unique_id").fetchall() == expected


def test_clustering_only_the_neighbourhood_gives_its_records_the_clusters_of_the_whole_store(
    before: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "prepared.duckdb"
    first = _full_with_store(before, path)
    after, delta = _with_delta(before)
    upper = CONFIG.thresholds.upper
    reached: dict[str, set[str]] = {}

    def around(new: pd.DataFrame, ids: set[str]) -> tuple[set[str], pd.DataFrame]:
        # The closure over strong stored and new pairs, as golden.neighbourhood reads it from the store.
        links: dict[str, set[str]] = {}
        for frame in (first.pairs, new):
            strong = frame.loc[frame["evidence_weight"] >= upper]
            for a, b in zip(strong["canonical_id_l"], strong["canonical_id_r"], strict=True):
                links.setdefault(a, set()).add(b)
                links.setdefault(b, set()).add(a)
        hood, todo = set(), set(ids)
        while todo:
            hood |= todo
            todo = {y for x in todo for y in links.get(x, ())} - hood
        touching = first.pairs["canonical_id_l"].isin(hood) | first.pairs["canonical_id_r"].isin(hood)
        reached["hood"] = hood
        return hood, first.pairs.loc[touching]

    rows = after.loc[after["canonical_id"].isin(delta)]
    out = resolve_delta(
        PreparedStore(path), rows, len(after), CONFIG, model=MODEL, watermark="w1", around=around
    )
    assert isinstance(out, Resolution)
    full = resolve(after, CONFIG, model=MODEL)
    assert isinstance(full, Resolution)
    assert set(out.clusters) == reached["hood"] and len(reached["hood"]) < len(after)
    assert out.clusters == {c: full.clusters[c] for c in reached["hood"]}
    review = {(a, b) for a, b in full.review[["canonical_id_l", "canonical_id_r"]].itertuples(False)}
    touching = {(a, b) for a, b in out.review[["canonical_id_l", "canonical_id_r"]].itertuples(False)}
    assert touching <= review


def test_a_prepared_store_that_fails_to_be_written_fails_the_resolution(before: pd.DataFrame) -> None:
    def broken(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("SELECT * FROM no_such_table")

    with pytest.raises(duckdb.CatalogException):
        resolve(before, CONFIG, model=MODEL, keep=broken)


def test_a_full_run_moves_the_last_runs_store_on_by_its_delta_as_a_new_store_would_be_written(
    before: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "prepared.duckdb"
    _full_with_store(before, path)
    after, delta = _with_delta(before)
    outcome: list[str] = []

    def keep(con: duckdb.DuckDBPyConnection) -> None:
        outcome.append(PreparedStore(path).refresh(con, delta, CONFIG, "w1", tmp_path / "unused.duckdb"))

    assert isinstance(resolve(after, CONFIG, model=MODEL, keep=keep), Resolution)
    assert outcome == ["moved on"] and not (tmp_path / "unused.duckdb").exists()
    written = tmp_path / "written.duckdb"
    resolve(
        after, CONFIG, model=MODEL, keep=lambda con: PreparedStore(written).write_from(con, written, CONFIG)
    )

    def content(file: Path) -> tuple[list[tuple[Any, ...]], ...]:
        with duckdb.connect(str(file), read_only=True) as con:
            return tuple(
                con.execute(sql).fetchall()
                for sql in (
                    "SELECT * FROM prepared ORDER BY unique_id",
                    "SELECT unique_id, key FROM raw_keys ORDER BY unique_id, key",
                    "SELECT word, n FROM word_counts WHERE n > 0 ORDER BY word",
                )
            )

    moved, fresh = content(path), content(written)
    assert moved[0] == fresh[0] and moved[2] == fresh[2]
    # Keys of unchanged records hang on word rarity at the time they were written: the delta's agree.
    delta_keys = [row for row in moved[1] if row[0] in set(delta)]
    assert delta_keys == [row for row in fresh[1] if row[0] in set(delta)]


def test_a_store_that_cannot_be_stamped_says_why_instead_of_raising(tmp_path: Path) -> None:
    broken = tmp_path / "prepared.duckdb"
    broken.write_bytes(b"not a database")
    reason = PreparedStore(broken).stamp("w1")
    assert reason is not None and "could not be stamped" in reason


def test_a_run_never_stamps_a_store_another_run_moved_on_meanwhile(
    before: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "prepared.duckdb"
    _full_with_store(before, path)
    rows = before.iloc[:5]
    moved = resolve_delta(PreparedStore(path, "B"), rows, len(before), CONFIG, model=MODEL, watermark="w1")
    assert isinstance(moved, Resolution)
    late = PreparedStore(path, "A").stamp("wA")
    assert late is not None and "another run" in late
    assert PreparedStore(path, "B").stamp("wB") is None
