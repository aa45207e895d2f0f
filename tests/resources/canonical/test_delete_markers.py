"""Delete markers: a record holding one of its source definition's marker values is a deletion."""

from __future__ import annotations

from typing import Any

import pytest

from resources.canonical.mapping import map_record
from resources.canonical.model import CanonicalRecord
from resources.sources.catalogue import get_sources
from resources.sources.definition import SourceDefinition

BILLING = SourceDefinition.model_validate(
    {
        "name": "billing",
        "prefixes": ["billing-data/"],
        "fields": {"id": ["ref"], "name": ["org"], "status": ["state"]},
        "delete_markers": [
            {"path": "lifecycle.stage", "values": ["closed", "purged"]},
            {"path": "gone", "values": [1]},
        ],
    }
).compile()


def mapped(source: Any, record: dict[str, Any]) -> CanonicalRecord:
    out = map_record(source, record)
    assert isinstance(out, CanonicalRecord), out
    return out


@pytest.mark.parametrize(
    ("flag", "status"),
    [(True, "deleted"), (False, "active"), ("true", "active"), (1, "active"), (None, "active")],
)
def test_the_shipped_sources_read_is_deleted_true_as_a_deletion_and_nothing_else(
    flag: Any, status: str
) -> None:
    record = {"customer_id": "C-1", "company_name": "Acme", "is_deleted": flag}
    for source in ("crm", "erp", "legacy"):
        assert mapped(get_sources().source(source), record).status == status


def test_a_marker_on_a_nested_path_deletes_whatever_the_status_field_says() -> None:
    record = {"ref": "B-1", "org": "Acme", "state": "active", "lifecycle": {"stage": "closed"}}
    assert mapped(BILLING, record).status == "deleted"
    record["lifecycle"] = {"stage": "open"}
    assert mapped(BILLING, record).status == "active"


def test_a_number_marker_is_not_met_by_true_nor_by_its_text() -> None:
    assert mapped(BILLING, {"ref": "B-1", "org": "Acme", "gone": 1}).status == "deleted"
    assert mapped(BILLING, {"ref": "B-1", "org": "Acme", "gone": True}).status == "active"
    assert mapped(BILLING, {"ref": "B-1", "org": "Acme", "gone": "1"}).status == "active"


def test_a_list_or_object_at_a_marker_path_is_no_marker() -> None:
    assert mapped(BILLING, {"ref": "B-1", "org": "Acme", "gone": [1]}).status == "active"
    assert (
        mapped(BILLING, {"ref": "B-1", "org": "Acme", "lifecycle": {"stage": ["closed"]}}).status == "active"
    )
