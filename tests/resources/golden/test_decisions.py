"""Steward decisions enforced on a clustering (resources/golden/decisions.py)."""

from __future__ import annotations

from resources.golden.decisions import Constraints, Link, enforce, ordered


def link(a: str, b: str, kind: str = "same", leaving: str | None = None, decision_id: int = 1) -> Link:
    l_id, r_id = ordered(a, b)
    return Link(l_id, r_id, decision_id, kind, "steward", leaving)  # type: ignore[arg-type]


def groups(clustering: dict[str, object]) -> set[frozenset[str]]:
    out: dict[object, set[str]] = {}
    for cid, key in clustering.items():
        out.setdefault(key, set()).add(cid)
    return {frozenset(g) for g in out.values()}


def test_a_must_link_joins_the_two_whole_clusters():
    done = enforce({"a": 1, "b": 1, "c": 2, "d": 3}, Constraints(must_link=(link("a", "c"),)))
    assert groups(done.clustering) == {frozenset("abc"), frozenset("d")}
    assert len(done.applied) == 1


def test_a_cannot_link_moves_the_leaving_record_out_on_its_own():
    done = enforce(
        {"a": 1, "b": 1, "c": 1},
        Constraints(
            cannot_link=(link("a", "c", "move_out", leaving="c"), link("b", "c", "move_out", leaving="c"))
        ),
    )
    assert groups(done.clustering) == {frozenset("ab"), frozenset("c")}


def test_a_not_same_pair_already_apart_changes_nothing():
    done = enforce({"a": 1, "b": 2}, Constraints(cannot_link=(link("a", "b", "not_same"),)))
    assert done.clustering == {"a": 1, "b": 2} and done.applied == ()


def test_a_leaving_record_takes_what_it_is_must_linked_to():
    done = enforce(
        {"a": 1, "b": 1, "c": 1},
        Constraints(must_link=(link("b", "c"),), cannot_link=(link("a", "c", "not_same", leaving="c"),)),
    )
    assert groups(done.clustering) == {frozenset("a"), frozenset("bc")}


def test_contradicting_decisions_are_reported_and_leave_the_records_together():
    done = enforce(
        {"a": 1, "b": 2},
        Constraints(must_link=(link("a", "b"),), cannot_link=(link("a", "b", "not_same", decision_id=2),)),
    )
    assert groups(done.clustering) == {frozenset("ab")}
    assert [c.decision_id for c in done.conflicts] == [2]


def test_decisions_about_records_outside_the_clustering_are_ignored():
    done = enforce(
        {"a": 1}, Constraints(must_link=(link("a", "z"),), cannot_link=(link("a", "y", "not_same"),))
    )
    assert done.clustering == {"a": 1}
