"""Schema drift: a file's shape compared with what its source's earlier loaded files showed. Pure.

Findings (README, "Schema drift"):
- new fields: carried by the file, never by a loaded file of the source before;
- missing fields: carried by every record of every loaded file since the field was first seen, now
  absent from some share of the file's records (that share is reported);
- type changes: a field's JSON types (null aside: an empty value is not a new type) now include one the
  source never sent for it, e.g. a number now text;
- a required canonical field gone: the definition's id or name found in fewer than
  `required_min_share` of the records of a file of at least `min_records` records. Loading it would
  refuse nearly every record for the same reason, so the file fails with this one finding instead, and a
  new field carried by about the same share of records is suggested as its new name.

Each change is reported once: the loaded file carries it into the source's profile (`profile_after`),
so the next file is compared with the new shape. A source's first loaded file has no drift: it
establishes the profile.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from resources.ingest.shapes import Alternatives, FileShape, ShapeProfiler, containers
from resources.sources.compiled import Combination, CompiledSource, Paths

# A suggested new name must be carried by about as many records as the required field lost.
SUGGESTION_SHARE_TOLERANCE = 0.1
# Findings listed per kind on the file (the counts say how many there were in all).
MAX_LISTED = 50
# Fields kept per source: past it, a source whose keys are data stops growing its profile.
SOURCE_MAX_FIELDS = 2000


@dataclass(frozen=True, slots=True)
class KnownField:
    """A field as the source's loaded files showed it (a row of `ingest.source_fields`)."""

    first_seen_file_id: int
    last_seen_file_id: int
    files_seen: int
    always_present: bool  # in every record of every loaded file since it was first seen
    types: frozenset[str]


SourceProfile = Mapping[str, KnownField]


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    share: float  # new: share of records carrying it; missing: share of records without it


@dataclass(frozen=True, slots=True)
class TypeChange:
    field: str
    before: tuple[str, ...]
    now: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RequiredMissing:
    """A canonical field every record needs (id, name), found in (nearly) none of the file's records."""

    canonical: str  # "id" | "name"
    looked_for: tuple[str, ...]  # the definition's paths and combinations, in its order
    missing_share: float
    usual: str | None  # the path the source's loaded files carried it under, if any did
    suggestion: FieldChange | None  # a new field carried by about as many records

    def __str__(self) -> str:
        gone = f"`{self.usual}`" if self.usual else " | ".join(f"`{p}`" for p in self.looked_for)
        text = f"required field {self.canonical}: {gone} missing in {percent(self.missing_share)} of records"
        if self.suggestion is not None:
            text += (
                f"; new field `{self.suggestion.field}` present in {percent(self.suggestion.share)}"
                f" (add it to the {self.canonical} paths of the source's definition, then reprocess)"
            )
        return text


@dataclass(frozen=True, slots=True)
class Drift:
    records: int = 0
    new: tuple[FieldChange, ...] = ()
    missing: tuple[FieldChange, ...] = ()
    type_changes: tuple[TypeChange, ...] = ()
    required: tuple[RequiredMissing, ...] = ()

    @property
    def drifted(self) -> bool:
        return bool(self.new or self.missing or self.type_changes or self.required)

    def marker(self) -> str:
        """A few characters for a table column: `+2 -1 ~1`, `!name` when a required field is gone."""
        parts = [f"!{r.canonical}" for r in self.required]
        parts += [f"{sign}{len(items)}" for sign, items in (("+", self.new), ("-", self.missing)) if items]
        if self.type_changes:
            parts.append(f"~{len(self.type_changes)}")
        return " ".join(parts)

    def summary(self) -> str:
        """One line naming every finding (lists cut at a few names)."""
        parts = [str(r) for r in self.required]
        if self.new:
            parts.append("new: " + _names(f"{c.field} ({percent(c.share)})" for c in self.new))
        if self.missing:
            parts.append("missing: " + _names(f"{c.field} (in {percent(c.share)})" for c in self.missing))
        if self.type_changes:
            parts.append(
                "type changed: "
                + _names(f"{t.field} {'/'.join(t.before)} → {'/'.join(t.now)}" for t in self.type_changes)
            )
        return "; ".join(parts)

    def as_json(self) -> dict[str, Any]:
        """The file's `drift` (ingest.files, the API): every key one lower-case word."""
        return {
            "records": self.records,
            "marker": self.marker(),
            "summary": self.summary(),
            "counts": {
                "new": len(self.new),
                "missing": len(self.missing),
                "types": len(self.type_changes),
                "required": len(self.required),
            },
            "new": [{"field": c.field, "share": round(c.share, 4)} for c in self.new[:MAX_LISTED]],
            "missing": [{"field": c.field, "share": round(c.share, 4)} for c in self.missing[:MAX_LISTED]],
            "types": [
                {"field": t.field, "before": list(t.before), "now": list(t.now)}
                for t in self.type_changes[:MAX_LISTED]
            ],
            "required": [
                {
                    "field": r.canonical,
                    "paths": list(r.looked_for),
                    "share": round(r.missing_share, 4),
                    "usual": r.usual,
                    "suggestion": r.suggestion.field if r.suggestion else None,
                    "finding": str(r),
                }
                for r in self.required
            ],
        }


class ShapeRefused(Exception):
    """The file cannot be mapped as its source is defined (a required field is gone): fail it with the
    finding, nothing of it landed."""

    def __init__(self, drift: Drift) -> None:
        self.drift = drift
        super().__init__("; ".join(str(r) for r in drift.required))


def percent(share: float) -> str:
    """100%, 0%, 12.5%; never rounds a partial share to 0% or 100%."""
    if share >= 1:
        return "100%"
    if share <= 0:
        return "0%"
    text = f"{share * 100:.1f}".removesuffix(".0")
    if text == "100":
        return "99.9%"
    return "0.1%" if text == "0" else text + "%"


def _names(items: Iterable[str], shown: int = 5) -> str:
    listed = list(items)
    more = len(listed) - shown
    return ", ".join(listed[:shown]) + (f" and {more} more" if more > 0 else "")


# ---- what the profiler watches for a source --------------------------------------------------------


def _all_paths(src: CompiledSource) -> list[str]:
    groups: list[Paths] = [
        src.id,
        src.name_paths,
        src.revenue,
        src.employees,
        src.industry,
        src.parent,
        src.metrics,
        src.change_time,
    ]
    combos: list[Combination] = [*src.name_combinations, *src.industry_combinations]
    return [p[0] for g in groups for p in g] + [p[0] for c in combos for p in c[1]]


def _alternatives(paths: Paths, combinations: tuple[Combination, ...] = ()) -> Alternatives:
    # A nested path counts as carried when its top-level object is: a bound, so a file is never failed
    # for a field it may have (the nested field's own count shows in the findings).
    return tuple((p[1],) for p in paths) + tuple(tuple(part[1] for part in c[1]) for c in combinations)


def profiler_for(src: CompiledSource) -> ShapeProfiler:
    """A profiler watching the objects the source's definition reads into, and its required fields."""
    return ShapeProfiler(
        containers(_all_paths(src)),
        required={
            "id": _alternatives(src.id),
            "name": _alternatives(src.name_paths, src.name_combinations),
        },
    )


def _looked_for(paths: Paths, combinations: tuple[Combination, ...] = ()) -> tuple[str, ...]:
    return tuple(p[0] for p in paths) + tuple(c[0] for c in combinations)


# ---- the comparison ------------------------------------------------------------------------------------


def compare(
    shape: FileShape,
    profile: SourceProfile,
    src: CompiledSource,
    *,
    required_min_share: float,
    min_records: int,
) -> Drift:
    """The file's drift against its source's profile (empty for the source's first file, and for a file
    without records). Required fields are checked against the definition whatever the profile."""
    if shape.records == 0:
        return Drift()
    new: list[FieldChange] = []
    missing: list[FieldChange] = []
    type_changes: list[TypeChange] = []
    if profile:
        for name, f in shape.fields.items():
            known = profile.get(name)
            if known is None:
                new.append(FieldChange(name, f.present / shape.records))
                continue
            before, now = known.types - {"null"}, f.types - {"null"}
            if before and now and not now <= before:
                type_changes.append(TypeChange(name, tuple(sorted(before)), tuple(sorted(now))))
        for name, known in profile.items():
            share = shape.share(name)
            if known.always_present and share < 1:
                missing.append(FieldChange(name, 1 - share))
    new.sort(key=lambda c: (-c.share, c.field))
    missing.sort(key=lambda c: (-c.share, c.field))
    required = _required_missing(shape, profile, src, new, required_min_share, min_records)
    return Drift(shape.records, tuple(new), tuple(missing), tuple(type_changes), required)


def _required_missing(
    shape: FileShape,
    profile: SourceProfile,
    src: CompiledSource,
    new: list[FieldChange],
    min_share: float,
    min_records: int,
) -> tuple[RequiredMissing, ...]:
    if shape.records < min_records:
        return ()  # a few records cannot tell drift from bad records; the mapping refuses them one by one
    read = set(_all_paths(src))
    found: list[RequiredMissing] = []
    for canonical, paths, combinations, types in (
        ("id", src.id, (), {"string", "number"}),
        ("name", src.name_paths, src.name_combinations, {"string"}),
    ):
        carried = shape.carrying.get(canonical, shape.records) / shape.records
        if carried >= min_share:
            continue
        looked_for = _looked_for(paths, combinations)
        usual = max(
            (p for p in looked_for if p in profile),
            key=lambda p: (profile[p].files_seen, profile[p].last_seen_file_id),
            default=None,
        )
        # New to the source, or (its first file) read by no path of the definition.
        candidates = (
            new
            if profile
            else [FieldChange(n, f.present / shape.records) for n, f in shape.fields.items() if n not in read]
        )
        suggestion = _suggest(candidates, shape, 1 - carried, usual or looked_for[0], types)
        found.append(RequiredMissing(canonical, looked_for, 1 - carried, usual, suggestion))
    return tuple(found)


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _suggest(
    candidates: list[FieldChange], shape: FileShape, lost: float, gone: str, types: set[str]
) -> FieldChange | None:
    """The candidate carried by about the share of records the required field lost, of a type it can be,
    and named most like it (`companyName` for `company_name`)."""
    fitting = [
        c
        for c in candidates
        if abs(c.share - lost) <= SUGGESTION_SHARE_TOLERANCE
        and (not shape.fields[c.field].types - {"null"} or shape.fields[c.field].types & types)
    ]
    if not fitting:
        return None
    target = _norm(gone.rsplit(".", 1)[-1])

    def likeness(c: FieldChange) -> tuple[float, float, str]:
        ratio = difflib.SequenceMatcher(None, target, _norm(c.field.rsplit(".", 1)[-1])).ratio()
        return (-ratio, abs(c.share - lost), c.field)

    return min(fitting, key=likeness)


# ---- the source's profile after a loaded file ------------------------------------------------------------


def profile_after(profile: SourceProfile, shape: FileShape, file_id: int) -> dict[str, KnownField]:
    """The source's fields that change once the file is loaded (write these back): the file's fields seen
    once more (or for the first time), and fields it lacks that were always present until now."""
    if shape.records == 0:
        return {}
    changed: dict[str, KnownField] = {}
    room = SOURCE_MAX_FIELDS - len(profile)
    for name, f in shape.fields.items():
        everywhere = f.present == shape.records
        known = profile.get(name)
        if known is None:
            if room <= 0:
                continue
            room -= 1
            changed[name] = KnownField(file_id, file_id, 1, everywhere, f.types)
        else:
            changed[name] = replace(
                known,
                last_seen_file_id=file_id,
                files_seen=known.files_seen + 1,
                always_present=known.always_present and everywhere,
                types=known.types | f.types,
            )
    for name, known in profile.items():
        if name not in shape.fields and known.always_present:
            changed[name] = replace(known, always_present=False)
    return changed


__all__ = [
    "Drift",
    "FieldChange",
    "KnownField",
    "RequiredMissing",
    "ShapeRefused",
    "SourceProfile",
    "TypeChange",
    "compare",
    "percent",
    "profile_after",
    "profiler_for",
]
