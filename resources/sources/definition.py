"""The format of a source definition (README, "Source definitions"), validated, and its compiled form.

One JSON document per source. `extra="forbid"` everywhere: a misspelt key is an error, never ignored.
Every problem is reported with the file, the key path (dotted, list positions as numbers) and what is
wrong, all of a file's problems at once (`SourceDefinitionError`).

`snapshot` says each file is the whole source (resources/ingest/retire.py); `priority` ranks the sources
in golden-record survivorship (resources/golden/); `delete_markers` are validated now and read by later
work (deletions as facts).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from resources.sources.compiled import (
    Combination,
    CompiledSource,
    SourceSystem,
    compile_path,
    compile_paths,
)
from resources.sources.version import transformation_version

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
# Each dotted segment: a source field name, without dots or surrounding blanks.
_SEGMENT = re.compile(r"\S(?:[^.]*\S)?")
# The file name endings the parser reads, each with its format (gzip by suffix here; by content is the
# parser's concern).
SUFFIX_FORMATS: dict[str, str] = {
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json.gz": "json",
    ".ndjson.gz": "ndjson",
    ".jsonl.gz": "ndjson",
}


def _check_path(path: str) -> str:
    if not all(_SEGMENT.fullmatch(s) for s in path.split(".")):
        raise ValueError(f"{path!r} is not a field path (names joined by '.', none empty or padded)")
    return path


FieldPath = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_check_path)]


def _check_paths(paths: list[str]) -> list[str]:
    twice = sorted({p for p in paths if paths.count(p) > 1})
    if twice:
        raise ValueError(f"listed twice: {', '.join(twice)}")
    return paths


PathList = Annotated[list[FieldPath], AfterValidator(_check_paths)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Combine(_Strict):
    """A value made of several source fields' text, e.g. name = given_name + " " + family_name."""

    parts: PathList = Field(min_length=2)
    separator: str = Field(default=" ", max_length=10)


class FieldSpec(_Strict):
    """Where a canonical field is found: `paths` in order of preference (the first present wins), then
    `combine` (in order; used when no path is present)."""

    paths: PathList = Field(default_factory=list)
    combine: list[Combine] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # ["a", "b"] is {"paths": ["a", "b"]}
        return {"paths": value} if isinstance(value, list) else value


class NumberSpec(FieldSpec):
    """A number: `scale` multiplies the source value (0.01: cents to units); `numeric_strings` says
    whether text holding a plain number ("2500000") counts as one."""

    scale: Decimal | None = Field(default=None, gt=0, allow_inf_nan=False)
    numeric_strings: bool = True

    @field_validator("combine")
    @classmethod
    def _no_combination(cls, value: list[Combine]) -> list[Combine]:
        if value:
            raise ValueError("numbers cannot be combined; only name and industry take combine")
        return value


class PathsSpec(FieldSpec):
    """A field read as found (id, parent, metrics, change time): paths only."""

    @field_validator("combine")
    @classmethod
    def _no_combination(cls, value: list[Combine]) -> list[Combine]:
        if value:
            raise ValueError("only name and industry take combine")
        return value


class Fields(_Strict):
    id: PathsSpec
    name: FieldSpec
    revenue: NumberSpec = NumberSpec()
    employees: NumberSpec = NumberSpec()
    industry: FieldSpec = FieldSpec()
    parent: PathsSpec = PathsSpec()
    metrics: PathsSpec = PathsSpec()
    change_time: PathsSpec = PathsSpec()
    # Coded fields read through the vocabularies (resources/vocabularies/): none listed, none read.
    status: PathsSpec = PathsSpec()
    country: PathsSpec = PathsSpec()
    currency: PathsSpec = PathsSpec()  # the currency of revenue

    @field_validator("id", "name")
    @classmethod
    def _present(cls, value: FieldSpec) -> FieldSpec:
        if not value.paths and not value.combine:
            raise ValueError("needs at least one path: every record must have it")
        return value


Format = Literal["json", "ndjson"]


def _every_format() -> list[Format]:
    return ["json", "ndjson"]


class DeleteMarker(_Strict):
    """A record whose `path` holds one of `values` says the entity was deleted at the source."""

    path: FieldPath
    values: list[str | int | bool] = Field(min_length=1)


class SourceDefinition(_Strict):
    name: str = Field(pattern=NAME_PATTERN, description="canonical ids are <name>_<source id>")
    description: str = ""
    prefixes: list[str] = Field(min_length=1)
    formats: list[Format] = Field(default_factory=_every_format, min_length=1)
    fields: Fields
    delete_markers: list[DeleteMarker] = Field(default_factory=list)
    snapshot: bool = False  # its files are full snapshots: what a newer one lacks is retired
    priority: int = Field(default=0, ge=0, le=1000)  # survivorship: higher wins

    @field_validator("prefixes")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        for p in value:
            if not re.fullmatch(r"[A-Za-z0-9._\-]+(?:/[A-Za-z0-9._\-]+)*/", p):
                raise ValueError(f"{p!r} is not a folder of the raw bucket (like 'crm-data/': ends with '/')")
        if len(set(value)) != len(value):
            raise ValueError("a prefix is listed twice")
        return value

    def compile(self, reference: tuple[bytes, ...] = ()) -> CompiledSource:
        """The compiled definition; `reference`: the reference data the mapping reads (vocabulary
        files), folded into its transformation version."""
        f = self.fields
        change_time = compile_paths(f.change_time.paths)
        currency = compile_paths(f.currency.paths)
        parent, metrics = compile_paths(f.parent.paths), compile_paths(f.metrics.paths)
        return CompiledSource(
            name=SourceSystem(self.name),
            prefixes=tuple(self.prefixes),
            suffixes=tuple(s for s, fmt in SUFFIX_FORMATS.items() if fmt in self.formats),
            id=compile_paths(f.id.paths),
            name_paths=compile_paths(f.name.paths),
            name_combinations=_combinations(f.name),
            revenue=compile_paths(f.revenue.paths),
            revenue_scale=f.revenue.scale,
            revenue_numeric_strings=f.revenue.numeric_strings,
            employees=compile_paths(f.employees.paths),
            employees_scale=f.employees.scale,
            employees_numeric_strings=f.employees.numeric_strings,
            industry=compile_paths(f.industry.paths),
            industry_combinations=_combinations(f.industry),
            parent=parent,
            metrics=metrics,
            change_time=change_time,
            change_time_heads=frozenset(p[1] for p in change_time),
            status=compile_paths(f.status.paths),
            country=compile_paths(f.country.paths),
            currency=currency,
            currency_heads=frozenset(p[1] for p in currency),
            delete_markers=tuple(
                (compile_path(m.path), frozenset((type(v), v) for v in m.values)) for m in self.delete_markers
            ),
            delete_marker_heads=frozenset(compile_path(m.path)[1] for m in self.delete_markers),
            parent_heads=frozenset(p[1] for p in parent),
            metrics_heads=frozenset(p[1] for p in metrics),
            snapshot=self.snapshot,
            transformation_version=transformation_version(self, *reference),
        )


def _combinations(spec: FieldSpec) -> tuple[Combination, ...]:
    return tuple(("+".join(c.parts), compile_paths(c.parts), c.separator) for c in spec.combine)


@dataclass(frozen=True, slots=True)
class DefinitionProblem:
    file: str  # where the document came from: a path or an s3:// URL
    key: str  # the key path inside it, dotted ("fields.revenue.scale", "prefixes.0"); "" for the document
    problem: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key or '(document)'}: {self.problem}"


class DocumentError(ValueError):
    """Configuration documents that cannot be used, with every problem found (file, key, problem)."""

    documents: ClassVar[str] = "documents"  # what they are, plural, for the message
    document: ClassVar[str] = "a document"  # one of them, for an unknown key's problem

    def __init__(self, problems: list[DefinitionProblem]):
        self.problems = tuple(problems)
        super().__init__(f"invalid {self.documents}: " + "; ".join(str(p) for p in problems))


class SourceDefinitionError(DocumentError):
    """Source definitions that cannot be used, with every problem found (file, key, problem)."""

    documents = "source definitions"
    document = "a source definition"


Document = TypeVar("Document", bound=BaseModel)


def parse_document(
    text: str | bytes, origin: str, model: type[Document], error: type[DocumentError]
) -> Document:
    """One JSON object validated as `model`; `error` naming `origin`, the key and the problem."""
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error([DefinitionProblem(origin, "", f"not JSON: {exc}")]) from None
    if not isinstance(document, dict):
        raise error([DefinitionProblem(origin, "", f"must be an object, not {type(document).__name__}")])
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise error(
            [DefinitionProblem(origin, _key(e["loc"]), _message(e, error.document)) for e in exc.errors()]
        ) from None


def parse_definition(text: str | bytes, origin: str) -> SourceDefinition:
    """One definition document; SourceDefinitionError naming `origin`, the key and the problem."""
    return parse_document(text, origin, SourceDefinition, SourceDefinitionError)


def _key(loc: tuple[int | str, ...]) -> str:
    # pydantic adds the validator's name for function validators ("function-after[...]"): not a key.
    return ".".join(str(part) for part in loc if not (isinstance(part, str) and "[" in part))


def _message(error: Any, document: str) -> str:
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        return f"unknown key (not part of {document})"
    if error["type"] == "missing":
        return "required key is missing"
    return message.removeprefix("Value error, ")
