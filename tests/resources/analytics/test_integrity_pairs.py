"""data_integrity_analysis reads the entity resolution's scored pairs (golden.pairs), written here through
the real golden store from pairs and clusterings the tests construct, as the matching engine hands them
over."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest

from resources.analytics import run_operation
from resources.analytics.integrity import DATA_INTEGRITY, NO_RESOLUTION
from resources.golden.queries import record_decision
from tests.support.golden import add_entities, clusters, pair, resolve

pytestmark = pytest.mark.integration

RECORDS = [
    {"canonical_id": "crm_C1", "name": "Tech Corp Global", "revenue": 2_500_000, "employees": 120},
    {"canonical_id": "legacy_L1", "name": "TECH CORP GLOBAL", "revenue": 2_500_000, "employees": 118},
    {"canonical_id": "crm_C2", "name": "Retail Masters Inc", "revenue": 850_000, "employees": 45},
    {"canonical_id": "erp_E2", "name": "Retail Masters", "revenue": 800_000},
    {"canonical_id": "crm_C3", "name": "Blue River Foods", "revenue": 100},
    {"canonical_id": "crm_C4", "name": "Blue River Food", "revenue": 0},
]


def answer(url: str, **params: Any) -> list[dict[str, Any]]:
    res = run_operation(url, "data_integrity_analysis", params)
    assert not res.notes
    return [dict(zip(res.columns, r, strict=True)) for r in res.rows]


def seed(db: Any) -> None:
    add_entities(db.owner_url, RECORDS)
    resolve(
        db.writer_url,
        clusters(["crm_C1", "legacy_L1"], ["crm_C2"], ["erp_E2"], ["crm_C3"], ["crm_C4"]),
        run_id="r1",
        pairs=[
            pair("legacy_L1", "crm_C1", weight=22.0, probability=0.999),
            pair("crm_C2", "erp_E2", weight=11.0, probability=0.8),
            pair("crm_C3", "crm_C4", weight=9.0, probability=0.5),
        ],
        review=[("erp_E2", "crm_C2"), ("crm_C3", "crm_C4")],
    )


def test_integrity_reports_the_resolutions_pairs_most_probable_first_with_linked_and_review_status(
    db,
) -> None:
    seed(db)
    rows = answer(db.reader_url, min_similarity=0.3, limit=10)
    assert [(r["a_id"], r["b_id"]) for r in rows] == [
        ("crm_C1", "legacy_L1"),
        ("crm_C2", "erp_E2"),
        ("crm_C3", "crm_C4"),
    ]
    tech, retail, foods = rows
    assert (tech["a_system"], tech["b_system"], tech["a_name"], tech["b_name"]) == (
        "crm",
        "legacy",
        "Tech Corp Global",
        "TECH CORP GLOBAL",
    )
    assert (tech["linked"], tech["in_review"], tech["recommended_action"], tech["confidence"]) == (
        True,
        False,
        "merge",
        "high",
    )
    assert tech["a_golden_id"] == tech["b_golden_id"] is not None
    assert float(tech["match_score"]) == 0.999 and tech["match_probability"] == 0.999
    assert tech["match_weight"] == 22.0 and tech["evidence"] == {"name": 11.0, "country": 11.0}
    # The names' pg_trgm similarity and the figures' agreement, as the old answer gave them.
    assert float(tech["name_similarity"]) == 1.0
    assert float(tech["revenue_match"]) == 1.0 and float(tech["employees_match"]) == pytest.approx(
        0.983, abs=1e-3
    )
    assert (retail["linked"], retail["in_review"], retail["band"], retail["recommended_action"]) == (
        False,
        True,
        "review",
        "review",
    )
    assert (retail["confidence"], float(retail["revenue_match"]), retail["employees_match"]) == (
        "medium",
        pytest.approx(0.941, abs=1e-3),
        None,
    )
    assert (foods["confidence"], float(foods["revenue_match"])) == ("low", 0.0)


def test_min_similarity_is_the_smallest_match_probability_and_limit_bounds_the_pairs(db) -> None:
    seed(db)
    assert [r["b_id"] for r in answer(db.reader_url, min_similarity=0.6, limit=10)] == ["legacy_L1", "erp_E2"]
    assert [r["b_id"] for r in answer(db.reader_url, min_similarity=0.3, limit=1)] == ["legacy_L1"]
    assert answer(db.reader_url, min_similarity=1.0) == []


def test_a_steward_decision_takes_the_pair_out_of_review(db) -> None:
    seed(db)
    with psycopg.connect(db.writer_url) as conn:
        record_decision(
            conn, kind="not_same", canonical_id="crm_C2", other_canonical_id="erp_E2", decided_by="t"
        )
    retail = next(r for r in answer(db.reader_url, min_similarity=0.3) if r["b_id"] == "erp_E2")
    assert (retail["in_review"], retail["recommended_action"]) == (False, "keep_separate")


def test_without_a_resolution_the_answer_is_no_pairs_and_a_note(db) -> None:
    add_entities(db.owner_url, RECORDS)
    res = run_operation(db.reader_url, "data_integrity_analysis", {})
    assert res.rows == [] and res.notes == (NO_RESOLUTION,)
    assert res.columns[:3] == ["a_id", "a_system", "a_name"] and "linked" in res.columns


def test_the_pairs_are_read_by_a_range_scan_of_their_order_index_stopped_at_the_limit(db) -> None:
    seed(db)
    params = {"min_probability": 0.6, "limit": 2, "high": 0.85, "medium": 0.7}
    with psycopg.connect(db.owner_url) as conn:
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN (ANALYZE, COSTS OFF) " + DATA_INTEGRITY, params))
        conn.rollback()
    assert re.search(r"Index Scan using pairs_probability_idx on pairs", plan), plan
    assert not re.search(r"Seq Scan on (entities|pairs|members)", plan), plan


def test_the_name_trigram_indexes_are_gone_and_pg_trgm_stays(db) -> None:
    with psycopg.connect(db.owner_url) as conn:
        names = {
            r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'canonical'")
        }
        extension = conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'").fetchone()
    assert not {"entities_name_trgm", "entities_name_trgm_erp", "entities_name_trgm_legacy"} & names
    assert extension == (1,)
