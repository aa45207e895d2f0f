"""The transformation version is a content hash of the mapping rules and the validated definition."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resources.sources import version
from resources.sources.catalogue import SHIPPED, load_sources
from resources.sources.definition import parse_definition
from resources.sources.version import transformation_version

CRM = (SHIPPED / "crm.json").read_text()


def _crm(**changes: object) -> str:
    document = json.loads(CRM)
    document.update(changes)
    return json.dumps(document)


def test_the_layout_and_key_order_of_the_file_do_not_change_it():
    document = json.loads(CRM)
    reordered = json.dumps(dict(reversed(list(document.items()))), indent=7)
    compact = json.dumps(document, separators=(",", ":"))
    assert (
        transformation_version(parse_definition(CRM, "a"))
        == transformation_version(parse_definition(reordered, "b"))
        == transformation_version(parse_definition(compact, "c"))
    )


def test_spelling_out_a_default_does_not_change_it():
    document = json.loads(CRM)
    document.pop("formats")
    spelled = {**document, "formats": ["json", "ndjson"]}
    assert transformation_version(parse_definition(json.dumps(document), "a")) == transformation_version(
        parse_definition(json.dumps(spelled), "b")
    )


def test_a_change_to_where_a_field_is_read_changes_it():
    base = json.loads(CRM)
    scaled = {**base["fields"], "revenue": {**base["fields"]["revenue"], "scale": "0.01"}}
    named = {**base["fields"], "name": [*base["fields"]["name"], "legal_name"]}
    versions = {
        transformation_version(parse_definition(CRM, "a")),
        transformation_version(parse_definition(_crm(fields=scaled), "b")),
        transformation_version(parse_definition(_crm(fields=named), "c")),
    }
    assert len(versions) == 3


def test_a_new_mapping_version_in_code_changes_it(monkeypatch: pytest.MonkeyPatch):
    before = transformation_version(parse_definition(CRM, "a"))
    monkeypatch.setattr(version, "MAPPING_VERSION", "2.0.0")
    assert transformation_version(parse_definition(CRM, "a")) != before


def test_extra_reference_inputs_fold_into_it_in_order():
    definition = parse_definition(CRM, "a")
    plain = transformation_version(definition)
    assert transformation_version(definition, b"vocabulary v1") != plain
    assert transformation_version(definition, b"vocabulary v1") != transformation_version(definition, b"v2")
    assert transformation_version(definition, "ab", "c") != transformation_version(definition, "a", "bc")
    assert transformation_version(definition, "x") == transformation_version(definition, b"x")


def test_each_compiled_source_carries_its_own(tmp_path: Path):
    sources = load_sources()
    versions = {name: sources.source(name).transformation_version for name in sources.names}
    assert len(set(versions.values())) == len(versions)
    assert all(len(v) == version.DIGEST_LENGTH and int(v, 16) >= 0 for v in versions.values())
    assert versions["crm"] == transformation_version(sources.definitions["crm"])

    (tmp_path / "crm.json").write_text(_crm(description="the same rules, described otherwise"))
    described = load_sources(str(tmp_path)).source("crm").transformation_version
    assert described != versions["crm"]  # the whole validated definition counts, its words included
    changed = load_sources(str(tmp_path)).source("crm").with_change_time(("modified",))
    assert changed.transformation_version == described
