"""From scored pairs to clusters, with evidence beyond the pair.

Constrained union-find: steward must-links first, then the automatic links in descending weight, each
union refused when it would put a cannot-link pair in one cluster (a parent link says two records are two
entities; a steward said so), when it would put two ids of a source that does not duplicate its own
records in one cluster on less than a very strong score, or when the two clusters it joins are linked by
this one edge rather than by more than half of their cross pairs (so a chain of similar names does not collapse into
one company). Pairs in the review band, and automatic links refused on a judgement (same source, weak
link), go to review; links refused by a decision do not. Same input, same output: edges are taken in a
total order (weight, then ids).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from resources.resolution.config import ResolutionConfig

__all__ = ["Clustering", "Decision", "cluster_pairs"]

ReviewReason = Literal["review band", "same source", "weak link between clusters"]


@dataclass(frozen=True, slots=True)
class Decision:
    """A steward's word on a pair: it wins over the model."""

    canonical_id_l: str
    canonical_id_r: str
    kind: Literal["must_link", "cannot_link"]


@dataclass(frozen=True, slots=True)
class Clustering:
    clusters: dict[str, str]  # canonical_id -> cluster key (the smallest canonical_id of its cluster)
    review: pd.DataFrame  # canonical_id_l, canonical_id_r, match_weight, match_probability, reason
    conflicts: tuple[str, ...]  # steward must-links refused by a steward cannot-link, in words


class _Components:
    def __init__(self, ids: Iterable[str], sources: Mapping[str, str], exclusive: set[str]) -> None:
        self.parent: dict[str, str] = {i: i for i in ids}
        self.members: dict[str, list[str]] = {i: [i] for i in self.parent}
        self.cannot: dict[str, set[str]] = {}
        # Per component, the sources among its members that do not duplicate their own records.
        self.exclusive: dict[str, set[str]] = {
            i: {sources[i]} for i in self.parent if sources.get(i) in exclusive and i in sources
        }

    def find(self, x: str) -> str:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def add_cannot(self, a: str, b: str) -> None:
        self.cannot.setdefault(self.find(a), set()).add(b)
        self.cannot.setdefault(self.find(b), set()).add(a)

    def forbidden(self, ra: str, rb: str) -> bool:
        ca, cb = self.cannot.get(ra, set()), self.cannot.get(rb, set())
        if len(ca) > len(cb):
            ca, cb, ra, rb = cb, ca, rb, ra
        return any(self.find(x) == rb for x in ca)

    def shared_exclusive_source(self, ra: str, rb: str) -> bool:
        return bool(self.exclusive.get(ra, set()) & self.exclusive.get(rb, set()))

    def union(self, ra: str, rb: str) -> None:
        if len(self.members[ra]) < len(self.members[rb]):
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.members[ra].extend(self.members.pop(rb))
        if rb in self.cannot:
            self.cannot.setdefault(ra, set()).update(self.cannot.pop(rb))
        if rb in self.exclusive:
            self.exclusive.setdefault(ra, set()).update(self.exclusive.pop(rb))


def cluster_pairs(
    ids: Iterable[str],
    sources: Mapping[str, str],
    pairs: pd.DataFrame,
    config: ResolutionConfig,
    *,
    decisions: Iterable[Decision] = (),
    parents: Iterable[tuple[str, str]] = (),
) -> Clustering:
    """Cluster `ids` (every entity; singletons come back as their own key).

    `sources`: canonical_id -> source_system. `pairs`: canonical_id_l, canonical_id_r, evidence_weight,
    match_probability (the scored pairs, any order; the thresholds apply to evidence_weight). `parents`: (child, parent) canonical ids.
    Ids in decisions or parents that are not in `ids` are ignored.
    """
    th = config.thresholds
    exclusive = {s for s in set(sources.values()) if not config.deduplicates_itself(s)}
    all_ids = list(ids)
    known_ids = set(all_ids)
    decisions = list(decisions)
    parents = list(parents)
    # Only records in a pair, a decision or a parent link can join anything: the rest (most of a large
    # store) are their own clusters, and the union-find need not hold them.
    touched = (
        set(pairs["canonical_id_l"].astype(str))
        | set(pairs["canonical_id_r"].astype(str))
        | {x for d in decisions for x in (d.canonical_id_l, d.canonical_id_r)}
        | {x for link in parents for x in link}
    ) & known_ids
    comps = _Components(sorted(touched), sources, exclusive)
    known = comps.parent

    for child, parent in parents:
        if child in known and parent in known and child != parent:
            comps.add_cannot(child, parent)
    decided: set[tuple[str, str]] = set()
    must: list[tuple[str, str]] = []
    for d in decisions:
        a, b = sorted((d.canonical_id_l, d.canonical_id_r))
        if a not in known or b not in known or a == b:
            continue
        decided.add((a, b))
        if d.kind == "cannot_link":
            comps.add_cannot(a, b)
        else:
            must.append((a, b))
    conflicts: list[str] = []
    for a, b in sorted(must):
        ra, rb = comps.find(a), comps.find(b)
        if ra == rb:
            continue
        if comps.forbidden(ra, rb):
            conflicts.append(
                f"must-link {a} / {b} would join a steward's or a parent link's cannot-link pair"
            )
            continue
        comps.union(ra, rb)

    ls = pairs["canonical_id_l"].astype(str).tolist()
    rs = pairs["canonical_id_r"].astype(str).tolist()
    ws = pairs["evidence_weight"].astype(float).tolist()
    ps = (
        pairs["match_probability"].astype(float).tolist() if "match_probability" in pairs else [0.0] * len(ws)
    )
    # Neighbours at or above the review band's lower edge: the evidence a merge of two clusters is weighed by.
    linked: dict[str, set[str]] = {}
    edges: list[tuple[float, str, str, float]] = []
    for left, right, w, p in zip(ls, rs, ws, ps, strict=True):
        a, b = (left, right) if left <= right else (right, left)
        if a not in known or b not in known or a == b:
            continue
        if w >= th.lower:
            linked.setdefault(a, set()).add(b)
            linked.setdefault(b, set()).add(a)
        edges.append((w, a, b, p))
    edges.sort(key=lambda e: (-e[0], e[1], e[2]))

    refused: dict[tuple[str, str], ReviewReason] = {}
    for w, a, b, _ in edges:
        if w < th.upper:
            break
        if (a, b) in decided:
            continue
        ra, rb = comps.find(a), comps.find(b)
        if ra == rb or comps.forbidden(ra, rb):
            continue
        if comps.shared_exclusive_source(ra, rb) and w < th.same_source_link:
            refused[(a, b)] = "same source"
            continue
        size_a, size_b = len(comps.members[ra]), len(comps.members[rb])
        if size_a + size_b > 2:
            small, other = (ra, rb) if size_a <= size_b else (rb, ra)
            cross = sum(1 for x in comps.members[small] for y in linked.get(x, ()) if comps.find(y) == other)
            # More than the share, not as much: a record that reaches one of a pair's two members but not
            # the other has met only half of that company; in a large store it is as often a near-name
            # neighbour of one of them as a third record of the company.
            if cross <= th.min_cross_link_share * size_a * size_b:
                refused[(a, b)] = "weak link between clusters"
                continue
        comps.union(ra, rb)

    clusters: dict[str, str] = {i: i for i in all_ids}
    for members in comps.members.values():
        key = min(members)
        for m in members:
            clusters[m] = key

    review_rows: list[tuple[str, str, float, float, str]] = []
    for w, a, b, p in edges:
        if w < th.lower or (a, b) in decided or clusters[a] == clusters[b]:
            continue
        ra, rb = comps.find(a), comps.find(b)
        if comps.forbidden(ra, rb):
            continue
        reason = refused.get((a, b), "review band" if w < th.upper else None)
        if reason is not None:
            review_rows.append((a, b, w, p, reason))
    review_rows.sort(key=lambda r: (r[0], r[1]))
    review = pd.DataFrame(
        review_rows,
        columns=["canonical_id_l", "canonical_id_r", "evidence_weight", "match_probability", "reason"],
    )
    return Clustering(dict(sorted(clusters.items())), review, tuple(conflicts))
