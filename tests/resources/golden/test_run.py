"""The run (resources/golden/run.py) against the real PostgreSQL: what an incremental run reads of the
previous membership."""

from __future__ import annotations

import math

import psycopg
import pytest

from resources.golden.run import incremental_scope, previous_around
from tests.support.golden import add_entities, clusters, membership, named, resolve
from tests.support.postgres import PgCluster

pytestmark = pytest.mark.integration


def test_an_incremental_run_reads_only_the_golden_entities_around_its_delta_and_gets_the_same_scope(
    db: PgCluster,
) -> None:
    add_entities(db.owner_url, named("crm_A", "erp_B", "crm_C", "crm_D", "erp_E", "crm_F", "legacy_X"))
    resolve(
        db.writer_url, clusters(["crm_A", "erp_B"], ["crm_C"], ["crm_D", "erp_E"], ["crm_F"]), run_id="r1"
    )
    # The new record joins A and C: A leaves B behind, C's golden entity is drawn in; D, E, F are untouched.
    new = clusters(["legacy_X", "crm_A", "crm_C"], ["erp_B"], ["crm_D", "erp_E"], ["crm_F"])
    with psycopg.connect(db.writer_url) as conn:
        around = previous_around(conn, new, ["legacy_X"])
    whole = membership(db.owner_url)
    assert incremental_scope(new, around, ["legacy_X"]) == incremental_scope(new, whole, ["legacy_X"])
    assert incremental_scope(new, around, ["legacy_X"]) == {"legacy_X", "crm_A", "crm_C", "erp_B"}
    assert set(around) == {"crm_A", "erp_B", "crm_C"}


def test_a_chain_of_golden_entities_and_clusters_is_followed_to_its_end(db: PgCluster) -> None:
    add_entities(db.owner_url, named("crm_1", "crm_2", "crm_3", "crm_4", "crm_5", "crm_6", "legacy_N"))
    resolve(db.writer_url, clusters(["crm_1", "crm_2"], ["crm_3", "crm_4"], ["crm_5", "crm_6"]), run_id="r1")
    # Each new cluster straddles two previous golden entities: the closure walks 1-2, 2-3, 3-4, 4-5.
    new = clusters(["legacy_N", "crm_1"], ["crm_2", "crm_3"], ["crm_4", "crm_5"], ["crm_6"])
    with psycopg.connect(db.writer_url) as conn:
        around = previous_around(conn, new, ["legacy_N"])
    whole = membership(db.owner_url)
    assert incremental_scope(new, around, ["legacy_N"]) == incremental_scope(new, whole, ["legacy_N"])
    assert around == whole


def test_the_stored_pairs_come_back_as_the_engines_pairs_with_each_comparisons_weight(db: PgCluster) -> None:
    from resources.golden.run import stored_pairs
    from resources.golden.store import ScoredPair
    from resources.resolution.model import prior_weight, shipped_model

    add_entities(db.owner_url, named("crm_A", "erp_B", "legacy_C"))
    pairs = [
        ScoredPair("crm_A", "erp_B", 9.5, 0.998, {"name": 6.25, "country": 3.25}),
        ScoredPair("erp_B", "legacy_C", 1.5, 0.7, {"name": 1.5}),
    ]
    resolve(db.writer_url, clusters(["crm_A", "erp_B"], ["legacy_C"]), run_id="r1", pairs=pairs)
    model = shipped_model()
    with psycopg.connect(db.writer_url) as conn:
        frame = stored_pairs(conn, model).sort_values("canonical_id_l").reset_index(drop=True)
    assert list(frame.columns[:5]) == [
        "canonical_id_l",
        "canonical_id_r",
        "evidence_weight",
        "match_weight",
        "match_probability",
    ]
    assert frame["canonical_id_l"].tolist() == ["crm_A", "erp_B"]
    assert frame["evidence_weight"].tolist() == [9.5 - prior_weight(model), 1.5 - prior_weight(model)]
    assert frame["w_name"].tolist() == [6.25, 1.5]
    assert frame["w_country"].iloc[0] == 3.25 and math.isnan(frame["w_country"].iloc[1])


def test_the_neighbourhood_follows_strong_stored_and_new_pairs_and_must_links_and_stops_at_weak_ones(
    db: PgCluster,
) -> None:
    import pandas as pd

    from resources.golden.neighbourhood import Neighbourhood
    from resources.golden.store import ScoredPair
    from resources.resolution.config import ResolutionConfig
    from resources.resolution.model import prior_weight, shipped_model

    model = shipped_model()
    config = ResolutionConfig()
    strong = config.thresholds.upper + prior_weight(model) + 1.0
    weak = config.thresholds.lower + prior_weight(model) + 0.1
    add_entities(
        db.owner_url, named("crm_A", "erp_B", "crm_C", "erp_D", "crm_E", "erp_F", "crm_G", "legacy_X")
    )
    # A-B strong, B-C strong (a chain a delta on A reaches whole), C-D weak (a far end, not a member),
    # E-F strong (reached only through a new pair X-E), G alone (reached by a steward's must-link with F).
    stored = [
        ScoredPair("crm_A", "erp_B", strong, 0.99, {}),
        ScoredPair("crm_C", "erp_B", strong, 0.99, {}),
        ScoredPair("crm_C", "erp_D", weak, 0.5, {}),
        ScoredPair("crm_E", "erp_F", strong, 0.99, {}),
    ]
    resolve(
        db.writer_url,
        clusters(["crm_A", "erp_B", "crm_C"], ["erp_D"], ["crm_E", "erp_F"], ["crm_G"]),
        run_id="r1",
        pairs=stored,
    )
    new = pd.DataFrame(
        {
            "canonical_id_l": ["crm_E"],
            "canonical_id_r": ["legacy_X"],
            "evidence_weight": [config.thresholds.upper + 2.0],
        }
    )
    with psycopg.connect(db.writer_url) as conn:
        hood = Neighbourhood(conn, model, config, [("crm_G", "erp_F")])
        ids, pairs = hood(new, {"crm_A", "legacy_X"})
    assert ids == {"crm_A", "erp_B", "crm_C", "legacy_X", "crm_E", "erp_F", "crm_G"}
    assert sorted(zip(pairs["canonical_id_l"], pairs["canonical_id_r"], strict=True)) == sorted(
        (p.canonical_id_l, p.canonical_id_r) for p in stored
    )


def test_retraining_on_a_store_too_small_to_train_on_is_not_resolved_with_splinks_reason(
    db: PgCluster,
) -> None:
    from resources.golden.run import NotResolved, resolve_store
    from resources.resolution.config import ResolutionConfig

    add_entities(db.owner_url, named("crm_A", "erp_B", "legacy_C"))
    with psycopg.connect(db.writer_url) as conn:
        out = resolve_store(conn, ResolutionConfig(), run_id="tiny", mode="full", retrain=True)
    assert isinstance(out, NotResolved)
    assert out.reason.startswith("the model was refused: training failed: "), out.reason
    assert membership(db.owner_url) == {}
