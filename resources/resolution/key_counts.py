"""Blocking keys kept between runs: every record's keys before the block-size cap, and the store's word
counts, so that an incremental run can key its delta as a run over the whole store would.

The two properties of the whole store that blocking reads (`blocking`) are kept as counts:
- a key's size (how many records hold it): `raw_keys` (unique_id, key) holds every record's keys before
  the cap, so the size after a delta is a count over it with the delta's rows replaced;
- a word's rarity (in how many records' names it is): `word_counts` (word, n), updated by the delta.

The delta's own keys come from `blocking.block_keys_sql` itself, over the delta plus padding: for each of
the delta's words, as many one-word records as the rest of the store holds it (up to one past the rarity
bound), so the word is rare in that small table exactly when it is rare in the store. The padding's own
keys are dropped. Nothing of the key rules is written twice: only what a word is (the name's distinct
space-separated parts) and that the cap counts distinct records per key.
"""

from __future__ import annotations

import duckdb

from resources.resolution.blocking import BLOCK_KEYS_COLUMN, ROW_ID, block_keys_sql
from resources.resolution.config import BlockingSettings

__all__ = [
    "RAW_KEYS_TABLE",
    "UNCAPPED",
    "add_capped_keys",
    "create_raw_keys",
    "create_word_counts",
    "delta_raw_keys",
    "words_sql",
]

RAW_KEYS_TABLE = "resolution_raw_keys"
UNCAPPED = 2**62


def _uncapped(settings: BlockingSettings) -> BlockingSettings:
    return settings.model_copy(update={"max_block_size": UNCAPPED})


def words_sql(table: str) -> str:
    """(unique_id, word): each record's distinct name words, as blocking counts them."""
    return (
        f"SELECT unique_id, unnest(list_distinct(string_split(name, ' '))) AS word "
        f"FROM {table} WHERE name IS NOT NULL"
    )


# What blocking's key rules read of a prepared row.
_KEYED_COLUMNS = "unique_id, name, name_sorted, email_domain, website, phone"


def _keys_by_id(
    con: duckdb.DuckDBPyConnection, table: str, out: str, settings: BlockingSettings, where: str = "true"
) -> None:
    """`out` (unique_id, key): `blocking.block_keys_sql` over `table`'s rows, numbered for it (it names
    records by an integer row id), then named by their unique_id again."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE resolution_numbered AS "
        f"SELECT row_number() OVER () AS {ROW_ID}, {_KEYED_COLUMNS} FROM {table}"
    )
    con.execute(
        f"""CREATE OR REPLACE TABLE {out} AS
SELECT n.unique_id, k.key FROM ({block_keys_sql("resolution_numbered", settings)}) k
JOIN resolution_numbered n USING ({ROW_ID}) WHERE {where}"""
    )
    con.execute("DROP TABLE resolution_numbered")


def create_raw_keys(con: duckdb.DuckDBPyConnection, table: str, out: str, settings: BlockingSettings) -> None:
    """`out` (unique_id, key): the keys of every record of the prepared `table`, before the cap."""
    _keys_by_id(con, table, out, _uncapped(settings))


def create_word_counts(con: duckdb.DuckDBPyConnection, table: str, out: str) -> None:
    """`out` (word, n): in how many records of `table` each name word is."""
    con.execute(
        f"CREATE OR REPLACE TABLE {out} AS SELECT word, count(*)::BIGINT AS n FROM ({words_sql(table)}) GROUP BY word"
    )


def add_capped_keys(
    con: duckdb.DuckDBPyConnection, table: str, raw_keys: str, settings: BlockingSettings
) -> None:
    """`blocking.add_block_keys` from the raw keys: the same column, each record's keys held by at most
    `max_block_size` records, sorted; rows in unique_id order."""
    con.execute(
        f"""CREATE OR REPLACE TABLE {table} AS
WITH small AS (SELECT key FROM {raw_keys} GROUP BY key HAVING count(*) <= {settings.max_block_size}),
agg AS (SELECT unique_id, list_sort(list(key)) AS keys FROM {raw_keys} SEMI JOIN small USING (key)
        GROUP BY unique_id)
SELECT t.*, coalesce(agg.keys, []::UBIGINT[]) AS {BLOCK_KEYS_COLUMN}
FROM {table} t LEFT JOIN agg USING (unique_id)
ORDER BY t.unique_id"""
    )


def delta_raw_keys(
    con: duckdb.DuckDBPyConnection,
    delta_table: str,
    word_counts: str,
    out: str,
    settings: BlockingSettings,
) -> None:
    """`out` (unique_id, key): the uncapped keys of the records of the prepared `delta_table`, with each
    word as rare as `word_counts` says (the store's counts, the delta's records already counted in)."""
    bound = settings.rare_word_max_records + 1
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE resolution_padded AS
WITH dw AS (SELECT word, count(*) AS n FROM ({words_sql(delta_table)}) GROUP BY word),
pad AS (SELECT dw.word, least(greatest(coalesce(w.n, 0) - dw.n, 0), {bound}) AS k
        FROM dw LEFT JOIN {word_counts} w USING (word))
SELECT * FROM {delta_table}
UNION ALL BY NAME
-- Ids no canonical id takes (a NUL byte): the padding's keys are dropped by them.
SELECT chr(0) || pad.word || chr(0) || r.range::VARCHAR AS unique_id, pad.word AS name
FROM pad, range(pad.k) r"""
    )
    _keys_by_id(con, "resolution_padded", out, _uncapped(settings), "NOT starts_with(n.unique_id, chr(0))")
    con.execute("DROP TABLE resolution_padded")
