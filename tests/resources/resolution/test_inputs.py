"""The matcher's input frame (resources/resolution/inputs.py): canonical rows read in bulk as tuples give
the frame the row-by-row builder gives."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pandas as pd

from resources.resolution.inputs import frame_from_entity_rows, frame_from_rows, table_from_entity_rows

ROWS: list[dict[str, Any]] = [
    {
        "canonical_id": "crm_1",
        "source_system": "crm",
        "name": "Acme",
        "industry": "Retail",
        "revenue": Decimal("12.50"),
        "employees": 4,
        "attributes": {"country": "Canada", "email": "a@acme.io", "phone": 5551234, "web": "acme.io"},
    },
    {
        "canonical_id": "erp_2",
        "source_system": "erp",
        "name": None,
        "industry": None,
        "revenue": None,
        "employees": None,
        # the first present name wins even when it holds an object; a JSON null is absent
        "attributes": {
            "country": None,
            "country_name": "France",
            "email": {"x": 1},
            "emailAddress": "e@x.fr",
        },
    },
    {
        "canonical_id": "legacy_3",
        "source_system": "legacy",
        "name": "Old Co",
        "industry": "541512",
        "revenue": Decimal("1E+3"),
        "employees": 7,
        "attributes": {"address": "1 Main St", "tel": True, "big": 123456789012345678901234567890},
    },
    {
        "canonical_id": "crm_4",
        "source_system": "crm",
        "name": "Empty",
        "industry": None,
        "revenue": None,
        "employees": None,
        "attributes": None,
    },
]


def _tuples(flags: list[bool]) -> list[tuple[Any, ...]]:
    return [
        (
            r["canonical_id"],
            r["source_system"],
            r["name"],
            r["industry"],
            r["revenue"],
            r["employees"],
            None if r["attributes"] is None else json.dumps(r["attributes"]),
            flag,
        )
        for r, flag in zip(ROWS, flags, strict=True)
    ]


def test_rows_read_in_bulk_give_the_frame_the_row_builder_gives() -> None:
    bulk = frame_from_entity_rows(_tuples([False] * len(ROWS)))
    pd.testing.assert_frame_equal(bulk, frame_from_rows(ROWS))


def test_the_rows_flagged_as_delta_are_collected() -> None:
    delta: set[str] = set()
    frame_from_entity_rows(_tuples([True, False, True, False]), delta)
    assert delta == {"crm_1", "legacy_3"}


def test_no_rows_give_an_empty_frame_with_every_input_column() -> None:
    empty = frame_from_entity_rows([])
    assert empty.empty and list(empty.columns) == list(frame_from_rows([]).columns)


def test_the_arrow_table_holds_the_frames_values() -> None:
    table = table_from_entity_rows(_tuples([True, False, False, True]))
    pd.testing.assert_frame_equal(table.to_pandas(), frame_from_rows(ROWS))
