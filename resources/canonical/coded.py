"""A record's coded fields read through its source's vocabularies (resources/vocabularies/): status,
country and the currency of revenue. The industry's lookup is inline in mapping.py, after its reader.

A value no vocabulary entry matches is never a problem: it stays in the attributes as it came and is
named in the record's `unmapped` (vocabulary, value), which ingest counts per file.

`coding(source)` compiles a source's reader once (a loader: once per file): per record it is then a few
dict lookups of the values as they came (lookup.py remembers each raw value's answer), with the paths
and lookups bound in a closure, because attribute look-ups and a call per field would cost more than
the lookups themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from resources.canonical.model import EntityStatus
from resources.sources.compiled import CompiledSource, Paths
from resources.vocabularies.catalogue import Vocabularies, get_vocabularies
from resources.vocabularies.lookup import UNMAPPED, Lookup, SourceTerms

# What an unmapped value is shown as on the file's row: enough to recognise it.
MAX_EXAMPLE_LENGTH = 100

Unmapped = list[tuple[str, str]]  # (vocabulary, value as it came)
# (record, attributes) -> (status, whether the record names a currency, unmapped or None); the country
# and currency codes found are set in attributes (country_code, revenue_currency).
CodedReader = Callable[[dict[str, Any], dict[str, Any]], tuple[EntityStatus, bool, Unmapped | None]]


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
    status_known, country_known, currency_known = (
        terms.status.known,
        terms.country.known,
        terms.currency.known,
    )
    status_lookup, country_lookup, currency_lookup = terms.status, terms.country, terms.currency

    def read(
        record: dict[str, Any], attributes: dict[str, Any]
    ) -> tuple[EntityStatus, bool, Unmapped | None]:
        unmapped: Unmapped | None = None
        status: EntityStatus = "active"  # no status field, or one no vocabulary entry matches
        raw = record.get(status_key) if status_key else _value(record, status_paths)
        if raw is not None:
            found = status_known.get(raw) if type(raw) is str else None
            if found is None:
                found = _learn(status_lookup, raw)
            if found:
                status = found  # type: ignore[assignment]  # the status vocabulary holds only the three
            else:
                unmapped = [("status", _example(raw))]
        raw = record.get(country_key) if country_key else _value(record, country_paths)
        if raw is not None:
            found = country_known.get(raw) if type(raw) is str else None
            if found is None:
                found = _learn(country_lookup, raw)
            if found:
                attributes["country_code"] = found
            else:
                unmapped = [*(unmapped or ()), ("country", _example(raw))]
        # isdisjoint: one C call for the common record that names no currency
        if record.keys().isdisjoint(currency_heads):
            return status, False, unmapped
        raw = _value(record, currency_paths)
        if raw is None:
            return status, False, unmapped
        found = currency_known.get(raw) if type(raw) is str else None
        if found is None:
            found = _learn(currency_lookup, raw)
        if found:
            attributes["revenue_currency"] = found
        else:
            unmapped = [*(unmapped or ()), ("currency", _example(raw))]
        return status, True, unmapped

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
    """A value not seen before: text as it came; a number or a boolean by its JSON text; else UNMAPPED."""
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
