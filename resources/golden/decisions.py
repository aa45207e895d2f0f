"""Steward decisions as constraints, and their enforcement on a clustering (pure).

A steward's decision always wins over the model. The matching engine receives them as must-link and
cannot-link pairs; whatever clustering it returns, `enforce` makes it obey them before ids are given:
must-linked records end in one cluster, and a cannot-linked record that still shares a cluster with
the other leaves it (with the records it is must-linked to). Two decisions that contradict each other
(a chain of `same` joining what a `not_same` separates) leave the records together and are reported.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

DecisionKind = Literal["same", "not_same", "move_out"]


def ordered(a: str, b: str) -> tuple[str, str]:
    """A pair in its stored order: the smaller canonical id (by code point) first."""
    return (a, b) if a < b else (b, a)


@dataclass(frozen=True, slots=True)
class Link:
    """One pair a decision speaks about. `leaving` is the record that leaves a shared cluster when the
    pair must be apart (the moved member of a move_out; the right-hand record of a not_same)."""

    canonical_id_l: str
    canonical_id_r: str
    decision_id: int
    kind: DecisionKind
    decided_by: str
    leaving: str | None = None


@dataclass(frozen=True, slots=True)
class Constraints:
    must_link: tuple[Link, ...] = ()
    cannot_link: tuple[Link, ...] = ()

    def pairs(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(must-link, cannot-link) as plain pairs: what the matching engine takes."""
        return (
            [(x.canonical_id_l, x.canonical_id_r) for x in self.must_link],
            [(x.canonical_id_l, x.canonical_id_r) for x in self.cannot_link],
        )


@dataclass(frozen=True, slots=True)
class Enforced:
    clustering: dict[str, Hashable]
    applied: tuple[Link, ...]  # decisions that changed the clustering
    conflicts: tuple[Link, ...]  # cannot-links that must-links overrule


def enforce(clustering: Mapping[str, Hashable], constraints: Constraints) -> Enforced:
    """`clustering` changed as little as needed to obey every decision about records it holds."""
    out: dict[str, Hashable] = dict(clustering)
    applied: list[Link] = []
    links = [x for x in constraints.must_link if x.canonical_id_l in out and x.canonical_id_r in out]
    # Must-links: union the clusters they join (keys compared, so a cluster moves as a whole).
    parent: dict[Hashable, Hashable] = {}

    def root(k: Hashable) -> Hashable:
        while parent.get(k, k) != k:
            k = parent[k]
        return k

    for x in links:
        a, b = root(out[x.canonical_id_l]), root(out[x.canonical_id_r])
        if a != b:
            parent[b] = a
            applied.append(x)
    if parent:
        out = {cid: root(k) for cid, k in out.items()}

    together = _components(links)
    conflicts: list[Link] = []
    for x in constraints.cannot_link:
        if x.canonical_id_l not in out or x.canonical_id_r not in out:
            continue
        if out[x.canonical_id_l] != out[x.canonical_id_r]:
            continue
        leaving = x.leaving or x.canonical_id_r
        staying = x.canonical_id_l if leaving == x.canonical_id_r else x.canonical_id_r
        group = together.get(leaving, frozenset({leaving}))
        if staying in group:
            conflicts.append(x)
            continue
        new_key: Hashable = ("steward", min(group))
        for cid in group:
            out[cid] = new_key
        applied.append(x)
    return Enforced(out, tuple(applied), tuple(conflicts))


def _components(links: Iterable[Link]) -> dict[str, frozenset[str]]:
    """Records joined by must-links, each mapped to its whole group."""
    groups: dict[str, set[str]] = {}
    for x in links:
        a = groups.get(x.canonical_id_l, {x.canonical_id_l})
        b = groups.get(x.canonical_id_r, {x.canonical_id_r})
        if a is b:
            continue
        merged = a | b
        for cid in merged:
            groups[cid] = merged
    return {cid: frozenset(g) for cid, g in groups.items()}
