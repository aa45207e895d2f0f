"""A source definition compiled for the per-record readers: plain tuples, built once per definition.

A path is ``(dotted, head, rest)``: ``"financials.annualRevenue"`` is
``("financials.annualRevenue", "financials", ("annualRevenue",))``, a plain key ``("id", "id", ())``.
A combination is ``(label, parts, separator)``: its parts' text joined, e.g. given + family name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import NewType

# A source system's name, as its definition spells it (validated there: lower-case letters, digits, _).
SourceSystem = NewType("SourceSystem", str)

Path = tuple[str, str, tuple[str, ...]]
Paths = tuple[Path, ...]
Combination = tuple[str, Paths, str]


def compile_path(dotted: str) -> Path:
    head, *rest = dotted.split(".")
    return dotted, head, tuple(rest)


def compile_paths(dotted: tuple[str, ...] | list[str]) -> Paths:
    return tuple(compile_path(p) for p in dotted)


@dataclass(frozen=True, slots=True, eq=False)
class CompiledSource:
    """What the mapping reads for one source. Identity equality: hashing every tuple per record would
    cost more than the mapping saves."""

    name: SourceSystem
    prefixes: tuple[str, ...]
    suffixes: tuple[str, ...]  # file name endings its formats allow
    id: Paths
    name_paths: Paths
    name_combinations: tuple[Combination, ...]
    revenue: Paths
    revenue_scale: Decimal | None  # None: as received
    revenue_numeric_strings: bool
    employees: Paths
    employees_scale: Decimal | None
    employees_numeric_strings: bool
    industry: Paths
    industry_combinations: tuple[Combination, ...]
    parent: Paths
    metrics: Paths
    change_time: Paths
    change_time_heads: frozenset[str]  # top-level keys of change_time: a record without any skips it
    # The content hash of the mapping rules and this definition (resources/sources/version.py), written
    # into each entity version's metadata.
    transformation_version: str
    snapshot: bool = False  # each file is the whole source: what a newer one lacks is retired
    status: Paths = ()
    country: Paths = ()
    currency: Paths = ()
    currency_heads: frozenset[str] = frozenset()  # top-level keys of currency: most records have none
    # A record holding one of a marker's values at its path says the entity was deleted at the source.
    # Values as (type, value): JSON true must not match a marker's 1, nor 1 a marker's true.
    delete_markers: tuple[tuple[Path, frozenset[tuple[type, object]]], ...] = ()
    delete_marker_heads: frozenset[str] = frozenset()  # their top-level keys: most records have none
    # Top-level keys of parent and metrics: a record without any skips their readers (most have none).
    parent_heads: frozenset[str] = frozenset()
    metrics_heads: frozenset[str] = frozenset()

    def with_change_time(self, keys: tuple[str, ...]) -> CompiledSource:
        """This source with other change-time fields (INGEST_CHANGE_TIME_FIELDS; () turns them off)."""
        paths = compile_paths(keys)
        return replace(self, change_time=paths, change_time_heads=frozenset(p[1] for p in paths))


def looked_for(paths: Paths, combinations: tuple[Combination, ...] = ()) -> str:
    """The field names a missing field was looked for under, for its problem's message."""
    return ", ".join([p[0] for p in paths] + [c[0] for c in combinations])
