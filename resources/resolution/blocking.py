"""Which pairs are compared at all: records that share a blocking key.

Every key is specific to one company, so a key's records stay few however large the store grows:
- the name within one edit: the name without spaces and each of its one-letter deletions (two names one
  insertion, deletion, substitution or transposition apart share one; a space moved, dropped or typed as a
  letter too, since spaces are gone first);
- the name's words in any order;
- the name's words but one, when what is left holds a rare word (a typo in any one word of a longer name,
  in any word order). Rare: in at most `rare_word_max_records` records of the store. Without that
  condition "smith foods" would be a key, and its block grows with the store;
- the web or e-mail domain (either field: one source has a contact's e-mail, the other the website);
- the phone number.

A key shared by more than `max_block_size` records is dropped (a switchboard, a parent's domain, a name
that many companies share): those records still meet through their other keys, and the comparisons grow
with the store rather than with its square.

The rarity of a word and the size of a block are properties of the whole store, so keys are computed over
the store, in an incremental run too.
"""

from __future__ import annotations

import duckdb

from resources.resolution.config import BlockingSettings

__all__ = ["BLOCK_KEYS_COLUMN", "add_block_keys", "block_keys_sql", "count_comparisons"]

BLOCK_KEYS_COLUMN = "block_keys"


ROW_ID = "rid"


def block_keys_sql(table: str, settings: BlockingSettings) -> str:
    """A SELECT of (rid, key) over the prepared `table` (with an integer `rid` per record): every
    record's blocking keys after the block-size cap, one row each. Keys are 64-bit hashes of the key's
    kind and text: a collision only ever adds a comparison. Records are named by their integer row id,
    not their text id: the distinct, grouping and joins over some twenty million keys at 1M records
    then hash and compare integers."""
    parts: list[str] = []
    if settings.name_within_one_edit:
        parts.append(
            """SELECT rid, hash('e:' || ns) AS key FROM nospace
  UNION ALL
  SELECT rid, hash('e:' || left(ns, i - 1) || substr(ns, i + 1)) AS key
  -- Deletions of a name of three letters or fewer would be two letters, common to many names.
  FROM (SELECT rid, ns, unnest(range(1, length(ns) + 1)) AS i FROM nospace WHERE length(ns) >= 4)"""
        )
    if settings.name_words:
        parts.append(
            f"SELECT rid, hash('s:' || name_sorted) AS key FROM {table} WHERE name_sorted IS NOT NULL"
        )
    if settings.name_all_but_one_word:
        parts.append(
            """SELECT r.rid,
         hash('w:' || array_to_string(list_sort(list_filter(r.words, lambda x: x <> w.word)), ' ')) AS key
  FROM words w JOIN record_words r USING (rid)
  WHERE len(r.words) >= 2 AND len(list_filter(r.rare, lambda x: x <> w.word)) > 0"""
        )
    if settings.domain:
        parts.append(
            f"""SELECT rid, hash('d:' || email_domain) AS key FROM {table} WHERE email_domain IS NOT NULL
  UNION ALL
  SELECT rid, hash('d:' || website) AS key FROM {table} WHERE website IS NOT NULL"""
        )
    if settings.phone:
        parts.append(f"SELECT rid, hash('p:' || phone) AS key FROM {table} WHERE phone IS NOT NULL")
    if not parts:
        return "SELECT CAST(NULL AS BIGINT) AS rid, CAST(NULL AS UBIGINT) AS key WHERE false"
    union = "\n  UNION ALL\n  ".join(parts)
    return f"""
WITH nospace AS (
  SELECT rid, replace(name, ' ', '') AS ns FROM {table} WHERE name IS NOT NULL
),
words AS (
  SELECT rid, unnest(list_distinct(string_split(name, ' '))) AS word FROM {table} WHERE name IS NOT NULL
),
word_records AS (
  SELECT word, count(*) AS n FROM words GROUP BY word
),
record_words AS (
  SELECT w.rid, list(w.word ORDER BY w.word) AS words,
         list(w.word ORDER BY w.word) FILTER (WHERE f.n <= {settings.rare_word_max_records}) AS rare
  FROM words w JOIN word_records f USING (word)
  GROUP BY w.rid
),
keys AS (
  SELECT DISTINCT rid, key FROM (
  {union}
  )
),
small AS (
  SELECT key FROM keys GROUP BY key HAVING count(*) <= {settings.max_block_size}
)
SELECT rid, key FROM keys SEMI JOIN small USING (key)
"""


def add_block_keys(con: duckdb.DuckDBPyConnection, table: str, settings: BlockingSettings) -> None:
    """Replace `table` with itself plus `block_keys` (a sorted list of the record's keys, empty when it
    has none), rows in unique_id order so that what samples it (Splink's u estimation) sees one order."""
    con.execute(
        f"""CREATE OR REPLACE TABLE {table} AS
SELECT row_number() OVER (ORDER BY unique_id) AS {ROW_ID}, * FROM {table}"""
    )
    con.execute(
        f"""CREATE OR REPLACE TABLE {table} AS
WITH k AS ({block_keys_sql(table, settings)}),
agg AS (SELECT {ROW_ID}, list_sort(list(key)) AS keys FROM k GROUP BY {ROW_ID})
SELECT t.*, coalesce(agg.keys, []::UBIGINT[]) AS {BLOCK_KEYS_COLUMN}
FROM {table} t LEFT JOIN agg USING ({ROW_ID})
ORDER BY t.{ROW_ID}"""
    )


def count_comparisons(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """The distinct pairs of `table` (with `block_keys`) that share a key: what the key rule compares."""
    rows = con.execute(
        f"""WITH k AS (SELECT unique_id, unnest({BLOCK_KEYS_COLUMN}) AS key FROM {table})
SELECT count(*) FROM (SELECT DISTINCT a.unique_id, b.unique_id FROM k a JOIN k b
  ON a.key = b.key AND a.unique_id < b.unique_id)"""
    ).fetchall()
    return int(rows[0][0])
