"""Stable golden ids (resources/golden/ids.py): the rules, pinned by examples and by hypothesis."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from resources.golden.ids import Assignment, assign_ids, golden_id_of, number_of

ENTITIES = [f"crm_C{i:03d}" for i in range(40)]


def clustering_of(*groups: list[str]) -> dict[str, int]:
    return {cid: k for k, group in enumerate(groups) for cid in group}


def groups_of(a: Assignment) -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for cid, gid in a.membership.items():
        out.setdefault(gid, set()).add(cid)
    return {g: frozenset(m) for g, m in out.items()}


# Random clusterings: each entity (of a random subset) takes a cluster key from a few.
clusterings = st.lists(st.integers(0, 12), min_size=1, max_size=len(ENTITIES)).map(
    lambda keys: {ENTITIES[i]: k for i, k in enumerate(keys)}
)


def test_the_first_run_numbers_clusters_in_the_order_of_their_smallest_record():
    a = assign_ids({}, clustering_of(["crm_C002", "crm_C005"], ["crm_C001"], ["crm_C003"]), next_free=1)
    assert a.membership == {"crm_C001": "G1", "crm_C002": "G2", "crm_C005": "G2", "crm_C003": "G3"}
    assert a.created == ("G1", "G2", "G3")
    assert a.next_free == 4
    assert [(m.kind, m.golden_id, m.members) for m in a.moves] == [
        ("new", "G1", ("crm_C001",)),
        ("new", "G2", ("crm_C002", "crm_C005")),
        ("new", "G3", ("crm_C003",)),
    ]


def test_a_merge_keeps_the_id_of_the_old_cluster_it_shares_most_members_with():
    previous = {"a": "G1", "b": "G2", "c": "G2", "d": "G3"}
    a = assign_ids(previous, clustering_of(["a", "b", "c"], ["d"]), next_free=4)
    assert a.membership == {"a": "G2", "b": "G2", "c": "G2", "d": "G3"}
    assert [(r.golden_id, r.successor_id) for r in a.retired] == [("G1", "G2")]
    assert [(m.kind, m.golden_id, m.other_golden_id, m.members) for m in a.moves] == [
        ("merge", "G2", "G1", ("a",))
    ]
    assert a.created == ()
    assert a.changed == {"G2"}


def test_a_merge_of_equal_parts_keeps_the_oldest_id():
    previous = {"a": "G7", "b": "G3"}
    a = assign_ids(previous, clustering_of(["a", "b"]), next_free=8)
    assert set(a.membership.values()) == {"G3"}
    assert [r.golden_id for r in a.retired] == ["G7"]


def test_a_split_keeps_the_id_on_the_larger_part_and_gives_the_other_a_new_one():
    previous = {"a": "G1", "b": "G1", "c": "G1", "d": "G1", "e": "G1"}
    a = assign_ids(previous, clustering_of(["a", "b"], ["c", "d", "e"]), next_free=2)
    assert a.membership == {"a": "G2", "b": "G2", "c": "G1", "d": "G1", "e": "G1"}
    assert a.created == ("G2",)
    assert [(m.kind, m.golden_id, m.other_golden_id, m.members) for m in a.moves] == [
        ("split", "G2", "G1", ("a", "b"))
    ]
    assert a.changed == {"G1", "G2"}


def test_new_ids_continue_from_the_sequence_never_from_a_retired_number():
    previous = {"a": "G1", "b": "G2"}
    # G3..G9 were given and retired earlier: the sequence is at 10.
    a = assign_ids(previous, clustering_of(["a"], ["b"], ["c"]), next_free=10)
    assert a.membership["c"] == "G10"
    assert a.next_free == 11


def test_records_missing_from_the_clustering_leave_and_an_emptied_id_retires():
    previous = {"a": "G1", "b": "G1", "c": "G2"}
    a = assign_ids(previous, clustering_of(["a"]), next_free=3)
    assert a.membership == {"a": "G1"}
    assert [(m.kind, m.golden_id, m.members) for m in a.moves] == [
        ("removed", "G1", ("b",)),
        ("removed", "G2", ("c",)),
    ]
    assert [(r.golden_id, r.successor_id) for r in a.retired] == [("G2", None)]


def test_cluster_keys_do_not_matter_only_the_partition():
    previous = {"a": "G1", "b": "G1", "c": "G2"}
    one = assign_ids(previous, {"a": "x", "b": "y", "c": "y"}, next_free=3)
    other = assign_ids(previous, {"a": 7, "b": 9, "c": 9}, next_free=3)
    assert one.membership == other.membership


@settings(max_examples=200, deadline=None)
@given(clusterings)
def test_assigning_the_same_clustering_twice_changes_no_id(clustering: dict[str, int]) -> None:
    first = assign_ids({}, clustering, next_free=1)
    again = assign_ids(first.membership, clustering, next_free=first.next_free)
    assert again.membership == first.membership
    assert again.unchanged
    assert again.changed == frozenset()
    assert again.next_free == first.next_free


@settings(max_examples=200, deadline=None)
@given(clusterings, clusterings)
def test_every_record_is_in_exactly_one_golden_entity_and_clusters_map_one_to_one(
    before: dict[str, int], after: dict[str, int]
) -> None:
    first = assign_ids({}, before, next_free=1)
    a = assign_ids(first.membership, after, next_free=first.next_free)
    assert a.membership.keys() == after.keys()
    # Same cluster <-> same golden id.
    by_cluster = {k: {a.membership[c] for c, kk in after.items() if kk == k} for k in set(after.values())}
    assert all(len(ids) == 1 for ids in by_cluster.values())
    assert len({next(iter(ids)) for ids in by_cluster.values()}) == len(by_cluster)


@settings(max_examples=300, deadline=None)
@given(clusterings, clusterings)
def test_max_overlap_no_cluster_and_old_id_would_both_rather_have_each_other(
    before: dict[str, int], after: dict[str, int]
) -> None:
    """The greedy rule's characterisation: ranking (cluster, old id) pairs by more shared members, then
    the older id, then the cluster's smallest record, no pair outranks both the cluster's own pair and
    the old id's own pair (a cluster keeping an id with fewer shared members than another free id, or
    an id going to a cluster with fewer of its members than another, would be such a pair)."""
    first = assign_ids({}, before, next_free=1)
    previous = first.membership
    a = assign_ids(previous, after, next_free=first.next_free)
    shared: Counter[tuple[int, str]] = Counter((after[c], previous[c]) for c in after if c in previous)
    smallest = {k: min(c for c, kk in after.items() if kk == k) for k in set(after.values())}

    def rank(key: int, gid: str) -> tuple[int, int, str]:
        return (-shared[(key, gid)], number_of(gid), smallest[key])

    id_of = {after[c]: g for c, g in a.membership.items()}
    cluster_of_old = {g: k for k, g in id_of.items() if g in set(previous.values())}
    for (key, gid), n in shared.items():
        if id_of[key] == gid:
            continue
        cluster_rank = rank(key, id_of[key]) if (key, id_of[key]) in shared else (1, 0, "")
        old_rank = rank(cluster_of_old[gid], gid) if gid in cluster_of_old else (1, 0, "")
        assert not (rank(key, gid) < cluster_rank and rank(key, gid) < old_rank), (key, gid, n)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=6, max_size=6))
def test_a_tie_in_shared_members_goes_to_the_oldest_id(numbers: list[int]) -> None:
    # Two old ids with one record each merge: whichever is older is kept.
    g1, g2 = golden_id_of(numbers[0] + 1), golden_id_of(numbers[0] + numbers[1] + 2)
    a = assign_ids({"a": g2, "b": g1}, {"a": 0, "b": 0}, next_free=100)
    assert set(a.membership.values()) == {g1}


@settings(max_examples=60, deadline=None)
@given(st.lists(clusterings, min_size=2, max_size=12))
def test_no_id_is_ever_given_twice_across_many_rounds(rounds: list[dict[str, int]]) -> None:
    previous: dict[str, str] = {}
    next_free = 1
    ever: set[str] = set()
    retired: set[str] = set()
    for clustering in rounds:
        a = assign_ids(previous, clustering, next_free=next_free)
        assert not set(a.created) & ever, "an id was given twice"
        assert not set(a.membership.values()) & retired, "a retired id came back"
        ever |= set(a.created)
        retired |= {r.golden_id for r in a.retired}
        assert set(a.membership.values()) <= ever
        assert {r.golden_id for r in a.retired} == set(previous.values()) - set(a.membership.values())
        previous, next_free = a.membership, a.next_free


@settings(max_examples=200, deadline=None)
@given(clusterings, st.data())
def test_changing_some_clusters_changes_only_those_clusters_ids(
    before: dict[str, int], data: st.DataObject
) -> None:
    """Incremental = full: re-cluster the records of a few clusters (and add new records among them);
    every other cluster keeps its id, and assigning ids to the changed part alone (with the previous
    membership of the ids it touches) gives the same ids as assigning the whole clustering."""
    first = assign_ids({}, before, next_free=1)
    keys = sorted(set(before.values()))
    touched = set(data.draw(st.lists(st.sampled_from(keys), max_size=len(keys), unique=True)))
    spare = [c for c in ENTITIES if c not in before]
    new_records = data.draw(st.lists(st.sampled_from(spare), unique=True)) if spare else []
    moved = [c for c, k in before.items() if k in touched] + new_records
    regrouped = {c: 100 + data.draw(st.integers(0, 5)) for c in moved}
    after = {**{c: k for c, k in before.items() if k not in touched}, **regrouped}

    full = assign_ids(first.membership, after, next_free=first.next_free)
    for c, k in before.items():
        if k not in touched:
            assert full.membership[c] == first.membership[c]

    touched_ids = {first.membership[c] for c in moved if c in first.membership}
    part_previous = {c: g for c, g in first.membership.items() if g in touched_ids}
    part = assign_ids(part_previous, regrouped, next_free=first.next_free)
    assert part.membership == {c: full.membership[c] for c in regrouped}
    assert part.created == full.created
    assert {r.golden_id for r in part.retired} == {r.golden_id for r in full.retired}
