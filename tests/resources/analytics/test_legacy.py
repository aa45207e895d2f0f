"""The old API's parameter forms are read into the catalogue's own (camelCase names, interval text, old
metric names and defaults), and nothing they carry reaches SQL except through the models' whitelists."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resources.analytics.catalogue import CATALOGUE, validate_parameters
from resources.analytics.errors import InvalidParameters
from resources.analytics.legacy import camel_names
from resources.analytics.params import MAX_ANALYSIS_MONTHS, METRICS, TIMEFRAMES

fast = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(
    ("operation", "old", "field", "value"),
    [
        ("relationship_network", "rootEntityId", "root_entity_id", "crm_CUST-1001"),
        ("relationship_network", "maxDepth", "max_depth", 2),
        ("time_series_patterns", "analysisPeriod", "analysis_period", "6 months"),
        ("time_series_patterns", "metricType", "metric_type", "monthly_revenue"),
        ("customer_analysis", "groupBy", "group_by", "region"),
        ("customer_analysis", "minGroupSize", "min_group_size", 2),
        ("revenue_analysis", "topN", "top_n", 5),
        ("data_integrity_analysis", "minSimilarity", "min_similarity", 0.7),
    ],
)
def test_camel_case_names_mean_the_same_parameter(operation, old, field, value):
    assert getattr(validate_parameters(operation, {old: value}), field) == value


def test_every_multi_word_parameter_has_its_camel_case_spelling():
    for op in CATALOGUE.values():
        multi = {f for f in op.params_model.model_fields if "_" in f}
        assert set(camel_names(op.params_model).values()) == multi


def test_both_spellings_agreeing_are_one_parameter_and_disagreeing_are_refused():
    p = validate_parameters("customer_analysis", {"group_by": "region", "groupBy": "region"})
    assert p.group_by == "region"
    with pytest.raises(InvalidParameters) as info:
        validate_parameters("customer_analysis", {"group_by": "region", "groupBy": "industry"})
    assert info.value.errors[0].field == "group_by" and "given twice" in info.value.errors[0].message


@pytest.mark.parametrize(
    ("text", "canonical", "months"),
    [
        ("1 month", "1 month", 1),
        ("3 months", "3 months", 3),
        ("6 months", "6 months", 6),
        ("12 months", "12 months", 12),
        ("1 year", "12 months", 12),
        ("2 quarters", "6 months", 6),
        (" 3 MONTHS ", "3 months", 3),
    ],
)
def test_the_old_timeframe_is_a_monthly_window(text, canonical, months):
    p = validate_parameters("multi_dimensional_analytics", {"timeframe": text})
    assert (p.timeframe, p.unit, p.window_months) == (canonical, "month", months)


@pytest.mark.parametrize("unit", TIMEFRAMES)
def test_a_period_unit_is_still_a_period_over_all_time(unit):
    p = validate_parameters("multi_dimensional_analytics", {"timeframe": unit})
    assert (p.unit, p.window_months) == (unit, None)


@fast
@given(text=st.text(max_size=40))
def test_any_other_timeframe_text_is_refused_never_passed_on(text):
    try:
        p = validate_parameters("multi_dimensional_analytics", {"timeframe": text})
    except InvalidParameters as exc:
        assert exc.errors[0].field == "timeframe"
        return
    # Accepted: it became one of the whitelisted units or a bounded month count, nothing else.
    assert p.timeframe in TIMEFRAMES or (
        p.timeframe.endswith(("month", "months")) and 1 <= int(p.timeframe.split()[0]) <= MAX_ANALYSIS_MONTHS
    )


@pytest.mark.parametrize(
    "text",
    ["0 months", f"{MAX_ANALYSIS_MONTHS + 1} months", "3 days", "3 months; DROP", "interval '3 months'"],
)
def test_windows_out_of_bounds_or_in_other_units_are_refused(text):
    with pytest.raises(InvalidParameters):
        validate_parameters("multi_dimensional_analytics", {"timeframe": text})


def test_old_metric_names_and_defaults_are_understood():
    assert validate_parameters("revenue_analysis", {"metric": "annual_revenue"}).metric == "revenue"
    assert (
        validate_parameters("customer_analysis", {"metric": "lifetime_value", "group_by": "industry"}).metric
        == "lifetime_value"
    )
    assert validate_parameters("customer_analysis", {"metric": "employee_count"}).metric == "employees"
    # count_analysis counts: the old default named that and is accepted; any other metric is still refused.
    assert validate_parameters("count_analysis", {"metric": "customer_count"}).group_by == "industry"
    with pytest.raises(InvalidParameters):
        validate_parameters("count_analysis", {"metric": "revenue"})
    assert "annual_revenue" not in METRICS  # an alias, never a SQL fragment of its own


def test_relationship_network_without_a_root_walks_every_hierarchy():
    p = validate_parameters("relationship_network", {})
    assert p.root_entity_id is None and p.root_uuid is None and p.max_roots >= 1
