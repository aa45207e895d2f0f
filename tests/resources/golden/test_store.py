"""The golden store's writer (resources/golden/store.py) against the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest

from resources.golden.decisions import Link
from resources.golden.store import (
    active_model,
    model_version_of,
    save_model,
    steward_constraints,
    stored_model,
)
from tests.support.golden import add_entities, clusters, history, membership, named, pair, resolve
from tests.support.postgres import PgCluster

pytestmark = pytest.mark.integration

ABC = ("crm_A", "erp_B", "legacy_C")


def test_the_first_resolution_gives_every_record_a_golden_id_singletons_too(db: PgCluster) -> None:
    add_entities(db.owner_url, named(*ABC, "crm_D"))
    summary = resolve(db.writer_url, clusters(ABC, ["crm_D"]), run_id="r1", pairs=[pair("crm_A", "erp_B")])
    assert membership(db.owner_url) == {"crm_A": "G1", "erp_B": "G1", "legacy_C": "G1", "crm_D": "G2"}
    assert (summary.ids_created, summary.records_written, summary.pairs) == (2, 2, 1)
    assert [(h[1], h[2], sorted(h[4])) for h in history(db.owner_url)] == [
        ("new", "G1", list(ABC)),
        ("new", "G2", ["crm_D"]),
    ]


def test_writing_the_same_clustering_twice_changes_no_id_and_writes_no_history(db: PgCluster) -> None:
    add_entities(db.owner_url, named(*ABC, "crm_D"))
    resolve(db.writer_url, clusters(ABC, ["crm_D"]), run_id="r1")
    before = membership(db.owner_url)
    rows = len(history(db.owner_url))
    # The engine's cluster keys differ from run to run; the partition is what counts.
    again = resolve(
        db.writer_url, {c: f"other-{k}" for c, k in clusters(ABC, ["crm_D"]).items()}, run_id="r2"
    )
    assert membership(db.owner_url) == before
    assert len(history(db.owner_url)) == rows
    assert (again.ids_created, again.ids_retired, again.members_moved, again.records_written) == (0, 0, 0, 0)


def test_a_merge_keeps_the_larger_clusters_id_and_retires_the_other(db: PgCluster) -> None:
    add_entities(db.owner_url, named(*ABC, "crm_D"))
    resolve(db.writer_url, clusters(["crm_A", "erp_B"], ["legacy_C"], ["crm_D"]), run_id="r1")
    assert membership(db.owner_url)["legacy_C"] == "G3"  # numbered in the order of the smallest record
    summary = resolve(
        db.writer_url,
        clusters(ABC, ["crm_D"]),
        run_id="r2",
        pairs=[pair("erp_B", "legacy_C", 9.5, 0.997), pair("crm_A", "legacy_C", 4.0, 0.9)],
    )
    assert membership(db.owner_url) == {"crm_A": "G1", "erp_B": "G1", "legacy_C": "G1", "crm_D": "G2"}
    assert (summary.ids_created, summary.ids_retired, summary.members_moved) == (0, 1, 1)
    r2 = [h for h in history(db.owner_url) if h[0] == "r2"]
    assert [(h[1], h[2], h[3], h[4]) for h in r2] == [
        ("merge", "G1", "G3", ["legacy_C"]),
        ("retired", "G3", "G1", []),
    ]
    assert r2[0][5]["pair"] == ["erp_B", "legacy_C"] and r2[0][5]["match_weight"] == 9.5
    with psycopg.connect(db.owner_url) as conn:
        status, successor, count = conn.execute(
            "SELECT status, successor_id, member_count FROM golden.entities WHERE golden_id = 'G3'"
        ).fetchone()  # type: ignore[misc]
        assert (status, successor, count) == ("retired", "G1", 0)
        assert conn.execute("SELECT member_count FROM golden.entities WHERE golden_id = 'G1'").fetchone() == (
            3,
        )


def test_a_split_keeps_the_id_on_the_larger_part_and_gives_the_other_a_new_one(db: PgCluster) -> None:
    add_entities(db.owner_url, named(*ABC, "crm_D"))
    resolve(db.writer_url, clusters([*ABC, "crm_D"]), run_id="r1")
    summary = resolve(
        db.writer_url,
        clusters(["crm_A", "erp_B", "legacy_C"], ["crm_D"]),
        run_id="r2",
        pairs=[pair("crm_A", "crm_D", 1.0, 0.6)],
    )
    assert membership(db.owner_url) == {"crm_A": "G1", "erp_B": "G1", "legacy_C": "G1", "crm_D": "G2"}
    assert summary.ids_created == 1
    (split,) = [h for h in history(db.owner_url) if h[0] == "r2"]
    assert (split[1], split[2], split[3], split[4]) == ("split", "G2", "G1", ["crm_D"])
    assert split[5]["rule"] == "not_linked" and split[5]["match_probability"] == 0.6


def test_history_says_when_which_run_and_why(db: PgCluster) -> None:
    add_entities(db.owner_url, named("crm_A", "erp_B"))
    resolve(db.writer_url, clusters(["crm_A"], ["erp_B"]), run_id="r1")
    resolve(db.writer_url, clusters(["crm_A", "erp_B"]), run_id="r2", pairs=[pair("crm_A", "erp_B")])
    with psycopg.connect(db.owner_url) as conn:
        rows = conn.execute(
            """SELECT h.run_id, h.at, r.started_at, r.finished_at, h.reason FROM golden.history h
               JOIN golden.runs r USING (run_id) WHERE h.kind = 'merge'"""
        ).fetchall()
    ((run, at, started, finished, reason),) = rows
    assert run == "r2" and started <= at <= finished
    assert reason["rule"] == "linked" and reason["pair"] == ["crm_A", "erp_B"]


def test_retired_ids_are_never_given_again(db: PgCluster) -> None:
    add_entities(db.owner_url, named("crm_A", "erp_B"))
    resolve(db.writer_url, clusters(["crm_A"], ["erp_B"]), run_id="r1")
    resolve(db.writer_url, clusters(["crm_A", "erp_B"]), run_id="r2")  # G2 retires
    resolve(db.writer_url, clusters(["crm_A"], ["erp_B"]), run_id="r3")  # split again: a new id
    assert membership(db.owner_url) == {"crm_A": "G1", "erp_B": "G3"}


def test_the_golden_record_follows_survivorship_and_names_its_sources(db: PgCluster) -> None:
    add_entities(
        db.owner_url,
        [
            {"canonical_id": "crm_A", "name": "Acme", "industry": None, "attributes": {"email": "a@acme.io"}},
            {"canonical_id": "legacy_C", "name": "ACME LTD", "industry": "Retail", "revenue": 10},
        ],
    )
    resolve(db.writer_url, clusters(["crm_A", "legacy_C"]), run_id="r1")
    with psycopg.connect(db.owner_url) as conn:
        name, industry, revenue, email, lineage = conn.execute(
            "SELECT name, industry, revenue, email, lineage FROM golden.entities WHERE golden_id = 'G1'"
        ).fetchone()  # type: ignore[misc]
    assert (name, industry, revenue, email) == ("Acme", "Retail", Decimal(10), "a@acme.io")
    assert lineage == {"name": "crm_A", "industry": "legacy_C", "revenue": "legacy_C", "email": "crm_A"}


def test_a_members_changed_content_rebuilds_only_its_record(db: PgCluster) -> None:
    add_entities(db.owner_url, named("crm_A", "erp_B", "legacy_C"))
    resolve(db.writer_url, clusters(["crm_A", "erp_B"], ["legacy_C"]), run_id="r1")
    add_entities(db.owner_url, [{"canonical_id": "crm_A", "name": "Renamed"}])
    summary = resolve(db.writer_url, clusters(["crm_A", "erp_B"], ["legacy_C"]), run_id="r2")
    assert summary.records_written == 1
    with psycopg.connect(db.owner_url) as conn:
        assert conn.execute("SELECT name FROM golden.entities WHERE golden_id = 'G1'").fetchone() == (
            "Renamed",
        )
        assert conn.execute(
            "SELECT updated_run_id FROM golden.entities WHERE golden_id = 'G2'"
        ).fetchone() == ("r1",)
    assert not [h for h in history(db.owner_url) if h[0] == "r2"]


def test_a_deleted_member_stops_contributing_to_the_record(db: PgCluster) -> None:
    add_entities(
        db.owner_url, [{"canonical_id": "crm_A", "name": "Old"}, {"canonical_id": "legacy_C", "name": "Kept"}]
    )
    resolve(db.writer_url, clusters(["crm_A", "legacy_C"]), run_id="r1")
    add_entities(db.owner_url, [{"canonical_id": "crm_A", "name": "Old", "status": "deleted"}])
    resolve(db.writer_url, clusters(["crm_A", "legacy_C"]), run_id="r2")
    with psycopg.connect(db.owner_url) as conn:
        assert conn.execute("SELECT name FROM golden.entities WHERE golden_id = 'G1'").fetchone() == ("Kept",)


def test_an_incremental_run_touches_only_the_affected_golden_entities(db: PgCluster) -> None:
    add_entities(db.owner_url, named("crm_A", "erp_B", "legacy_C", "crm_D", "crm_E"))
    resolve(
        db.writer_url,
        clusters(["crm_A", "erp_B"], ["legacy_C"], ["crm_D", "crm_E"]),
        run_id="r1",
        pairs=[pair("crm_A", "erp_B"), pair("crm_D", "crm_E")],
    )
    add_entities(db.owner_url, named("erp_F"))
    # The engine re-resolved legacy_C and the new erp_F only: they match.
    summary = resolve(
        db.writer_url,
        clusters(["legacy_C", "erp_F"]),
        run_id="r2",
        mode="incremental",
        pairs=[pair("erp_F", "legacy_C")],
    )
    assert membership(db.owner_url) == {
        "crm_A": "G1",
        "erp_B": "G1",
        "crm_D": "G2",
        "crm_E": "G2",
        "legacy_C": "G3",
        "erp_F": "G3",
    }
    assert summary.records_written == 1
    with psycopg.connect(db.owner_url) as conn:
        pairs = conn.execute("SELECT canonical_id_l, canonical_id_r FROM golden.pairs ORDER BY 1").fetchall()
    assert pairs == [("crm_A", "erp_B"), ("crm_D", "crm_E"), ("erp_F", "legacy_C")]


def test_an_incremental_run_keeps_unresolved_members_of_a_touched_entity_together(db: PgCluster) -> None:
    add_entities(db.owner_url, named("crm_A", "erp_B", "legacy_C"))
    resolve(db.writer_url, clusters(["crm_A", "erp_B", "legacy_C"]), run_id="r1")
    # Only crm_A came back from the engine, on its own: it leaves; erp_B and legacy_C stay as they were.
    resolve(db.writer_url, clusters(["crm_A"]), run_id="r2", mode="incremental")
    assert membership(db.owner_url) == {"crm_A": "G2", "erp_B": "G1", "legacy_C": "G1"}


def test_review_band_pairs_are_stored_with_their_band_and_comparison_weights(db: PgCluster) -> None:
    add_entities(db.owner_url, named(*ABC))
    resolve(
        db.writer_url,
        clusters(["crm_A", "erp_B"], ["legacy_C"]),
        run_id="r1",
        pairs=[pair("erp_B", "crm_A", 9.0, 0.998), pair("legacy_C", "crm_A", 2.0, 0.7)],
        review=[("legacy_C", "crm_A")],
    )
    with psycopg.connect(db.owner_url) as conn:
        rows = conn.execute(
            "SELECT canonical_id_l, canonical_id_r, band, comparisons FROM golden.pairs ORDER BY match_weight DESC"
        ).fetchall()
        queue = conn.execute("SELECT canonical_id_l, canonical_id_r FROM golden.review_queue").fetchall()
    assert rows == [
        ("crm_A", "erp_B", "auto", {"name": 4.5, "country": 4.5}),
        ("crm_A", "legacy_C", "review", {"name": 1.0, "country": 1.0}),
    ]
    assert queue == [("crm_A", "legacy_C")]


def record_decision(
    url: str, kind: str, l_id: str, r_id: str | None, *, apart: list[str] | None = None
) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            """INSERT INTO golden.decisions (kind, canonical_id_l, canonical_id_r, apart_from, decided_by)
               VALUES (%s, %s, %s, %s, 'steward-key')""",
            (kind, l_id, r_id, apart or []),
        )


def test_steward_decisions_win_over_the_clustering_the_model_gave(db: PgCluster) -> None:
    add_entities(db.owner_url, named(*ABC, "crm_D"))
    resolve(db.writer_url, clusters(["crm_A", "erp_B"], ["legacy_C"], ["crm_D"]), run_id="r1")
    record_decision(db.owner_url, "not_same", "crm_A", "erp_B")
    record_decision(db.owner_url, "same", "crm_D", "legacy_C")
    # The model still says A and B match and C, D do not.
    resolve(db.writer_url, clusters(["crm_A", "erp_B"], ["legacy_C"], ["crm_D"]), run_id="r2")
    m = membership(db.owner_url)
    assert m["crm_A"] != m["erp_B"]
    assert m["crm_D"] == m["legacy_C"]
    reasons = [h[5] for h in history(db.owner_url) if h[0] == "r2" and h[1] in ("merge", "split")]
    assert reasons and all(r["steward"]["decided_by"] == "steward-key" for r in reasons)


def test_a_member_moved_out_leaves_its_golden_entity_and_stays_out(db: PgCluster) -> None:
    add_entities(db.owner_url, named(*ABC))
    resolve(db.writer_url, clusters(ABC), run_id="r1")
    record_decision(db.owner_url, "move_out", "legacy_C", None, apart=["crm_A", "erp_B"])
    resolve(db.writer_url, clusters(ABC), run_id="r2")
    assert membership(db.owner_url) == {"crm_A": "G1", "erp_B": "G1", "legacy_C": "G2"}


def test_the_latest_decision_on_a_pair_is_the_one_the_engine_gets(db: PgCluster) -> None:
    record_decision(db.owner_url, "same", "crm_A", "erp_B")
    record_decision(db.owner_url, "not_same", "crm_A", "erp_B")
    record_decision(db.owner_url, "move_out", "legacy_C", None, apart=["crm_A"])
    with psycopg.connect(db.writer_url) as conn:
        constraints = steward_constraints(conn)
    must, cannot = constraints.pairs()
    assert must == []
    assert cannot == [("crm_A", "erp_B"), ("crm_A", "legacy_C")]
    assert isinstance(constraints.cannot_link[1], Link) and constraints.cannot_link[1].leaving == "legacy_C"


def test_a_model_is_stored_once_per_content_and_one_is_active(db: PgCluster) -> None:
    params = {"m": 0.9, "u": {"name": [0.1, 0.2]}}
    with psycopg.connect(db.writer_url) as conn:
        v1 = save_model(conn, params, trained_at=datetime(2026, 1, 1, tzinfo=UTC))
        assert save_model(conn, dict(reversed(list(params.items())))) == v1 == model_version_of(params)
        v2 = save_model(conn, {**params, "m": 0.8})
        active = active_model(conn)
        assert active is not None and active.model_version == v2
        old = stored_model(conn, v1)
        assert old is not None and old.parameters == params
        assert conn.execute("SELECT count(*) FROM golden.models WHERE active").fetchone() == (1,)


def test_the_run_is_recorded_with_its_mode_model_and_counts(db: PgCluster) -> None:
    add_entities(db.owner_url, named(*ABC))
    resolve(
        db.writer_url, clusters(ABC), run_id="r1", pairs=[pair("crm_A", "erp_B")], review=[("crm_A", "erp_B")]
    )
    with psycopg.connect(db.owner_url) as conn:
        row = conn.execute(
            """SELECT mode, model_version, finished_at IS NOT NULL, entities, clusters, pairs, review_pairs,
                      ids_created, records_written FROM golden.runs WHERE run_id = 'r1'"""
        ).fetchone()
    assert row == ("full", "m1", True, 3, 1, 1, 1, 1, 1)


def test_the_reader_role_reads_golden_tables_and_cannot_write_them(db: PgCluster) -> None:
    with psycopg.connect(db.reader_url) as conn:
        conn.execute("SELECT * FROM golden.entities, golden.members, golden.review_queue LIMIT 1")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO golden.runs (run_id, mode, started_at) VALUES ('x', 'full', now())")
