"""The per-file shape profile: counts that add up for any records, types from a sample spread over the file,
bounded whatever the keys."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resources.ingest.shapes import ShapeProfiler, containers, json_type

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
# Few distinct keys, so records share some and differ in others, as exports do.
keys = st.sampled_from(["id", "name", "company_name", "companyName", "financials", "x", ""])
json_objects = st.dictionaries(keys, json_values, max_size=6)
records = st.lists(st.one_of(json_objects, json_objects, json_values), max_size=60)


def _profile(items: list[Any], **kw: Any) -> Any:
    profiler = ShapeProfiler(("financials",), **kw)
    for r in items:
        profiler.observe(r)
    return profiler.finish()


@FAST
@given(records)
def test_counts_add_up_to_each_fields_records_for_any_json_records(items: list[Any]) -> None:
    shape = _profile(items)
    objects = [r for r in items if type(r) is dict]
    assert shape.records == len(objects) and shape.records + shape.non_objects == len(items)
    expected: Counter[str] = Counter(k for r in objects for k in r)
    expected.update(
        f"financials.{k}" for r in objects if isinstance(r.get("financials"), dict) for k in r["financials"]
    )
    assert {f: s.present for f, s in shape.fields.items()} == dict(expected)
    assert shape.untracked == 0
    for name, f in shape.fields.items():
        assert 0 < f.present <= shape.records
        assert 0 <= shape.share(name) <= 1


@FAST
@given(records, st.integers(1, 4), st.integers(1, 4), st.integers(1, 3))
def test_past_its_bounds_the_profile_stays_small_and_never_overcounts(
    items: list[Any], max_shapes: int, max_fields: int, budget: int
) -> None:
    shape = _profile(items, max_shapes=max_shapes, max_fields=max_fields, sample_budget=budget)
    objects = [r for r in items if type(r) is dict]
    truth: Counter[str] = Counter(k for r in objects for k in r)
    truth.update(
        f"financials.{k}" for r in objects if isinstance(r.get("financials"), dict) for k in r["financials"]
    )
    assert len(shape.fields) <= max_fields
    for name, f in shape.fields.items():
        assert f.present <= truth[name]


def test_a_renamed_field_shows_as_one_field_gone_and_one_new_with_their_counts() -> None:
    old = [{"id": i, "company_name": f"c{i}", "financials": {"annualRevenue": i}} for i in range(3)]
    new = [{"id": i, "companyName": f"c{i}", "financials": {"revenue": i}} for i in range(7)]
    shape = _profile(old + new)
    assert {f: s.present for f, s in shape.fields.items()} == {
        "id": 10,
        "company_name": 3,
        "companyName": 7,
        "financials": 10,
        "financials.annualRevenue": 3,
        "financials.revenue": 7,
    }
    assert shape.share("companyName") == 0.7


def test_types_are_sampled_from_the_first_records_to_the_last() -> None:
    items: list[Any] = [{"revenue": 1} for _ in range(5000)] + [{"revenue": "1"} for _ in range(500)]
    profiler = ShapeProfiler(sample_budget=16)
    for r in items:
        profiler.observe(r)
    shape = profiler.finish()
    assert shape.fields["revenue"].types == {"number", "string"}
    assert profiler._sampled < 200  # a sample, not every record


def test_required_fields_are_counted_per_record_across_their_alternatives() -> None:
    profiler = ShapeProfiler(
        required={"name": (("company_name",), ("businessName",), ("given", "family"))},
    )
    for r in [
        {"company_name": "a"},
        {"businessName": "b"},
        {"given": "c", "family": "d"},
        {"given": "only"},
        {"other": 1},
    ]:
        profiler.observe(r)
    assert profiler.finish().carrying == {"name": 3}


def test_json_types_and_the_objects_dotted_paths_read_into() -> None:
    assert [json_type(v) for v in ("a", 1, Decimal("1.5"), 1.5, True, None, {}, [])] == [
        "string",
        "number",
        "number",
        "number",
        "bool",
        "null",
        "object",
        "array",
    ]
    assert containers(["id", "financials.annualRevenue", "a.b.c"]) == ("a", "a.b", "financials")
