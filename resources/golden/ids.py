"""Stable golden ids: which id each cluster of a new clustering carries (pure, no I/O).

A golden id is 'G' followed by a number from a sequence that only grows, so an id is never given twice.
Given the previous membership (canonical id -> golden id) and a new clustering (canonical id -> any
cluster key), `assign_ids` decides:

- a cluster keeps the old id it shares most members with. Across the whole clustering the (cluster,
  old id) pairs are taken greedily in one total order: more shared members first, then the older id
  (lower creation number), then the cluster whose smallest canonical id sorts first; a pair is taken
  when neither its cluster nor its old id has been taken yet. So an old id goes to at most one
  cluster: on a split it stays with the part holding most of its members, on a merge the merged
  cluster keeps the id it shares most members with (tie: the oldest);
- a cluster left without an old id gets a new one, numbered in the order of its smallest canonical id;
- an old id no cluster took is retired (its successor: the id of the cluster that got most of its
  members) and never given again;
- singletons are clusters like any other: every canonical record has exactly one golden id.

Unchanged clusters take the fast path (one old id, the same members), so re-running a clustering that
did not change costs one pass over the records and changes nothing. Cluster keys are never read beyond
grouping: the same partition under other keys gets the same ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Literal

ID_PREFIX = "G"

MoveKind = Literal["new", "merge", "split", "removed"]


def golden_id_of(number: int) -> str:
    return f"{ID_PREFIX}{number}"


def number_of(golden_id: str) -> int:
    """The creation number of a golden id ('G42' -> 42); ValueError for anything else."""
    if not golden_id.startswith(ID_PREFIX) or not golden_id[1:].isdigit():
        raise ValueError(f"{golden_id!r} is not a golden id (G followed by a number)")
    return int(golden_id[1:])


@dataclass(frozen=True, slots=True)
class Move:
    """Members that changed golden id in one step, for the history.

    new      records seen for the first time entered `golden_id` (other_golden_id is None)
    merge    members of `other_golden_id` joined `golden_id`, which existed before
    split    members of `other_golden_id` left it for `golden_id`, created for them
    removed  records absent from the clustering left `golden_id` (other_golden_id is None)
    """

    kind: MoveKind
    golden_id: str
    other_golden_id: str | None
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Retirement:
    golden_id: str
    successor_id: str | None  # the id holding most of its former members; None when they all left


@dataclass(frozen=True, slots=True)
class Assignment:
    membership: dict[str, str]  # every canonical id of the clustering -> its golden id
    created: tuple[str, ...]  # ids given for the first time, in creation order
    retired: tuple[Retirement, ...]
    moves: tuple[Move, ...]
    changed: frozenset[str]  # ids (kept or created) whose set of members changed
    next_free: int  # the first number not used

    @property
    def unchanged(self) -> bool:
        return not (self.created or self.retired or self.moves)


def assign_ids(
    previous: Mapping[str, str],
    clustering: Mapping[str, Hashable],
    next_free: int,
    order: Mapping[str, int] | None = None,
) -> Assignment:
    """Golden ids for `clustering` given the `previous` membership.

    `order` is each previous golden id's creation order (smaller = older); without it the number in the
    id is the order. New ids are numbered from `next_free` (or past the highest previous number, if
    that is larger), so the caller passes the sequence's next value and no id is given twice.
    """
    age = order if order is not None else _numbers(previous)
    clusters: dict[Hashable, list[str]] = {}
    for cid, key in clustering.items():
        found = clusters.get(key)
        if found is None:
            clusters[key] = [cid]
        else:
            found.append(cid)
    previous_size = Counter(previous.values())
    previous_get = previous.get

    # The fast path: a cluster whose members are exactly one old id's keeps it. Their membership is
    # the previous one, copied at C speed below; only the other clusters are walked again.
    owner: dict[str, Hashable] = {}  # golden id -> the cluster that keeps it
    overlaps: dict[Hashable, dict[str, int]] = {}  # the other clusters: old id -> shared members
    kept_members = 0
    for key, members in clusters.items():
        if len(members) == 1:
            gid = previous_get(members[0])
            if gid is not None and previous_size[gid] == 1:
                owner[gid] = key
                kept_members += 1
                continue
            overlaps[key] = {gid: 1} if gid is not None else {}
            continue
        counts: dict[str, int] = {}
        for cid in members:
            g = previous_get(cid)
            if g is not None:
                counts[g] = counts.get(g, 0) + 1
        if len(counts) == 1:
            ((gid, n),) = counts.items()
            if n == len(members) == previous_size[gid]:
                owner[gid] = key
                kept_members += len(members)
                continue
        overlaps[key] = counts

    # The rest: (cluster, old id) pairs taken greedily in one total order.
    smallest = {key: min(clusters[key]) for key in overlaps}
    candidates = [
        (-n, age[g], smallest[key], g, key) for key, counts in overlaps.items() for g, n in counts.items()
    ]
    candidates.sort(key=lambda c: (c[0], c[1], c[2]))
    taken: dict[Hashable, str] = {}  # cluster off the fast path -> its golden id
    for _, _, _, g, key in candidates:
        if key not in taken and g not in owner:
            taken[key] = g
            owner[g] = key

    start = max(next_free, max(age.values(), default=0) + 1)
    unnamed = sorted((smallest[key], key) for key in overlaps if key not in taken)
    created: list[str] = []
    for number, (_, key) in enumerate(unnamed, start=start):
        gid = golden_id_of(number)
        created.append(gid)
        taken[key] = gid
    created_set = frozenset(created)

    carried = sum(sum(counts.values()) for counts in overlaps.values())
    nothing_removed = kept_members + carried == len(previous)
    membership = dict(previous)
    removed: dict[str, list[str]] = {}
    if not nothing_removed:
        for cid in previous.keys() - clustering.keys():
            removed.setdefault(membership.pop(cid), []).append(cid)

    moves: list[Move] = []
    changed: set[str] = set()
    went_to: dict[str, dict[str, int]] = {}  # old id -> new id -> members, for the successor
    for key in sorted(overlaps, key=smallest.__getitem__):
        gid = taken[key]
        members = clusters[key]
        for cid in members:
            membership[cid] = gid
        if not overlaps[key]:  # records seen for the first time, all of them
            moves.append(Move("new", gid, None, tuple(sorted(members))))
            changed.add(gid)
            continue
        by_origin: dict[str | None, list[str]] = {}
        for cid in members:
            by_origin.setdefault(previous_get(cid), []).append(cid)
        for origin, moved in sorted(by_origin.items(), key=lambda o: _origin_order(o[0], age)):
            if origin is not None:
                flow = went_to.setdefault(origin, {})
                flow[gid] = flow.get(gid, 0) + len(moved)
            if origin == gid:
                continue
            if origin is None:
                kind: MoveKind = "new"
            else:
                kind = "split" if gid in created_set else "merge"
                changed.add(origin)
            moves.append(Move(kind, gid, origin, tuple(sorted(moved))))
            changed.add(gid)
        if gid in previous_size and len(members) != previous_size[gid]:
            changed.add(gid)  # lost members to another cluster
    for gid in sorted(removed, key=age.__getitem__):
        moves.append(Move("removed", gid, None, tuple(sorted(removed[gid]))))
        changed.add(gid)

    retired: list[Retirement] = []
    for gid in sorted((g for g in previous_size if g not in owner), key=age.__getitem__):
        retired.append(Retirement(gid, _successor(went_to.get(gid, {}), age)))
    retired_ids = {r.golden_id for r in retired}
    return Assignment(
        membership=membership,
        created=tuple(created),
        retired=tuple(retired),
        moves=tuple(moves),
        changed=frozenset(changed - retired_ids),
        next_free=start + len(created),
    )


def _numbers(previous: Mapping[str, str]) -> dict[str, int]:
    return {g: number_of(g) for g in set(previous.values())}


def _origin_order(origin: str | None, age: Mapping[str, int]) -> tuple[int, int]:
    """New records first, then the old ids by age."""
    return (0, 0) if origin is None else (1, age[origin])


def _successor(went_to: Mapping[str, int], age: Mapping[str, int]) -> str | None:
    if not went_to:
        return None
    # Most members, then the oldest: new ids have no age yet and sort after every old one.
    return min(went_to, key=lambda g: (-went_to[g], age.get(g, 1 << 62), number_of(g)))
