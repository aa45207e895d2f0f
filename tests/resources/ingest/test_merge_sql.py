"""The merge's statements: each fresh-insert plan is built from the named parts, and nothing the database
receives carries a placeholder left for text surgery."""

from __future__ import annotations

import re

import pytest

from resources.ingest import merge_sql
from resources.ingest.merge_sql import (
    ALL_FRESH_PLAN,
    NO_FRESH_PLAN,
    ONLY_FRESH,
    ONLY_NOT_FRESH,
    SOME_FRESH_PLAN,
    EntityPlan,
    entity_plan,
)

STATEMENTS = {
    name: value
    for name, value in vars(merge_sql).items()
    if name.isupper() and isinstance(value, str) and name != "ENTITIES_CANONICAL_ID_KEY"
}
PLANS = {"none": NO_FRESH_PLAN, "all": ALL_FRESH_PLAN, "some": SOME_FRESH_PLAN}
PLAN_STATEMENTS = {
    f"{plan}.{part}": sql for plan, p in PLANS.items() for part, sql in p._asdict().items() if sql is not None
}


@pytest.mark.parametrize("name", [*STATEMENTS, *PLAN_STATEMENTS])
def test_no_statement_carries_a_placeholder_comment(name: str) -> None:
    statement = STATEMENTS.get(name) or PLAN_STATEMENTS[name]
    assert "/*" not in statement and "*/" not in statement
    # Only psycopg's named parameters, and only the ones the merge passes.
    assert set(re.findall(r"%\((\w+)\)s", statement)) <= {
        "source_key",
        "run_id",
        "file_id",
        "file_at",
        "transformation_version",
        "xid",
    }
    assert re.sub(r"%\(\w+\)s", "", statement).count("%") == 0


def test_the_plan_follows_how_many_kept_rows_are_fresh() -> None:
    assert entity_plan(fresh=0, kept=5) is NO_FRESH_PLAN
    assert entity_plan(fresh=0, kept=0) is NO_FRESH_PLAN
    assert entity_plan(fresh=5, kept=5) is ALL_FRESH_PLAN
    assert entity_plan(fresh=2, kept=5) is SOME_FRESH_PLAN


def test_no_fresh_rows_upserts_every_staged_row() -> None:
    assert EntityPlan(insert_fresh=None, upsert=merge_sql.upsert_entities()) == NO_FRESH_PLAN
    assert "WHERE EXISTS" not in NO_FRESH_PLAN.upsert and "WHERE NOT EXISTS" not in NO_FRESH_PLAN.upsert
    assert "RETURNING old.entity_id" in NO_FRESH_PLAN.upsert


def test_all_fresh_rows_are_plain_inserted_without_conflict_handling() -> None:
    assert EntityPlan(insert_fresh=merge_sql.insert_entities(), upsert=None) == ALL_FRESH_PLAN
    insert = ALL_FRESH_PLAN.insert_fresh
    assert insert.startswith("INSERT INTO canonical.entities (")
    assert insert.endswith("FROM staging_entities s")
    assert "ON CONFLICT" not in insert and "RETURNING" not in insert and "EXISTS" not in insert


def test_some_fresh_rows_split_by_the_claims_fresh_mark() -> None:
    insert, upsert = SOME_FRESH_PLAN
    assert insert == merge_sql.insert_entities(ONLY_FRESH) and insert.endswith(
        f"FROM staging_entities s {ONLY_FRESH}"
    )
    assert upsert == merge_sql.upsert_entities(ONLY_NOT_FRESH)
    assert f"FROM staging_entities s\n    {ONLY_NOT_FRESH}\n    ON CONFLICT (canonical_id)" in upsert
    assert (
        ONLY_FRESH
        == "WHERE EXISTS (SELECT 1 FROM staging_keep k WHERE k.canonical_id = s.canonical_id AND k.fresh)"
    )
    assert ONLY_FRESH.replace("WHERE EXISTS", "WHERE NOT EXISTS") == ONLY_NOT_FRESH


def test_every_upsert_takes_the_shared_set_list_and_the_version_rule() -> None:
    for upsert in (NO_FRESH_PLAN.upsert, SOME_FRESH_PLAN.upsert):
        assert (
            f"SET {merge_sql.ENTITY_UPDATE_SET}, version = e.version + 1, updated_at = now()\n"
            "        WHERE e.attributes_hash IS DISTINCT FROM EXCLUDED.attributes_hash"
        ) in upsert


def test_the_load_locks_differ_only_in_sharing() -> None:
    shared = merge_sql.CHUNKED_LOAD_LOCK.replace("pg_advisory_xact_lock(", "pg_advisory_xact_lock_shared(")
    assert shared == merge_sql.WHOLE_LOAD_LOCK
