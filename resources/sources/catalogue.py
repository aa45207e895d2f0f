"""Which source systems exist: the shipped definitions, plus a deployment's own.

The shipped definitions are `resources/sources/shipped/*.json` (in the package, so in the Dagster image
and the Lambda zip as they are). `SOURCE_DEFINITIONS_PATH` names a directory or an `s3://bucket/prefix/`
whose `*.json` files add sources or replace a shipped one of the same name, without a new image. They
are read once per process (`get_sources()`): when the code location loads (a bad definition is a load
error the UI shows, naming the file, the key and the problem), and on first use by the REST app, the CLI
and a run worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from resources.settings import Settings, get_settings
from resources.sources.compiled import CompiledSource, SourceSystem
from resources.sources.definition import (
    DefinitionProblem,
    DocumentError,
    SourceDefinition,
    SourceDefinitionError,
    parse_definition,
)

SHIPPED = Path(__file__).resolve().parent / "shipped"


@dataclass(frozen=True)
class Sources:
    """The source systems in effect, by name (sorted), each with the file it came from."""

    definitions: Mapping[str, SourceDefinition]
    origins: Mapping[str, str]
    # The reference data the mapping reads (the vocabulary files' bytes): part of each transformation version
    reference: tuple[bytes, ...] = ()
    compiled: Mapping[str, CompiledSource] = field(init=False)

    def __post_init__(self) -> None:
        compiled = {n: d.compile(self.reference) for n, d in self.definitions.items()}
        object.__setattr__(self, "compiled", compiled)

    @property
    def names(self) -> tuple[SourceSystem, ...]:
        return tuple(SourceSystem(n) for n in self.definitions)

    def source(self, name: str) -> CompiledSource:
        """The compiled definition; ValueError for a name no definition has (a caller's bug)."""
        found = self.compiled.get(name)
        if found is None:
            raise ValueError(f"unknown source system {name!r}; expected one of {self.names}")
        return found

    def upload_prefix(self, name: str) -> str:
        """Where a file of this source is put (its first prefix)."""
        return self.source(name).prefixes[0]

    @property
    def prefixes(self) -> tuple[str, ...]:
        return tuple(p for c in self.compiled.values() for p in c.prefixes)

    def of_key(self, key: str) -> CompiledSource | None:
        """The source whose prefix the key is under (prefixes never nest: checked when loaded)."""
        return next((c for c in self.compiled.values() if key.startswith(c.prefixes)), None)


def load_sources(
    location: str | None = None, *, settings: Settings | None = None, reference: tuple[bytes, ...] = ()
) -> Sources:
    """The shipped definitions, with those at `location` (a directory or s3://bucket/prefix/) added or
    replacing a shipped one of the same name; `reference`: the reference data the mapping reads, folded
    into each transformation version. SourceDefinitionError lists every problem found."""
    problems: list[DefinitionProblem] = []
    shipped = _parse_all(read_documents(str(SHIPPED)), problems)
    added = _parse_all(read_documents(location, settings), problems) if location else {}
    if problems:
        raise SourceDefinitionError(problems)
    chosen = {**shipped, **added}
    _check_prefixes(chosen, problems)
    if problems:
        raise SourceDefinitionError(problems)
    ordered = sorted(chosen)
    return Sources({n: chosen[n][1] for n in ordered}, {n: chosen[n][0] for n in ordered}, reference)


def _parse_all(
    documents: Iterable[tuple[str, bytes]], problems: list[DefinitionProblem]
) -> dict[str, tuple[str, SourceDefinition]]:
    found: dict[str, tuple[str, SourceDefinition]] = {}
    for origin, text in documents:
        try:
            definition = parse_definition(text, origin)
        except SourceDefinitionError as exc:
            problems.extend(exc.problems)
            continue
        if definition.name in found:
            problems.append(
                DefinitionProblem(
                    origin, "name", f"{definition.name!r} is also defined by {found[definition.name][0]}"
                )
            )
            continue
        found[definition.name] = (origin, definition)
    return found


def _check_prefixes(
    chosen: Mapping[str, tuple[str, SourceDefinition]], problems: list[DefinitionProblem]
) -> None:
    # A key must belong to one source: no prefix may equal or contain another source's. The problem is
    # the later file's: a deployment's, when it collides with a shipped one.
    order = sorted(chosen, key=lambda n: (not chosen[n][0].startswith(str(SHIPPED)), n))
    owners = [(p, name, chosen[name][0]) for name in order for p in chosen[name][1].prefixes]
    for i, (p, name, origin) in enumerate(owners):
        for q, other, other_origin in owners[i + 1 :]:
            if other != name and (p.startswith(q) or q.startswith(p)):
                problems.append(
                    DefinitionProblem(
                        other_origin,
                        f"prefixes.{chosen[other][1].prefixes.index(q)}",
                        f"{q!r} overlaps {p!r} of source {name!r} ({origin}): a file must belong to one source",
                    )
                )


def read_documents(
    location: str,
    settings: Settings | None = None,
    *,
    setting: str = "SOURCE_DEFINITIONS_PATH",
    error: type[DocumentError] = SourceDefinitionError,
) -> list[tuple[str, bytes]]:
    """The `*.json` documents directly in a directory or under an s3://bucket/prefix/ (not in its
    sub-folders), as (origin, bytes) in key order. `setting` names the variable for the error `error`
    raises when the location is neither."""
    if location.startswith("s3://"):
        return _s3(location, settings, error)
    return _directory(location, setting, error)


def _directory(location: str, setting: str, error: type[DocumentError]) -> list[tuple[str, bytes]]:
    folder = Path(location)
    if not folder.is_dir():
        raise error([DefinitionProblem(location, "", f"{setting} is not a directory or s3:// prefix")])
    return [(str(p), p.read_bytes()) for p in sorted(folder.glob("*.json")) if p.is_file()]


def _s3(location: str, settings: Settings | None, error: type[DocumentError]) -> list[tuple[str, bytes]]:
    from resources.clients.aws import aws_client  # boto3 only for a deployment that keeps them in S3

    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    if not bucket:
        raise error([DefinitionProblem(location, "", "no bucket in the s3:// URL")])
    s3: Any = aws_client("s3", settings)
    keys = [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
        if obj["Key"].endswith(".json") and "/" not in obj["Key"][len(prefix) :].lstrip("/")
    ]
    return [(f"s3://{bucket}/{k}", s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in sorted(keys)]


@lru_cache(maxsize=1)
def get_sources() -> Sources:
    """The sources in effect for this process, read once (SOURCE_DEFINITIONS_PATH), their transformation
    versions covering the vocabularies in effect too (a changed vocabulary file is a new version)."""
    settings = get_settings()
    return load_sources(
        settings.source_definitions_path, settings=settings, reference=vocabulary_files(settings)
    )


# The vocabularies' shipped files (resources/vocabularies/): read here as bytes only, for the versions;
# their meaning is that package's, which imports this one.
VOCABULARIES_SHIPPED = SHIPPED.parent.parent / "vocabularies" / "shipped"


def vocabulary_files(settings: Settings) -> tuple[bytes, ...]:
    """The bytes of every vocabulary file in effect, shipped then VOCABULARY_PATH's, in reading order."""
    shipped = read_documents(str(VOCABULARIES_SHIPPED), setting="VOCABULARY_PATH")
    added = (
        read_documents(settings.vocabulary_path, settings, setting="VOCABULARY_PATH")
        if settings.vocabulary_path
        else []
    )
    return tuple(text for _origin, text in [*shipped, *added])
