"""A source's vocabularies compiled for the mapping: per record, a dict lookup of the value as it came.

Each `Lookup` remembers what every raw value it has seen resolved to, so only a value's first sight
pays for normalising it (or, for an industry code, for the longest-prefix search); a file's records
repeat a few dozen values. The memory is bounded: past `MEMO_LIMIT` distinct raw values (free text
that never repeats) the rest are resolved each time, still correctly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from resources.vocabularies.normalise import normalise

MEMO_LIMIT = 10_000
# A resolved value no vocabulary entry matched: falsy, unlike every canonical value.
UNMAPPED = ""


class Lookup:
    """Raw text -> canonical value, or UNMAPPED. `known.get(raw)` first (None: not seen yet), then
    `learn(raw)`: callers on the per-record path inline the first step."""

    __slots__ = ("_variants", "known")

    def __init__(self, variants: Mapping[str, str]) -> None:
        self._variants = variants  # normalised variant -> canonical value
        self.known: dict[str, str] = {}

    def learn(self, raw: str) -> str:
        found = self._resolve(raw)
        if len(self.known) < MEMO_LIMIT:
            self.known[raw] = found
        return found

    def __call__(self, raw: str) -> str:
        found = self.known.get(raw)
        return self.learn(raw) if found is None else found

    def _resolve(self, raw: str) -> str:
        return self._variants.get(normalise(raw), UNMAPPED)


class IndustryLookup:
    """An industry's name, or a NAICS code (2 to 6 digits) by its longest known prefix: "541512" is
    "5415"'s industry when no longer prefix is listed. `known` holds (canonical or UNMAPPED, the NAICS
    code or None) per raw text: the mapping keeps the code beside the industry."""

    __slots__ = ("_codes", "_names", "known")

    def __init__(self, variants: Mapping[str, str], codes: Mapping[str, str]) -> None:
        self._names = Lookup(variants)
        self._codes = codes
        self.known: dict[str, tuple[str, str | None]] = {}

    def learn(self, raw: str) -> tuple[str, str | None]:
        found = self._resolve(raw)
        if len(self.known) < MEMO_LIMIT:
            self.known[raw] = found
        return found

    def __call__(self, raw: str) -> str:
        """The canonical industry of `raw`, or UNMAPPED."""
        return (self.known.get(raw) or self.learn(raw))[0]

    def _resolve(self, raw: str) -> tuple[str, str | None]:
        if not is_naics(raw):
            return self._names(raw), None
        for end in range(len(raw), 1, -1):
            found = self._codes.get(raw[:end])
            if found is not None:
                return found, raw
        return UNMAPPED, raw


def is_naics(text: str) -> bool:
    """2 to 6 ASCII digits: a NAICS code (sector to national industry)."""
    return 2 <= len(text) <= 6 and text.isascii() and text.isdigit()


@dataclass(frozen=True, slots=True)
class SourceTerms:
    """What the mapping looks a source's coded values up in."""

    industry: IndustryLookup
    country: Lookup  # -> ISO 3166-1 alpha-2
    status: Lookup  # -> active | inactive | deleted (the source's own codes first)
    currency: Lookup  # -> ISO 4217
    base_currency: str


def build_terms(
    *,
    industry: Mapping[str, str],
    naics: Mapping[str, str],
    country: Mapping[str, str],
    status: Mapping[str, str],
    currency: Mapping[str, str],
    base_currency: str,
) -> SourceTerms:
    return SourceTerms(
        industry=IndustryLookup(industry, naics),
        country=Lookup(country),
        status=Lookup(status),
        currency=Lookup(currency),
        base_currency=base_currency,
    )
