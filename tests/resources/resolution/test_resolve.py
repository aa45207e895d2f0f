"""resolve() end to end on the three sample files plus a few hundred generated records: one model trained
once for the module, then the behaviours the golden store relies on."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bench.resolution_data import generate
from resources.canonical.mapping import map_record
from resources.canonical.model import CanonicalRecord
from resources.resolution.clusters import Decision
from resources.resolution.config import ResolutionConfig, TrainingSettings
from resources.resolution.inputs import frame_from_rows
from resources.resolution.model import MatchModel, check_model, match_weights, shipped_model
from resources.resolution.normalise import normalise_name
from resources.resolution.resolve import ModelRefused, Resolution, resolve
from resources.settings import PROJECT_ROOT

SAMPLES = Path(PROJECT_ROOT) / "samples"
CONFIG = ResolutionConfig(training=TrainingSettings(u_max_pairs=3e4))


def _sample_records() -> list[CanonicalRecord]:
    raw: list[tuple[str, Any]] = [
        ("crm", r) for r in json.loads((SAMPLES / "crm-data" / "customer-data.json").read_text())["records"]
    ]
    raw += [("erp", r) for r in json.loads((SAMPLES / "erp-data" / "erp-accounts.json").read_text())]
    lines = (SAMPLES / "legacy-data" / "legacy-companies.ndjson").read_text().splitlines()
    raw += [("legacy", json.loads(line)) for line in lines if line.strip()]
    mapped = [map_record(source, record) for source, record in raw]
    return [m for m in mapped if isinstance(m, CanonicalRecord)]


@pytest.fixture(scope="module")
def entities() -> pd.DataFrame:
    samples = frame_from_rows(asdict(r) for r in _sample_records())
    generated = generate(400, seed=11).records.drop(columns=["entity_id"])
    return pd.concat([samples, generated], ignore_index=True)


@pytest.fixture(scope="module")
def resolved(entities: pd.DataFrame) -> Resolution:
    out = resolve(entities, CONFIG)
    assert isinstance(out, Resolution), getattr(out, "reasons", None)
    return out


def test_tech_corp_global_from_three_systems_is_one_cluster_and_its_subsidiary_another(
    resolved: Resolution,
) -> None:
    c = resolved.clusters
    assert c["crm_CUST-1001"] == c["erp_ERP-2001"] == c["legacy_30001"]
    assert c["erp_ERP-2002"] not in {c["crm_CUST-1001"]}


def test_every_input_entity_has_a_cluster_key_that_is_its_clusters_smallest_id(
    resolved: Resolution, entities: pd.DataFrame
) -> None:
    assert set(resolved.clusters) == set(entities["canonical_id"])
    frame = resolved.clusters_frame()
    assert (
        frame.groupby("cluster_key")["canonical_id"].min() == frame.groupby("cluster_key").size().index
    ).all()


def test_hard_negatives_of_the_generator_stay_apart(resolved: Resolution) -> None:
    data = generate(400, seed=11).records
    truth = dict(zip(data["canonical_id"], data["entity_id"], strict=True))
    by_cluster: dict[str, set[str]] = {}
    for cid, key in resolved.clusters.items():
        if cid in truth:
            by_cluster.setdefault(key, set()).add(truth[cid])
    assert all(len(entities_) == 1 for entities_ in by_cluster.values())


def test_the_trained_model_penalises_a_name_disagreement_and_passes_its_check(resolved: Resolution) -> None:
    weights = {(w.comparison, w.level): w.match_weight for w in match_weights(resolved.model)}
    assert weights[("name", "else")] is not None and weights[("name", "else")] <= -3
    assert resolved.model_check.ok


def test_pairs_carry_per_comparison_weights_as_match_evidence(resolved: Resolution) -> None:
    cols = set(resolved.pairs.columns)
    assert {
        "canonical_id_l",
        "canonical_id_r",
        "evidence_weight",
        "match_weight",
        "match_probability",
    } <= cols
    assert {"w_name", "w_country", "w_revenue", "w_email_domain"} <= cols
    assert (resolved.pairs["canonical_id_l"] < resolved.pairs["canonical_id_r"]).all()


def test_the_model_round_trips_through_json_with_the_same_version(resolved: Resolution) -> None:
    again = MatchModel.from_json(resolved.model.to_json())
    assert again.version == resolved.model.version and len(again.version) == 64


def test_same_input_and_same_model_give_the_same_pairs_and_clusters(
    resolved: Resolution, entities: pd.DataFrame
) -> None:
    again = resolve(entities, CONFIG, model=resolved.model)
    assert isinstance(again, Resolution)
    assert again.clusters == resolved.clusters
    pd.testing.assert_frame_equal(again.pairs, resolved.pairs)


def test_steward_must_link_and_cannot_link_win_over_the_model(
    resolved: Resolution, entities: pd.DataFrame
) -> None:
    decisions = [
        Decision("crm_CUST-1001", "erp_ERP-2001", "cannot_link"),
        Decision("crm_CUST-1004", "legacy_30006", "must_link"),
    ]
    out = resolve(entities, CONFIG, model=resolved.model, decisions=decisions)
    assert isinstance(out, Resolution)
    assert out.clusters["crm_CUST-1001"] != out.clusters["erp_ERP-2001"]
    assert out.clusters["crm_CUST-1004"] == out.clusters["legacy_30006"]


def test_incremental_scoring_of_a_delta_gives_the_clusters_of_a_full_run(
    resolved: Resolution, entities: pd.DataFrame
) -> None:
    delta = ["crm_CUST-1001", "legacy_30001", *entities["canonical_id"].iloc[30:90]]
    out = resolve(entities, CONFIG, model=resolved.model, only_ids=delta, prior_pairs=resolved.pairs)
    assert isinstance(out, Resolution)
    touching = resolved.pairs["canonical_id_l"].isin(delta) | resolved.pairs["canonical_id_r"].isin(delta)
    assert len(out.pairs) == int(touching.sum())
    assert out.clusters == resolved.clusters


def test_a_degenerate_model_that_barely_penalises_a_name_disagreement_is_flagged(
    resolved: Resolution,
) -> None:
    settings = json.loads(resolved.model.to_json())
    name = next(c for c in settings["comparisons"] if c["output_column_name"] == "name")
    else_level = next(lv for lv in name["comparison_levels"] if lv["sql_condition"] == "ELSE")
    else_level["m_probability"] = else_level["u_probability"] * 0.9
    check = check_model(MatchModel.from_settings(settings), CONFIG)
    assert not check.ok and "name / else" in check.problems[0]


def test_training_that_yields_a_degenerate_model_is_refused_as_a_value(entities: pd.DataFrame) -> None:
    strict = ResolutionConfig(training=TrainingSettings(u_max_pairs=3e4, max_name_else_weight=-1000.0))
    out = resolve(entities, strict)
    assert isinstance(out, ModelRefused)
    assert any("name / else" in r for r in out.reasons)


def test_an_exact_name_held_by_the_pair_alone_weighs_the_whole_exact_level(
    resolved: Resolution, entities: pd.DataFrame
) -> None:
    names = {
        cid: normalise_name(raw).name
        for cid, raw in zip(entities["canonical_id"], entities["name"], strict=True)
    }
    held = Counter(names.values())
    exact = {(w.comparison, w.level): w.match_weight for w in match_weights(resolved.model)}[
        ("name", "exact")
    ]
    own = [
        w
        for a, b, w in zip(
            resolved.pairs["canonical_id_l"],
            resolved.pairs["canonical_id_r"],
            resolved.pairs["w_name"],
            strict=True,
        )
        if names[a] is not None and names[a] == names[b] and held[names[a]] == 2
    ]
    assert own and all(w == pytest.approx(exact) for w in own)


def test_by_default_a_name_alone_however_close_never_links() -> None:
    config = ResolutionConfig()
    assert config.training.max_abs_name_weight < config.thresholds.upper


def test_the_shipped_model_resolves_the_samples_alone_tech_corp_once_and_its_subsidiary_apart() -> None:
    # A fresh store (make dev's three samples) is too small to train on: the shipped model resolves it.
    records = _sample_records()
    frame = frame_from_rows(asdict(r) for r in records)
    parents = [(r.canonical_id, r.parent_canonical_id) for r in records if r.parent_canonical_id]
    out = resolve(frame, model=shipped_model(), parents=parents)
    assert isinstance(out, Resolution)
    tech = {c for c, k in out.clusters.items() if k == out.clusters["crm_CUST-1001"]}
    assert tech == {"crm_CUST-1001", "erp_ERP-2001", "legacy_30001"}
    assert out.clusters["erp_ERP-2002"] not in {out.clusters["crm_CUST-1001"]}


def test_a_store_too_small_to_train_on_is_refused_as_a_value_with_the_reason() -> None:
    # The three samples alone: EM finds no pairs sharing a phone, and Splink raises rather than train.
    frame = frame_from_rows(asdict(r) for r in _sample_records())
    out = resolve(frame, CONFIG)
    assert isinstance(out, ModelRefused)
    assert len(out.reasons) == 1 and out.reasons[0].startswith("training failed: ")
    assert "resulted in no record pairs" in out.reasons[0]
    assert "train" in out.timings


def test_a_store_where_no_two_records_meet_the_priors_rules_is_refused_not_a_math_error() -> None:
    # Three unrelated names: the prior's rules find no pair, and EM would divide by a zero prior.
    frame = frame_from_rows(
        {"canonical_id": cid, "source_system": cid.split("_")[0], "name": name}
        for cid, name in (("crm_A", "Alpha Mills"), ("erp_B", "Beta Shipping"), ("legacy_C", "Gamma Optics"))
    )
    out = resolve(frame, CONFIG)
    assert isinstance(out, ModelRefused)
    assert out.reasons == ("training failed: no two records agree on the prior's rules",)
