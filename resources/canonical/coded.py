"""A record's coded fields read through its source's vocabularies (resources/vocabularies/): industry,
status, country and the currency of revenue.

A value no vocabulary entry matches is never a problem: it stays in the attributes as it came and is
named in the record's `unmapped` (vocabulary, value), which ingest counts per file.

`coding(source)` compiles a source's reader once (a loader: once per file). Per record it is then a few
dict lookups of the values as they came (lookup.py remembers each raw value's answer), with the paths
and lookups bound in a closure: attribute look-ups, type checks and a call per field would cost more
than the lookups themselves, on the path every record takes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from resources.canonical.model import EntityStatus
from resources.sources.compiled import CompiledSource, Paths
from resources.vocabularies.catalogue import Vocabularies, get_vocabularies
from resources.vocabularies.lookup import UNMAPPED, Lookup, SourceTerms

# The value types a delete marker names (a list or an object found at its path is no marker).
_MARKER_TYPES = (str, int, bool)
# What an unmapped value is shown as on the file's row: enough to recognise it.
MAX_EXAMPLE_LENGTH = 100

Unmapped = list[tuple[str, str]]  # (vocabulary, value as it came)
# (record, attributes, industry as read, whether it has revenue) -> (industry, status, unmapped or None).
# What the vocabularies add is set in attributes: industry, naics_code, country_code, revenue_currency,
# revenue_currency_mismatch.
CodedReader = Callable[
    [dict[str, Any], dict[str, Any], str | None, bool], tuple[str | None, EntityStatus, Unmapped | None]
]


@dataclass(frozen=True, slots=True)
class Coding:
    """A source's vocabulary lookups and the reader of its coded fields, compiled together."""

    terms: SourceTerms
    read: CodedReader


def coding(source: CompiledSource, terms: SourceTerms | None = None) -> Coding:
    """`source`'s coding (`terms`: its lookups; default: the vocabularies in effect for its name)."""
    terms = terms or get_vocabularies().for_source(source.name)
    return Coding(terms, _reader(source, terms))


# A caller that maps records one by one without a compiled coding (tests, a benchmark's peer) reuses one
# per source definition while the vocabularies in effect stay the same.
_CODINGS: dict[CompiledSource, tuple[Vocabularies, Coding]] = {}
_MAX_CODINGS = 64  # sources with per-call change-time fields are new objects every call


def coding_of(source: CompiledSource) -> Coding:
    """`coding(source)`, compiled once per source definition and vocabularies in effect."""
    vocabularies = get_vocabularies()
    kept = _CODINGS.get(source)
    if kept is not None and kept[0] is vocabularies:
        return kept[1]
    if len(_CODINGS) >= _MAX_CODINGS:
        _CODINGS.clear()
    made = coding(source, vocabularies.for_source(source.name))
    _CODINGS[source] = (vocabularies, made)
    return made


def _reader(source: CompiledSource, terms: SourceTerms) -> CodedReader:
    status_key, status_paths = _single_key(source.status)
    country_key, country_paths = _single_key(source.country)
    currency_paths, currency_heads = source.currency, source.currency_heads
    industry_get, industry_learn = terms.industry.known.get, terms.industry.learn
    status_get, country_get = terms.status.known.get, terms.country.known.get
    status_lookup, country_lookup, currency_lookup = terms.status, terms.country, terms.currency
    currency_get = currency_lookup.known.get
    base = terms.base_currency
    markers, marker_heads = source.delete_markers, source.delete_marker_heads
    rare_heads = marker_heads | currency_heads  # one check for the common record that has neither

    def read(
        record: dict[str, Any], attributes: dict[str, Any], industry: str | None, has_revenue: bool
    ) -> tuple[str | None, EntityStatus, Unmapped | None]:
        unmapped: Unmapped | None = None
        if industry is not None:
            named = industry_get(industry)
            if named is None:
                named = industry_learn(industry)
            canonical, naics = named
            if naics is not None:
                attributes["naics_code"] = naics  # the code is kept beside the industry it names
            if canonical:
                if canonical != industry:  # most names arrive canonical already
                    attributes["industry"] = industry = canonical
            else:
                unmapped = [("industry", industry)]
        status: EntityStatus = "active"  # no status field, or one no vocabulary entry matches
        raw = record.get(status_key) if status_key else _value(record, status_paths)
        if raw is not None:
            try:  # a value seen before, as it came (a list or an object cannot be one)
                found = status_get(raw)
            except TypeError:
                found = None
            if found is None:
                found = _learn(status_lookup, raw)
            if found:
                status = found  # type: ignore[assignment]  # the status vocabulary holds only the three
            else:
                unmapped = [*(unmapped or ()), ("status", _example(raw))]
        # isdisjoint: one C call for the common record that carries no marker's field and no currency
        rare = bool(rare_heads) and not record.keys().isdisjoint(rare_heads)
        if rare and marker_heads and not record.keys().isdisjoint(marker_heads):
            for path, values in markers:
                marked = _value(record, (path,))
                if type(marked) in _MARKER_TYPES and (type(marked), marked) in values:
                    status = "deleted"  # the source's own word wins over the status vocabulary
                    break
        raw = record.get(country_key) if country_key else _value(record, country_paths)
        if raw is not None:
            try:
                found = country_get(raw)
            except TypeError:
                found = None
            if found is None:
                found = _learn(country_lookup, raw)
            if found:
                attributes["country_code"] = found
            else:
                unmapped = [*(unmapped or ()), ("country", _example(raw))]
        if rare and not record.keys().isdisjoint(currency_heads):
            raw = _value(record, currency_paths)
            if raw is not None:
                try:  # a value seen before, as it came, like status and country
                    found = currency_get(raw)
                except TypeError:
                    found = None
                if found is None:
                    found = _learn(currency_lookup, raw)
                if found:
                    attributes["revenue_currency"] = found
                else:
                    unmapped = [*(unmapped or ()), ("currency", _example(raw))]
                if has_revenue:
                    # Never converted: an amount not known to be in the base currency is flagged.
                    attributes["revenue_currency_mismatch"] = found != base
        return industry, status, unmapped

    return read


def _single_key(paths: Paths) -> tuple[str | None, Paths]:
    """The one top-level key when that is all the paths are (the usual case: read with one get)."""
    if len(paths) == 1 and not paths[0][2]:
        return paths[0][1], paths
    return None, paths


def _value(record: dict[str, Any], paths: Paths) -> Any:
    for _dotted, head, rest in paths:
        value = record.get(head)
        for inner in rest:
            value = value.get(inner) if isinstance(value, dict) else None
        if value is not None:
            return value
    return None


def _learn(lookup: Lookup, raw: Any) -> str:
    """The canonical value of `raw`, or UNMAPPED: text as it came; a number or a boolean by its JSON
    text (never remembered under the number: 1 and True are one dict key)."""
    if isinstance(raw, bool):
        raw = "true" if raw else "false"
    elif isinstance(raw, int):
        raw = str(raw)
    elif not isinstance(raw, str):
        return UNMAPPED
    found = lookup.known.get(raw)
    return lookup.learn(raw) if found is None else found


def _example(raw: Any) -> str:
    text = raw if isinstance(raw, str) else repr(raw)
    return text[:MAX_EXAMPLE_LENGTH]
