"""The vocabularies in effect: the shipped files, plus a deployment's own.

The shipped files are `resources/vocabularies/shipped/*.json` (in the package, so in the Dagster image
and the Lambda zip as they are), one per vocabulary. `VOCABULARY_PATH` names a directory or an
`s3://bucket/prefix/` whose `*.json` files add entries or override shipped ones (read in file-name
order; a later file's entry wins), without a new image. Read once per process (`get_vocabularies()`),
like the source definitions, with the same reader (resources/sources/catalogue.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from resources.settings import Settings, get_settings
from resources.sources.catalogue import read_documents
from resources.sources.definition import DefinitionProblem
from resources.vocabularies.document import (
    STATUSES,
    VOCABULARIES,
    VocabularyDocument,
    VocabularyError,
    VocabularyName,
    parse_vocabulary,
)
from resources.vocabularies.lookup import SourceTerms, build_terms
from resources.vocabularies.normalise import normalise

SHIPPED = Path(__file__).resolve().parent / "shipped"
DEFAULT_BASE_CURRENCY = "USD"


@dataclass(frozen=True)
class Vocabulary:
    """One vocabulary, its files merged: canonical values, variants by their normalised key."""

    name: VocabularyName
    canonical: tuple[str, ...]  # in the order first named
    variants: Mapping[str, str]  # normalised variant (a canonical value's own key included) -> canonical
    codes: Mapping[str, str] = field(default_factory=dict)  # industry: NAICS prefix -> canonical
    sources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # status: per source, as variants
    base: str | None = None  # currency
    versions: tuple[tuple[str, str], ...] = ()  # (file, version) of each file merged, shipped first


@dataclass(frozen=True)
class Vocabularies:
    """The four vocabularies, and each source's compiled lookups (built on first use, then kept)."""

    industry: Vocabulary
    country: Vocabulary
    status: Vocabulary
    currency: Vocabulary
    _terms: dict[str, SourceTerms] = field(default_factory=dict, compare=False, repr=False)

    @property
    def versions(self) -> dict[str, list[str]]:
        """Per vocabulary, "<version> (<file>)" of each file merged: what a run reports it used."""
        return {
            v.name: [
                f"{version} ({origin.replace(str(SHIPPED), 'shipped')})" for origin, version in v.versions
            ]
            for v in (self.industry, self.country, self.status, self.currency)
        }

    def for_source(self, source: str) -> SourceTerms:
        """The lookups of one source system (its own status codes first), built once."""
        terms = self._terms.get(source)
        if terms is None:
            terms = build_terms(
                industry=self.industry.variants,
                naics=self.industry.codes,
                country=self.country.variants,
                status={**self.status.variants, **self.status.sources.get(source, {})},
                currency=self.currency.variants,
                base_currency=self.currency.base or DEFAULT_BASE_CURRENCY,
            )
            self._terms[source] = terms
        return terms


def load_vocabularies(location: str | None = None, *, settings: Settings | None = None) -> Vocabularies:
    """The shipped vocabularies, with the files at `location` (a directory or s3://bucket/prefix/) adding
    entries or overriding shipped ones. VocabularyError lists every problem found."""
    problems: list[DefinitionProblem] = []
    shipped = _parse_all(
        read_documents(str(SHIPPED), setting="VOCABULARY_PATH", error=VocabularyError), problems
    )
    added = (
        _parse_all(
            read_documents(location, settings, setting="VOCABULARY_PATH", error=VocabularyError), problems
        )
        if location
        else []
    )
    if problems:
        raise VocabularyError(problems)
    documents = shipped + added
    industry, country, status, currency = (
        _merge(name, [d for d in documents if d[1].vocabulary == name], problems) for name in VOCABULARIES
    )
    if problems:
        raise VocabularyError(problems)
    return Vocabularies(industry, country, status, currency)


def _parse_all(
    documents: Iterable[tuple[str, bytes]], problems: list[DefinitionProblem]
) -> list[tuple[str, VocabularyDocument]]:
    parsed: list[tuple[str, VocabularyDocument]] = []
    for origin, text in documents:
        try:
            parsed.append((origin, parse_vocabulary(text, origin)))
        except VocabularyError as exc:
            problems.extend(exc.problems)
    return parsed


def _merge(
    name: VocabularyName, files: list[tuple[str, VocabularyDocument]], problems: list[DefinitionProblem]
) -> Vocabulary:
    canonical: dict[str, None] = dict.fromkeys(STATUSES) if name == "status" else {}
    variants: dict[str, str] = {}
    codes: dict[str, str] = {}
    sources: dict[str, dict[str, str]] = {}
    base: str | None = None
    for _origin, doc in files:
        for value, listed in doc.values.items():
            canonical.setdefault(value)
            variants[normalise(value)] = value
            variants.update((normalise(v), value) for v in listed)
        codes.update(doc.codes)
        for source, section in doc.sources.items():
            own = sources.setdefault(source, {})
            for value, listed in section.items():
                own.update((normalise(v), value) for v in listed)
        base = doc.base or base
    # Checked once every file is merged: a deployment's code may name a shipped industry.
    for origin, doc in files:
        for code, value in doc.codes.items():
            if value not in canonical:
                problems.append(
                    DefinitionProblem(
                        origin, f"codes.{code}", f"{value!r} is not an industry of the vocabulary's values"
                    )
                )
        if doc.base is not None and doc.base not in canonical:
            problems.append(
                DefinitionProblem(
                    origin, "base", f"{doc.base!r} is not a currency of the vocabulary's values"
                )
            )
    return Vocabulary(
        name=name,
        canonical=tuple(canonical),
        variants=variants,
        codes=codes,
        sources=sources,
        base=base,
        versions=tuple((origin, doc.version) for origin, doc in files),
    )


@lru_cache(maxsize=1)
def get_vocabularies() -> Vocabularies:
    """The vocabularies in effect for this process, read once (VOCABULARY_PATH)."""
    settings = get_settings()
    return load_vocabularies(settings.vocabulary_path, settings=settings)
