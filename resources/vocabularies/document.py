"""The format of a vocabulary file (README, "Vocabularies"), validated.

One JSON document per vocabulary file, `extra="forbid"` everywhere. Problems are reported like a source
definition's (resources/sources/definition.py): the file, the dotted key, what is wrong, all of a
file's problems at once (`VocabularyError`).

    {"vocabulary": "industry", "version": "2026.12.0",
     "values": {"Technology": ["Tech", "IT"], ...},       # canonical value -> the variants that mean it
     "codes": {"5415": "Technology", ...}}                # industry: NAICS prefix -> canonical value
    {"vocabulary": "status", "version": "...", "values": {"inactive": ["closed"]},
     "sources": {"legacy": {"deleted": ["X"]}}}           # status: one source's own codes first
    {"vocabulary": "currency", "version": "...", "base": "USD", "values": {"EUR": ["Euro"]}}

A canonical value always matches itself. Variants match by their normalised key (normalise.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from resources.sources.definition import (
    NAME_PATTERN,
    DefinitionProblem,
    DocumentError,
    parse_document,
)
from resources.vocabularies.normalise import normalise

Key = TypeVar("Key", bound=str)
VocabularyName = Literal["industry", "country", "status", "currency"]
VOCABULARIES: tuple[VocabularyName, ...] = ("industry", "country", "status", "currency")
Status = Literal["active", "inactive", "deleted"]
STATUSES: tuple[Status, ...] = ("active", "inactive", "deleted")
# The canonical industry is the industry column's value: its index refuses entries above ~2.7 kB.
MAX_VALUE_LENGTH = 200
NAICS_PREFIX = re.compile(r"[0-9]{2,6}")
# What a canonical value of each vocabulary looks like, and how a problem says it.
_CANONICAL: dict[str, tuple[re.Pattern[str], str]] = {
    "country": (re.compile(r"[A-Z]{2}"), "an ISO 3166-1 alpha-2 code (two capital letters)"),
    "currency": (re.compile(r"[A-Z]{3}"), "an ISO 4217 code (three capital letters)"),
    "status": (re.compile("|".join(STATUSES)), "one of " + ", ".join(STATUSES)),
    "industry": (re.compile(r"\S(?:.*\S)?", re.DOTALL), "a name without surrounding blanks"),
}


class VocabularyError(DocumentError):
    """Vocabulary files that cannot be used, with every problem found (file, key, problem)."""

    documents = "vocabularies"
    document = "a vocabulary file"


def _check_variant(text: str) -> str:
    if not normalise(text):
        raise ValueError(f"{text!r} has no letter or digit to match by")
    return text


Variant = Annotated[str, Field(min_length=1, max_length=MAX_VALUE_LENGTH), AfterValidator(_check_variant)]


def _check_prefix(code: str) -> str:
    if not NAICS_PREFIX.fullmatch(code):
        raise ValueError(f"{code!r} is not a NAICS code or prefix (2 to 6 digits)")
    return code


NaicsPrefix = Annotated[str, AfterValidator(_check_prefix)]
SourceName = Annotated[str, Field(pattern=NAME_PATTERN)]


class VocabularyDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    vocabulary: VocabularyName
    version: str = Field(min_length=1, max_length=40, pattern=r"^[0-9A-Za-z][0-9A-Za-z._-]*$")
    description: str = ""
    values: dict[str, list[Variant]] = Field(default_factory=dict)
    codes: dict[NaicsPrefix, str] = Field(default_factory=dict)  # industry only
    sources: dict[SourceName, dict[Status, list[Variant]]] = Field(default_factory=dict)  # status only
    base: str | None = None  # currency only: amounts in another currency are flagged


def _document_problems(doc: VocabularyDocument) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    pattern, shape = _CANONICAL[doc.vocabulary]
    for value in doc.values:
        if len(value) > MAX_VALUE_LENGTH or not pattern.fullmatch(value) or not normalise(value):
            problems.append((f"values.{value}", f"{value!r} is not {shape}"))
    only = {"codes": "industry", "sources": "status", "base": "currency"}
    for key, owner in only.items():
        if getattr(doc, key) and doc.vocabulary != owner:
            problems.append((key, f"only the {owner} vocabulary has {key}"))
    if doc.base is not None and not _CANONICAL["currency"][0].fullmatch(doc.base):
        problems.append(("base", f"{doc.base!r} is not {_CANONICAL['currency'][1]}"))
    problems.extend(_ambiguous(doc.values, "values"))
    for source, section in doc.sources.items():
        problems.extend(_ambiguous(section, f"sources.{source}"))
    return problems


def _ambiguous(values: Mapping[Key, list[str]], where: str) -> list[tuple[str, str]]:
    """A variant that means two canonical values in one section cannot be looked up."""
    seen: dict[str, str] = {normalise(value): str(value) for value in values}
    problems: list[tuple[str, str]] = []
    for value, variants in values.items():
        for i, variant in enumerate(variants):
            key = normalise(variant)
            other = seen.setdefault(key, str(value))
            if other != value:
                problems.append((f"{where}.{value}.{i}", f"{variant!r} also means {other!r}"))
    return problems


def parse_vocabulary(text: str | bytes, origin: str) -> VocabularyDocument:
    """One vocabulary file; VocabularyError naming `origin`, the key and the problem."""
    document = parse_document(text, origin, VocabularyDocument, VocabularyError)
    problems = _document_problems(document)
    if problems:
        raise VocabularyError([DefinitionProblem(origin, key, text) for key, text in problems])
    return document
