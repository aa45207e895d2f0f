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
