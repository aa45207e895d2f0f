"""Clustering scored pairs: thresholds, constraints and steward decisions, without the model."""

from __future__ import annotations

import pandas as pd

from resources.resolution.clusters import Decision, cluster_pairs
from resources.resolution.config import ResolutionConfig

CONFIG = ResolutionConfig()
UP = CONFIG.thresholds.upper


def _pairs(*rows: tuple[str, str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [(a, b, w, 0.99) for a, b, w in rows],
        columns=["canonical_id_l", "canonical_id_r", "evidence_weight", "match_probability"],
    )


SOURCES = {
    "crm_1": "crm",
    "crm_2": "crm",
    "erp_1": "erp",
    "erp_2": "erp",
    "legacy_1": "legacy",
    "legacy_2": "legacy",
}


def test_every_entity_gets_a_cluster_key_singletons_their_own_id() -> None:
    out = cluster_pairs(SOURCES, SOURCES, _pairs(("crm_1", "erp_1", UP + 5)), CONFIG)
    assert out.clusters == {
        "crm_1": "crm_1", "erp_1": "crm_1", "crm_2": "crm_2", "erp_2": "erp_2", "legacy_1": "legacy_1",
        "legacy_2": "legacy_2",
    }  # fmt: skip


def test_a_pair_in_the_review_band_is_not_linked_but_listed_for_review() -> None:
    out = cluster_pairs(SOURCES, SOURCES, _pairs(("crm_1", "erp_1", UP - 1)), CONFIG)
    assert out.clusters["erp_1"] == "erp_1"
    assert out.review[["canonical_id_l", "canonical_id_r", "reason"]].values.tolist() == [
        ["crm_1", "erp_1", "review band"]
    ]


def test_a_parent_link_keeps_child_and_parent_apart_whatever_the_score() -> None:
    out = cluster_pairs(
        SOURCES, SOURCES, _pairs(("erp_1", "erp_2", 99.0)), CONFIG, parents=[("erp_2", "erp_1")]
    )
    assert out.clusters["erp_2"] == "erp_2"
    assert out.review.empty


def test_a_parent_link_also_bars_the_child_from_its_parents_cluster() -> None:
    pairs = _pairs(("crm_1", "erp_1", UP + 10), ("crm_1", "erp_2", UP + 2))
    out = cluster_pairs(SOURCES, SOURCES, pairs, CONFIG, parents=[("erp_2", "erp_1")])
    assert out.clusters["crm_1"] == out.clusters["erp_1"] != out.clusters["erp_2"]


def test_two_ids_of_a_source_that_does_not_duplicate_itself_need_a_very_strong_score() -> None:
    weak = cluster_pairs(SOURCES, SOURCES, _pairs(("erp_1", "erp_2", UP + 1)), CONFIG)
    assert weak.clusters["erp_2"] == "erp_2"
    assert weak.review["reason"].tolist() == ["same source"]
    strong = cluster_pairs(
        SOURCES, SOURCES, _pairs(("erp_1", "erp_2", CONFIG.thresholds.same_source_link)), CONFIG
    )
    assert strong.clusters["erp_2"] == "erp_1"


def test_two_ids_of_a_source_that_duplicates_itself_link_like_any_pair() -> None:
    out = cluster_pairs(SOURCES, SOURCES, _pairs(("crm_1", "crm_2", UP + 1)), CONFIG)
    assert out.clusters["crm_2"] == "crm_1"


def test_one_edge_does_not_chain_two_clusters_whose_other_members_are_unlinked() -> None:
    # crm_1-erp_1 and crm_2-legacy_2 are two firm pairs; a single edge between them, with no other cross
    # pair linked, does not make them one company.
    pairs = _pairs(("crm_1", "erp_1", UP + 20), ("crm_2", "legacy_2", UP + 20), ("erp_1", "legacy_2", UP + 1))
    out = cluster_pairs(SOURCES, SOURCES, pairs, CONFIG)
    assert out.clusters["crm_1"] == out.clusters["erp_1"] != out.clusters["legacy_2"] == out.clusters["crm_2"]
    assert out.review["reason"].tolist() == ["weak link between clusters"]


def test_clusters_whose_cross_pairs_are_mostly_linked_merge() -> None:
    pairs = _pairs(("crm_1", "erp_1", UP + 20), ("crm_1", "legacy_1", UP + 1), ("erp_1", "legacy_1", UP + 1))
    out = cluster_pairs(SOURCES, SOURCES, pairs, CONFIG)
    assert out.clusters["legacy_1"] == out.clusters["erp_1"] == "crm_1"


def test_steward_decisions_win_over_the_model() -> None:
    pairs = _pairs(("crm_1", "erp_1", UP + 20))
    apart = cluster_pairs(
        SOURCES, SOURCES, pairs, CONFIG, decisions=[Decision("erp_1", "crm_1", "cannot_link")]
    )
    assert apart.clusters["erp_1"] == "erp_1" and apart.review.empty
    together = cluster_pairs(
        SOURCES, SOURCES, _pairs(), CONFIG, decisions=[Decision("crm_2", "legacy_2", "must_link")]
    )
    assert together.clusters["legacy_2"] == "crm_2"


def test_a_must_link_that_contradicts_a_cannot_link_is_refused_and_reported() -> None:
    out = cluster_pairs(
        SOURCES,
        SOURCES,
        _pairs(),
        CONFIG,
        decisions=[Decision("crm_1", "erp_1", "cannot_link"), Decision("crm_1", "erp_1", "must_link")],
    )
    assert out.clusters["erp_1"] == "erp_1"
    assert len(out.conflicts) == 1


def test_the_same_pairs_in_another_order_give_the_same_clusters() -> None:
    rows = [
        ("crm_1", "erp_1", UP + 3),
        ("erp_1", "legacy_1", UP + 3),
        ("crm_1", "legacy_1", UP + 3),
        ("crm_2", "erp_2", UP),
    ]
    a = cluster_pairs(SOURCES, SOURCES, _pairs(*rows), CONFIG)
    b = cluster_pairs(SOURCES, SOURCES, _pairs(*reversed(rows)), CONFIG)
    assert a.clusters == b.clusters


def test_a_record_that_reaches_only_one_member_of_a_linked_pair_does_not_join_it() -> None:
    # legacy_1 is one edit from crm_1's name but not from erp_1's: half the cross pairs, not more.
    pairs = _pairs(("crm_1", "erp_1", UP + 20), ("crm_1", "legacy_1", UP + 1))
    out = cluster_pairs(SOURCES, SOURCES, pairs, CONFIG)
    assert out.clusters["crm_1"] == out.clusters["erp_1"] != out.clusters["legacy_1"]
    assert out.review["reason"].tolist() == ["weak link between clusters"]
