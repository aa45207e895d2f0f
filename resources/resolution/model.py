"""The Fellegi-Sunter model: Splink 5 on its DuckDB backend, in process.

Training is unsupervised (u by random sampling, m by EM blocked on separately computed columns), the
trained weights are read and checked before anyone trusts them, and the model travels as Splink's own JSON
with a content hash for a version. Prediction scores the blocked pairs above the review band's lower edge;
with a delta it scores only pairs that touch it, against the whole store, with the same model and the same
term frequencies, so its scores equal those of a full run.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import duckdb
import pandas as pd

from resources.resolution.blocking import BLOCK_KEYS_COLUMN
from resources.resolution.config import ComparisonName, ResolutionConfig

__all__ = [
    "COMPARISONS",
    "DELTA_COLUMN",
    "MatchModel",
    "ModelCheck",
    "TrainingFailed",
    "check_model",
    "clamp_weights",
    "match_weights",
    "predict_pairs",
    "prior_weight",
    "settings_for",
    "train_model",
]

# The input's flag for "this row is new or changed": an incremental run scores pairs with at least one.
DELTA_COLUMN = "in_delta"

COMPARISONS: tuple[str, ...] = get_args(ComparisonName)


def _level(sql: str, label: str, **extra: Any) -> dict[str, Any]:
    return {"sql_condition": sql, "label_for_charts": label, **extra}


def _null(col: str) -> dict[str, Any]:
    return _level(f'"{col}_l" IS NULL OR "{col}_r" IS NULL', "null", is_null_level=True)


def _name_comparison(config: ResolutionConfig) -> dict[str, Any]:
    c = config.name
    tf = {"tf_adjustment_column": "name", "tf_adjustment_weight": 1.0} if c.term_frequency_adjustments else {}
    levels = [_null("name"), _level('"name_l" = "name_r"', "exact", **tf)]
    if c.word_order_level:
        levels.append(_level('"name_sorted_l" = "name_sorted_r"', "same words"))
    levels += [
        _level(f'levenshtein("name_l", "name_r") <= {k}', f"levenshtein <= {k}")
        for k in c.levenshtein_thresholds
    ]
    levels += [
        _level(f'jaro_winkler_similarity("name_l", "name_r") >= {t}', f"jaro-winkler >= {t}")
        for t in c.jaro_winkler_thresholds
    ]
    levels.append(_level("ELSE", "else"))
    return {"output_column_name": "name", "comparison_levels": levels}


def _text_comparison(col: str, config: ResolutionConfig) -> dict[str, Any]:
    c = getattr(config, col)
    tf = {"tf_adjustment_column": col, "tf_adjustment_weight": 1.0} if c.term_frequency_adjustments else {}
    levels = [_null(col), _level(f'"{col}_l" = "{col}_r"', "exact", **tf)]
    levels += [
        _level(f'jaro_winkler_similarity("{col}_l", "{col}_r") >= {t}', f"jaro-winkler >= {t}")
        for t in c.jaro_winkler_thresholds
    ]
    levels.append(_level("ELSE", "else"))
    return {"output_column_name": col, "comparison_levels": levels}


def _number_comparison(col: str, config: ResolutionConfig) -> dict[str, Any]:
    c = getattr(config, col)
    # Multiplied out rather than divided, so two zeros compare as equal instead of as NULL.
    levels = [_null(col)] + [
        _level(
            f'abs("{col}_l" - "{col}_r") <= {t} * greatest("{col}_l", "{col}_r")',
            f"within {round(t * 100)}%",
        )
        for t in c.relative_difference_thresholds
    ]
    levels.append(_level("ELSE", "else"))
    return {"output_column_name": col, "comparison_levels": levels}


def _blocking_rules(config: ResolutionConfig, delta_only: bool) -> list[dict[str, Any]]:
    """The configured column rules, then the key rule. Splink leaves a pair found by an earlier rule out
    of a later one, but not the pairs of an exploded (array) rule out of anything after it: it comes last."""
    delta = f' AND (l."{DELTA_COLUMN}" OR r."{DELTA_COLUMN}")' if delta_only else ""
    rules: list[dict[str, Any]] = [
        {"blocking_rule": " AND ".join(f'l."{c}" = r."{c}"' for c in cols) + delta, "sql_dialect": "duckdb"}
        for cols in config.blocking.rules
    ]
    rules.append(
        {
            "blocking_rule": f'l."{BLOCK_KEYS_COLUMN}" = r."{BLOCK_KEYS_COLUMN}"{delta}',
            "sql_dialect": "duckdb",
            "arrays_to_explode": [BLOCK_KEYS_COLUMN],
        }
    )
    return rules


def settings_for(config: ResolutionConfig) -> dict[str, Any]:
    """The untrained Splink settings for `config`."""
    comparisons: list[dict[str, Any]] = []
    for name in COMPARISONS:
        if not getattr(config, name).enabled:
            continue
        if name == "name":
            comparisons.append(_name_comparison(config))
        elif name in ("revenue", "employees"):
            comparisons.append(_number_comparison(name, config))
        else:
            comparisons.append(_text_comparison(name, config))
    return {
        "link_type": "dedupe_only",
        "unique_id_column_name": "unique_id",
        "probability_two_random_records_match": 1e-6,
        "comparisons": comparisons,
        "blocking_rules_to_generate_predictions": _blocking_rules(config, False),
        "retain_matching_columns": False,
        "retain_intermediate_calculation_columns": True,
        "additional_columns_to_retain": [],
        "sql_dialect": "duckdb",
    }


@dataclass(frozen=True, slots=True)
class MatchModel:
    """A trained model: Splink's model JSON and its version, the SHA-256 of that JSON's canonical text."""

    settings: dict[str, Any]
    version: str

    @staticmethod
    def from_settings(settings: dict[str, Any]) -> MatchModel:
        return MatchModel(settings, _content_hash(settings))

    @staticmethod
    def from_json(text: str) -> MatchModel:
        return MatchModel.from_settings(json.loads(text))

    def to_json(self) -> str:
        return json.dumps(self.settings, sort_keys=True, indent=2)


SHIPPED_MODEL = Path(__file__).resolve().parent / "shipped" / "company_model.json"


def shipped_model() -> MatchModel:
    """The default model: trained (unsupervised, as `resolve` trains) on the labelled company generator
    (bench/resolution_data.py, 20,000 records, seed 7). A store too small to train on (a few dozen
    records: EM sees too few pairs) still resolves with it; `retrain` replaces it with one trained on
    the store itself."""
    return MatchModel.from_json(SHIPPED_MODEL.read_text())


def _content_hash(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class LevelWeight:
    comparison: str
    level: str
    m_probability: float | None
    u_probability: float | None
    match_weight: float | None  # log2(m / u); None for the null level, which carries no evidence


def match_weights(model: MatchModel) -> list[LevelWeight]:
    """Every comparison level's trained m, u and match weight, in the model's order."""
    out: list[LevelWeight] = []
    for comparison in model.settings["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            m, u = level.get("m_probability"), level.get("u_probability")
            w = math.log2(m / u) if m and u else None
            out.append(LevelWeight(comparison["output_column_name"], level["label_for_charts"], m, u, w))
    return out


@dataclass(frozen=True, slots=True)
class ModelCheck:
    """Whether a trained model can be trusted; each problem says which weight and why."""

    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_model(model: MatchModel, config: ResolutionConfig) -> ModelCheck:
    """Refuse a model EM made degenerate: the name must be strong evidence both ways."""
    t = config.training
    problems: list[str] = []
    weights = {(w.comparison, w.level): w.match_weight for w in match_weights(model)}
    if ("name", "else") not in weights:
        return ModelCheck(("the model has no name comparison",))
    for key in (("name", "exact"), ("name", "else")):
        if weights.get(key) is None:
            problems.append(f"{key[0]} / {key[1]}: not trained (m or u missing or zero)")
    else_w = weights[("name", "else")]
    if else_w is not None and else_w > t.max_name_else_weight:
        problems.append(
            f"name / else: a name disagreement weighs {else_w:.2f}, not at most {t.max_name_else_weight}: "
            "the model would link different companies on the other fields alone"
        )
    exact_w = weights.get(("name", "exact"))
    if exact_w is not None and exact_w < t.min_name_exact_weight:
        problems.append(
            f"name / exact: an exact name weighs {exact_w:.2f}, not at least {t.min_name_exact_weight}"
        )
    return ModelCheck(tuple(problems))


def prior_weight(model: MatchModel) -> float:
    """log2 of the prior odds that two records match: the part of Splink's match weight that follows the
    store's size, not the pair."""
    p = float(model.settings["probability_two_random_records_match"])
    return math.log2(p / (1.0 - p))


def _linker(
    con: duckdb.DuckDBPyConnection,
    table: str,
    settings: dict[str, Any],
    tf_tables: dict[str, str] | None = None,
) -> Any:
    from splink import DuckDBAPI, Linker

    db_api = DuckDBAPI(connection=con)
    sdf = db_api.register(table)
    linker = Linker(sdf, settings, log_level=logging.WARNING)
    for column, tf_table in (tf_tables or {}).items():
        linker.table_management.register_term_frequency_lookup(db_api.register(tf_table), column)
    return linker


NAME_TF_TABLE = "resolution_name_tf"


def _create_name_tf_table(con: duckdb.DuckDBPyConnection, table: str, settings: dict[str, Any]) -> bool:
    """The name's term frequencies for Splink's adjustment, as the share of the store's *other* records
    holding the name (its count less the pair's own two), never below the exact level's u.

    Splink's own table counts the pair's records too: a name held by two twins alone then reads as twice
    as common as the average exact agreement, so the adjustment weakens the typical true pair, and twins
    with little else in common fall into review. Floored at u, the adjustment only ever weakens a name
    more common than the typical one ("acme" held by five companies), which is what it is for.
    False when the model has no term-frequency adjustment on the name."""
    name = next((c for c in settings["comparisons"] if c["output_column_name"] == "name"), None)
    exact = next(
        (lv for lv in (name or {}).get("comparison_levels", []) if lv.get("tf_adjustment_column") == "name"),
        None,
    )
    if exact is None or not exact.get("u_probability"):
        return False
    u = float(exact["u_probability"])
    con.execute(
        f"""CREATE OR REPLACE TABLE {NAME_TF_TABLE} AS
SELECT name, greatest((count(*) - 2) / (SELECT count(*) FROM {table}), {u!r}) AS tf_name
FROM {table} WHERE name IS NOT NULL GROUP BY name"""
    )
    return True


class TrainingFailed(Exception):
    """Splink could not train on the store (EM found no pairs to learn from: a store of a few dozen
    records). `model` is the model as far as training got, `reason` Splink's first line."""

    def __init__(self, model: MatchModel, reason: str) -> None:
        super().__init__(reason)
        self.model = model
        self.reason = reason


def train_model(con: duckdb.DuckDBPyConnection, table: str, config: ResolutionConfig) -> MatchModel:
    """Train on the prepared table `table` (the columns `normalise.normalised_select_sql` gives).
    Raises TrainingFailed when Splink's EM has nothing to learn from."""
    from splink import block_on
    from splink.internals.exceptions import EMTrainingException

    t = config.training
    linker = _linker(con, table, settings_for(config))
    linker.training.estimate_probability_two_random_records_match(list(t.prior_rules), recall=t.prior_recall)
    prior = linker.misc.save_model_to_json().get("probability_two_random_records_match")
    if not prior or prior <= 0:
        # No two records meet the prior's rules (a store of a few unrelated records): EM would divide
        # by a zero prior, so there is nothing to train on.
        partial = MatchModel.from_settings(linker.misc.save_model_to_json())
        raise TrainingFailed(partial, "training failed: no two records agree on the prior's rules")
    linker.training.estimate_u_using_random_sampling(
        max_pairs=t.u_max_pairs, seed=t.seed, min_count_per_level=t.u_min_count_per_level
    )
    for cols in t.em_blocking_columns:
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                block_on(*cols), estimate_without_term_frequencies=True, max_pairs=t.em_max_pairs
            )
        except EMTrainingException as e:
            partial = MatchModel.from_settings(linker.misc.save_model_to_json())
            raise TrainingFailed(partial, f"training failed: {str(e).splitlines()[0]}") from e
    settings: dict[str, Any] = linker.misc.save_model_to_json()
    return MatchModel.from_settings(clamp_weights(settings, config))


def clamp_weights(settings: dict[str, Any], config: ResolutionConfig) -> dict[str, Any]:
    """The model with every level's match weight pulled within the configured magnitude (m moved, u kept;
    see `TrainingSettings.max_abs_weight`), and levels training never saw given their stronger neighbour's."""
    out = copy.deepcopy(settings)
    for comparison in out["comparisons"]:
        # A level training never observed (the same words in another order, on a small store) takes the
        # parameters of the nearest stronger level rather than no weight at all.
        stronger: dict[str, Any] | None = None
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level") or level["sql_condition"] == "ELSE":
                continue
            if level.get("m_probability") and level.get("u_probability"):
                stronger = level
            elif stronger is not None:
                level["m_probability"] = stronger["m_probability"]
                level["u_probability"] = stronger["u_probability"]
        is_name = comparison["output_column_name"] == "name"
        cap = config.training.max_abs_name_weight if is_name else config.training.max_abs_weight
        for level in comparison["comparison_levels"]:
            m, u = level.get("m_probability"), level.get("u_probability")
            if level.get("is_null_level") or not m or not u:
                continue
            w = math.log2(m / u)
            if w < -cap:
                level["m_probability"] = u * 2.0**-cap
            elif w > cap:
                level["m_probability"] = min(1.0, u * 2.0**cap)
    return out


def predict_pairs(
    con: duckdb.DuckDBPyConnection,
    table: str,
    model: MatchModel,
    config: ResolutionConfig,
    *,
    delta_only: bool = False,
) -> pd.DataFrame:
    """Scored pairs at or above the review band's lower edge, one row per pair, smaller id on the left:
    canonical_id_l, canonical_id_r, evidence_weight (the match weight without the prior: the sum of the
    comparisons' weights, which the thresholds apply to, so they mean the same on a store of a thousand
    and of a million), match_weight and match_probability (Splink's, with the prior), and w_<comparison>
    per comparison
    (its match weight, term-frequency adjustment included; 0 when either side is null).
    `delta_only`: only pairs with at least one side flagged in the table's `in_delta` column."""
    settings = copy.deepcopy(model.settings)
    settings["blocking_rules_to_generate_predictions"] = _blocking_rules(config, delta_only)
    settings["retain_intermediate_calculation_columns"] = True
    tf_tables = {"name": NAME_TF_TABLE} if _create_name_tf_table(con, table, settings) else {}
    linker = _linker(con, table, settings, tf_tables)
    prior = prior_weight(model)
    scored = linker.inference.predict(
        threshold_match_weight=config.thresholds.lower + prior, warning_mode="never"
    )
    names = [c["output_column_name"] for c in settings["comparisons"]]
    tf_cols = {
        c["output_column_name"]
        for c in settings["comparisons"]
        if any(level.get("tf_adjustment_column") for level in c["comparison_levels"])
    }

    def weight(n: str) -> str:
        # Splink gives each comparison's match weight (mw_) and its term-frequency adjustment apart.
        tf = f' + coalesce("mw_tf_adj_{n}", 0.0)' if n in tf_cols else ""
        return f'coalesce("mw_{n}", 0.0){tf} AS "w_{n}"'

    sql = f"""
SELECT least(unique_id_l, unique_id_r) AS canonical_id_l, greatest(unique_id_l, unique_id_r) AS canonical_id_r,
       match_weight - {prior!r} AS evidence_weight, match_weight, match_probability, {", ".join(weight(n) for n in names)}
FROM {scored.physical_name}
ORDER BY canonical_id_l, canonical_id_r
"""
    out: pd.DataFrame = con.execute(sql).df()
    scored.drop_table_from_database_and_remove_from_cache()
    return out
