"""The repository's samples, as the dev stack uploads them."""

from __future__ import annotations

from pathlib import Path

from pipeline_defs.devstack.samples import sample_files
from resources.settings import PROJECT_ROOT


def test_sample_files_map_to_source_prefixed_keys(tmp_path):
    (tmp_path / "samples" / "crm-data" / "sub").mkdir(parents=True)
    (tmp_path / "samples" / "crm-data" / "a.json").write_text("[]")
    (tmp_path / "samples" / "crm-data" / "sub" / "b.ndjson").write_text("")
    (tmp_path / "samples" / "crm-data" / ".hidden").write_text("")
    (tmp_path / "samples" / "other").mkdir()
    (tmp_path / "samples" / "other" / "c.json").write_text("[]")
    assert [k for _, k in sample_files(tmp_path)] == ["crm-data/a.json", "crm-data/sub/b.ndjson"]


def test_the_repository_samples_cover_every_source():
    keys = [k for _, k in sample_files(Path(PROJECT_ROOT))]
    assert {k.split("/")[0] + "/" for k in keys} == {"crm-data/", "erp-data/", "legacy-data/"}
