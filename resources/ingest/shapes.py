"""The shape of one file's records: which fields they carry, how many records carry each, their JSON types.

Pure and cheap, because it watches every record of every load (README, "Schema drift"):

- Fields: the top-level keys, and the keys of the objects the source's definition reads into (for
  `financials.annualRevenue`, every key under `financials`), so a field renamed inside such an object
  (`financials.revenue`) is seen as well. Deeper, unread structure is not walked: it reaches the store
  as received in `attributes`, a change there breaks nothing the mapping reads, and walking it would
  cost every record a traversal and multiply the fields (every key of every metric point).
- Counts: the records of a file nearly all share one key set, so each record costs one tuple of its keys
  and one dict update, keyed by the tuple's hash (the parser built new key strings for every record:
  comparing tuples would compare every key's text; two key sets of one file sharing a 64-bit hash are
  as likely as never); per-field counts are derived from the key sets once, at the end. Whether a key
  set holds an object the definition reads into is decided once per key set too. Past
  `max_shapes` distinct key sets (records whose keys are data, e.g. ids) each further record is counted
  field by field, and past `max_fields` distinct fields new ones are no longer tracked: memory stays
  bounded whatever the file.
- Types: on a sample spread over the whole file: every record while fewer than `sample_budget` were
  sampled, then every 2nd, 4th, … (the stride doubles each `sample_budget` samples), so about
  budget × log2(records / budget) records in all (about 700 of 50,000), from its first to its last
  part: the stride never exceeds about records / 2·budget, so any run of records longer than that (under
  1 % of the file) is sampled. A field's type is the exporter's schema, the same in every record it
  writes: a changed schema changes the type of every record from some point on, which such a sample
  sees; a type scattered over 1 % of the records is missed with a probability under 0.1 %. A lone odd
  value is a bad record, refused by the mapping with its reason, not a change of shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

# Bounds that keep a pathological file (keys that are ids, thousands of columns) cheap to profile and
# its profile small to store; an ordinary export has one to a handful of key sets and tens of fields.
MAX_SHAPES = 256
MAX_FIELDS = 500
SAMPLE_BUDGET = 64

JSON_TYPES = ("string", "number", "bool", "object", "array", "null")


_TYPE_OF: dict[type, str] = {
    str: "string",
    int: "number",
    float: "number",
    Decimal: "number",
    bool: "bool",
    dict: "object",
    list: "array",
    type(None): "null",
}


def json_type(value: object) -> str:
    """The JSON type of a parsed value; anything a JSON parser does not build is `other`."""
    exact = _TYPE_OF.get(type(value))  # what parsers build: one lookup
    if exact is not None:
        return exact
    if isinstance(value, bool):  # before int: bool is an int in Python
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (int, float, Decimal)):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "other"


def containers(paths: Iterable[str]) -> tuple[str, ...]:
    """The objects dotted paths read into: `a.b.c` reads into `a` and `a.b` (sorted, each once)."""
    found: set[str] = set()
    for dotted in paths:
        parts = dotted.split(".")
        found.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return tuple(sorted(found))


@dataclass(frozen=True, slots=True)
class FieldShape:
    present: int  # records carrying the field (the key is there, whatever its value, null included)
    types: frozenset[str]  # JSON types seen in the sample


@dataclass(frozen=True, slots=True)
class FileShape:
    """What a file's records looked like. `records` counts the JSON objects; `non_objects` the rest (scalars,
    arrays, NDJSON lines that are not JSON), which have no fields."""

    records: int = 0
    non_objects: int = 0
    fields: Mapping[str, FieldShape] = field(default_factory=dict)
    untracked: int = 0  # distinct fields seen past the bounds, not in `fields`
    # Records carrying at least one of the key sets asked for (`ShapeProfiler(required=...)`), by name.
    carrying: Mapping[str, int] = field(default_factory=dict)

    def share(self, name: str) -> float:
        """Share of the file's objects carrying the field (0 for a file without objects)."""
        f = self.fields.get(name)
        return f.present / self.records if f is not None and self.records else 0.0


# What a required field needs present: alternatives, each a tuple of top-level keys that must all be
# there (a path is one key; a combination all of its parts' keys).
Alternatives = tuple[tuple[str, ...], ...]


class ShapeProfiler:
    """Watches a file's records one by one (`observe`), then tells their shape (`finish`)."""

    __slots__ = (
        "_budget",
        "_containers",
        "_heads",
        "_max_fields",
        "_max_shapes",
        "_next_sample",
        "_required",
        "_sampled",
        "_shapes",
        "_stride",
        "_types",
        "loose",
        "nested",
        "non_objects",
        "records",
        "untracked",
    )

    def __init__(
        self,
        read_into: Iterable[str] = (),
        *,
        required: Mapping[str, Alternatives] | None = None,
        max_shapes: int = MAX_SHAPES,
        max_fields: int = MAX_FIELDS,
        sample_budget: int = SAMPLE_BUDGET,
    ) -> None:
        self._containers = tuple((c, tuple(c.split("."))) for c in read_into)
        self._heads = frozenset(c.split(".")[0] for c in read_into)
        self._required = dict(required or {})
        self._max_shapes, self._max_fields = max_shapes, max_fields
        self._budget = max(1, sample_budget)
        self._stride = 1
        self._sampled = 0
        self._next_sample = 1
        self._types: dict[str, set[str]] = {}
        self.records = 0  # everything observed (objects and not)
        self.non_objects = 0
        # hash of a top-level key tuple → [records, whether it holds a container, the keys]
        self._shapes: dict[int, list[Any]] = {}
        self.loose: dict[str, int] = {}  # field → records, for records past max_shapes
        self.nested: dict[str, int] = {}  # dotted field under a container → records
        self.untracked: set[str] = set()

    @property
    def shapes(self) -> dict[tuple[str, ...], int]:
        """Records per top-level key tuple (past `max_shapes`, records are counted in `loose`)."""
        return {tuple(keys): n for n, _, keys in self._shapes.values()}

    def observe(self, record: Any) -> None:
        """Take one record into account."""
        for _ in self.watch((record,)):
            pass

    def watch(self, records: Iterable[Any]) -> Iterator[Any]:
        """Yield the records unchanged, each taken into account on its way. The per-record path, so its
        state lives in locals while the records flow."""
        shapes, first_of_shape = self._shapes, self._first_of_shape
        seen, next_sample = self.records, self._next_sample
        try:
            for record in records:
                seen += 1
                if type(record) is dict:
                    keys = tuple(record)
                    shape = shapes.get(hash(keys))
                    if shape is None:
                        shape = first_of_shape(keys)
                    shape[0] += 1
                    if shape[1]:
                        self._observe_nested(record)
                    if seen >= next_sample:
                        next_sample = self._sample(record, seen)
                else:
                    self.non_objects += 1
                yield record
        finally:
            self.records, self._next_sample = seen, next_sample

    def _first_of_shape(self, keys: tuple[str, ...]) -> list[Any]:
        holds = not self._heads.isdisjoint(keys)
        if len(self._shapes) < self._max_shapes and len(keys) <= self._max_fields:
            shape = self._shapes[hash(keys)] = [0, holds, keys]
            return shape
        self._count_loose(keys, self.loose)
        return [0, holds, ()]  # counted field by field, not kept

    def _count_loose(self, keys: Iterable[str], into: dict[str, int], prefix: str = "") -> None:
        tracked = len(self.loose) + len(self.nested)
        for k in keys:
            name = prefix + k
            if name in into:
                into[name] += 1
            elif tracked < self._max_fields * 4:
                into[name] = 1
                tracked += 1
            elif len(self.untracked) < self._max_fields:
                self.untracked.add(name)

    def _inner(self, record: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
        """The objects of the record the definition reads into, with their dotted names."""
        for dotted, parts in self._containers:
            value: Any = record
            for part in parts:
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, dict):
                yield dotted, value

    def _observe_nested(self, record: dict[str, Any]) -> None:
        for dotted, inner in self._inner(record):
            self._count_loose(inner, self.nested, dotted + ".")

    def _sample(self, record: dict[str, Any], seen: int) -> int:
        """Take the record's types; return the number of the next record to sample."""
        self._sampled += 1
        if self._sampled % self._budget == 0:
            self._stride *= 2
        self._sample_types(record.items(), "")
        for dotted, inner in self._inner(record):
            self._sample_types(inner.items(), dotted + ".")
        return seen + self._stride

    def _sample_types(self, items: Iterable[tuple[str, Any]], prefix: str) -> None:
        types = self._types
        for k, v in items:
            name = prefix + k
            if name in types:
                types[name].add(json_type(v))
            elif len(types) < self._max_fields * 4:
                types[name] = {json_type(v)}

    def finish(self) -> FileShape:
        """The file's shape: at most `max_fields` fields, the most carried ones kept."""
        counts: dict[str, int] = dict(self.loose)
        for n, _, keys in self._shapes.values():
            for k in keys:
                counts[k] = counts.get(k, 0) + n
        counts.update(self.nested)
        kept = sorted(counts, key=lambda f: (-counts[f], f))[: self._max_fields]
        untracked = len(self.untracked) + len(counts) - len(kept)
        fields = {f: FieldShape(counts[f], frozenset(self._types.get(f, ()))) for f in sorted(kept)}
        return FileShape(
            records=self.records - self.non_objects,
            non_objects=self.non_objects,
            fields=fields,
            untracked=untracked,
            carrying={name: self._carrying(alternatives) for name, alternatives in self._required.items()},
        )

    def _carrying(self, alternatives: Alternatives) -> int:
        """Records with every key of at least one alternative: exact for the records counted by key set;
        records counted field by field can only be bounded (the most carried alternative's parts, summed
        over alternatives)."""
        exact = 0
        for n, _, keys in self._shapes.values():
            present = frozenset(keys)
            if any(present.issuperset(alt) for alt in alternatives):
                exact += n
        loose_records = self.records - self.non_objects - sum(int(n) for n, _, _ in self._shapes.values())
        bound = sum(min((self.loose.get(k, 0) for k in alt), default=loose_records) for alt in alternatives)
        return exact + min(bound, loose_records)
