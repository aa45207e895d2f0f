"""The golden store's record rebuild streams members in batches: a golden entity whose members span two
batches is still built from all of them, and the records are the ones one batch gives."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from resources.golden import store
from tests.support.golden import add_entities, clusters, named, resolve
from tests.support.postgres import PgCluster

pytestmark = pytest.mark.integration

GROUPS = (["crm_A", "erp_B", "legacy_C"], ["crm_D"], ["crm_E", "erp_F"], ["legacy_G", "erp_H", "crm_I"])


def _records(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            """SELECT golden_id, member_count, name, industry, revenue, email, attributes, lineage
               FROM golden.entities ORDER BY golden_id"""
        ).fetchall()


def _fill(db: PgCluster) -> None:
    ids = [c for g in GROUPS for c in g]
    add_entities(db.owner_url, named(*ids))
    add_entities(
        db.owner_url,
        [
            {"canonical_id": "legacy_C", "name": "C Ltd", "industry": "Retail", "revenue": 7},
            {"canonical_id": "erp_B", "name": "B", "attributes": {"email": "b@b.io"}},
            {"canonical_id": "crm_I", "name": "I", "attributes": {"email": "i@i.io", "phone": "+1 2"}},
        ],
    )


def test_a_golden_entity_spanning_two_fetched_batches_is_built_from_all_its_members(
    db: PgCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(db)
    resolve(db.writer_url, clusters(*GROUPS), run_id="r1")
    whole = _records(db.owner_url)
    with psycopg.connect(db.owner_url) as conn:
        conn.execute("DELETE FROM golden.entities")
        conn.execute("UPDATE golden.members SET fingerprint = 'stale'")
    monkeypatch.setattr(store, "REBUILD_BATCH", 2)
    summary = resolve(db.writer_url, clusters(*GROUPS), run_id="r2")
    assert summary.records_written == len(GROUPS)
    again = _records(db.owner_url)
    assert again == whole
    assert [r[1] for r in again] == [3, 1, 2, 3]
