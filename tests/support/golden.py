"""Canonical records and resolutions for the golden store's tests: rows written as ingest writes them,
and resolutions as the matching engine hands them over (pairs and clusterings the test constructs)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import psycopg

from resources.golden.store import RunSummary, ScoredPair, write_resolution

PRIORITIES = {"crm": 300, "erp": 200, "legacy": 100}


def add_entities(owner_url: str, rows: Iterable[Mapping[str, Any]]) -> None:
    """canonical.entities rows: canonical_id and name required; source from the id's prefix."""
    with psycopg.connect(owner_url) as conn:
        for r in rows:
            cid = r["canonical_id"]
            attrs = {"name": r["name"], **r.get("attributes", {})}
            for k in ("industry", "revenue", "employees"):
                if r.get(k) is not None:
                    attrs[k] = r[k]
            text = json.dumps(attrs, sort_keys=True)
            conn.execute(
                """INSERT INTO canonical.entities (entity_type, source_system, canonical_id, name, industry,
                                                   revenue, employees, attributes, attributes_hash, status,
                                                   source_changed_at, source_file_at, source_file_id)
                   VALUES ('small_business', %s, %s, %s, %s, %s, %s, %s, decode(md5(%s), 'hex'), %s,
                           %s, %s, %s)
                   ON CONFLICT (canonical_id) DO UPDATE
                   SET name = EXCLUDED.name, industry = EXCLUDED.industry, revenue = EXCLUDED.revenue,
                       employees = EXCLUDED.employees, attributes = EXCLUDED.attributes,
                       attributes_hash = EXCLUDED.attributes_hash, status = EXCLUDED.status,
                       source_changed_at = EXCLUDED.source_changed_at""",
                (
                    cid.split("_", 1)[0],
                    cid,
                    r["name"],
                    r.get("industry"),
                    r.get("revenue"),
                    r.get("employees"),
                    text,
                    text,
                    r.get("status", "active"),
                    r.get("changed_at", datetime.fromisoformat("2026-01-01T00:00:00+00:00")),
                    r.get("changed_at", datetime.fromisoformat("2026-01-01T00:00:00+00:00")),
                    r.get("file_id", 1),
                ),
            )


def named(*ids: str, **overrides: Any) -> list[dict[str, Any]]:
    return [{"canonical_id": cid, "name": f"Company {cid}", **overrides} for cid in ids]


def clusters(*groups: Iterable[str]) -> dict[str, str]:
    """A clustering from groups: every record of a group under one key (the engine's keys are arbitrary)."""
    return {cid: f"k{i}" for i, group in enumerate(groups) for cid in group}


def pair(a: str, b: str, weight: float = 8.0, probability: float = 0.99) -> ScoredPair:
    return ScoredPair(a, b, weight, probability, {"name": weight / 2, "country": weight / 2})


def resolve(
    writer_url: str,
    clustering: Mapping[str, str],
    *,
    run_id: str,
    pairs: Iterable[ScoredPair] = (),
    review: Iterable[tuple[str, str]] = (),
    mode: str = "full",
    model_version: str | None = "m1",
) -> RunSummary:
    with psycopg.connect(writer_url) as conn:
        return write_resolution(
            conn,
            run_id=run_id,
            mode=mode,  # type: ignore[arg-type]
            clustering=clustering,
            pairs=list(pairs),
            review_pairs=list(review),
            model_version=model_version,
            priorities=PRIORITIES,
        )


def membership(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT canonical_id, golden_id FROM golden.members").fetchall())


def history(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            """SELECT run_id, kind, golden_id, other_golden_id, members, reason FROM golden.history
               ORDER BY history_id"""
        ).fetchall()
