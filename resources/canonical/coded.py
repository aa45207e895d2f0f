"""A record's coded fields read through its source's vocabularies (resources/vocabularies/): status,
country and the currency of revenue (the industry's lookup is inline in mapping.py, beside its reader).

A value no vocabulary entry matches is never a problem: it stays in the attributes as it came and is
named in the record's `unmapped` (vocabulary, value), which ingest counts per file.

Per record this is a few dict lookups of the values as they came (lookup.py remembers each raw value's
answer). The paths are walked inline rather than through `fields.first`: a call per field would cost
more than the lookup.
"""

from __future__ import annotations

from typing import Any

from resources.canonical.model import EntityStatus
from resources.sources.compiled import CompiledSource
from resources.vocabularies.lookup import UNMAPPED, Lookup, SourceTerms

# What an unmapped value is shown as on the file's row: enough to recognise it.
MAX_EXAMPLE_LENGTH = 100

Unmapped = list[tuple[str, str]]  # (vocabulary, value as it came)


def read_coded(
    record: dict[str, Any], source: CompiledSource, terms: SourceTerms, attributes: dict[str, Any]
) -> tuple[EntityStatus, bool, Unmapped | None]:
    """(status, whether the record names a currency, the unmapped values or None). The country and
    currency codes found are set in `attributes` (country_code, revenue_currency)."""
    unmapped: Unmapped | None = None
    status: EntityStatus = "active"  # no status field, or one no vocabulary entry matches
    for _dotted, head, rest in source.status:
        raw = record.get(head)
        if rest:
            raw = _nested(raw, rest)
        if raw is not None:
            found = terms.status.known.get(raw) if type(raw) is str else None
            if found is None:
                found = _learn(terms.status, raw)
            if found:
                status = found  # type: ignore[assignment]  # the status vocabulary holds only the three
            else:
                unmapped = [("status", _example(raw))]
            break
    for _dotted, head, rest in source.country:
        raw = record.get(head)
        if rest:
            raw = _nested(raw, rest)
        if raw is not None:
            found = terms.country.known.get(raw) if type(raw) is str else None
            if found is None:
                found = _learn(terms.country, raw)
            if found:
                attributes["country_code"] = found
            else:
                unmapped = [*(unmapped or ()), ("country", _example(raw))]
            break
    currency_given = False
    # isdisjoint: one C call for the common record that names no currency
    for _dotted, head, rest in () if record.keys().isdisjoint(source.currency_heads) else source.currency:
        raw = record.get(head)
        if rest:
            raw = _nested(raw, rest)
        if raw is not None:
            currency_given = True
            found = terms.currency.known.get(raw) if type(raw) is str else None
            if found is None:
                found = _learn(terms.currency, raw)
            if found:
                attributes["revenue_currency"] = found
            else:
                unmapped = [*(unmapped or ()), ("currency", _example(raw))]
            break
    return status, currency_given, unmapped


def _nested(value: Any, rest: tuple[str, ...]) -> Any:
    for inner in rest:
        value = value.get(inner) if isinstance(value, dict) else None
    return value


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
