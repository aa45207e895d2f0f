"""`pipeline replay`: a source's loaded files again, in process, against a real moto server and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pipeline_defs.cli import cli
from resources.settings import get_settings
from tests.support.ingest import RawFiles, q
from tests.support.sources import Redefinitions, redefinitions

pytestmark = pytest.mark.integration

MARCH = datetime(2026, 3, 1, tzinfo=UTC)
APRIL = datetime(2026, 4, 1, tzinfo=UTC)


def run(*args: str) -> Result:
    get_settings.cache_clear()
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def loaded(stack) -> RawFiles:
    """Two crm files (March, April) and an erp one, loaded."""
    files = RawFiles(stack)
    for key, records, at in (
        (
            "crm-data/march.json",
            [{"id": "A", "name": "Alpha", "revenue": 100}, {"id": "B", "name": "Beta"}],
            MARCH,
        ),
        ("crm-data/april.json", [{"id": "C", "name": "Gamma", "revenue": 300}], APRIL),
        ("erp-data/e.json", [{"id": "E", "name": "Erp"}], MARCH),
    ):
        assert files.ingest(files.add(key, {"records": records}, at)).ok
    return files


@pytest.fixture
def redefine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Redefinitions]:
    with redefinitions(tmp_path / "source-definitions", monkeypatch) as r:
        yield r


def test_replay_prints_a_line_per_file_in_source_order_and_the_totals(loaded, stack, redefine):
    version = redefine.revenue_scale("crm", "0.01")
    result = run("replay", "--source", "crm")
    assert result.exit_code == 0, result.output
    head, first, second, summary = result.output.strip().splitlines()
    assert head.startswith(f"replaying 2 loaded file(s) of crm with transformation version {version} (run ")
    assert first.startswith("[1/2] crm-data/march.json: 2 received, 0 inserted, 1 updated, 1 unchanged")
    assert second.startswith("[2/2] crm-data/april.json: 1 received, 0 inserted, 1 updated, 0 unchanged")
    assert summary == (
        f"replayed 2 of 2 file(s) of crm (transformation version {version}): 0 inserted, 2 updated, "
        "1 unchanged, 0 superseded, 0 refused; 0 skipped, 0 failed"
    )
    assert q(stack.pg.owner_url, "SELECT s3_key, attempt, attempt_cause FROM ingest.files ORDER BY 1") == [
        ("crm-data/april.json", 2, "replay"),
        ("crm-data/march.json", 2, "replay"),
        ("erp-data/e.json", 1, None),
    ]
    history = run("history", "crm-data/april.json").output
    assert "replay" in history and "arrival" in history


def test_since_replays_only_the_files_at_or_after_that_date(loaded, stack):
    result = run("replay", "--source", "crm", "--since", "2026-04-01")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[1].startswith("[1/1] crm-data/april.json: 1 received, 0 inserted, 0 updated, 1 unchanged")
    assert lines[-1].startswith("replayed 1 of 1 file(s) of crm")
    assert run("replay", "--source", "crm", "--since", "2026-04-02").output.strip() == (
        "no loaded file of crm since 2026-04-02: nothing to replay"
    )


def test_a_file_that_fails_its_replay_exits_non_zero_after_the_others(loaded, stack):
    loaded.s3.delete_object(Bucket=loaded.bucket, Key="crm-data/march.json")
    result = CliRunner().invoke(cli, ["replay", "--source", "crm"])
    assert result.exit_code == 1
    assert (
        "[1/2] crm-data/march.json: FAILED (data): the object no longer exists in the bucket" in result.output
    )
    assert "[2/2] crm-data/april.json: 1 received" in result.output
    assert "; 0 skipped, 1 failed" in result.output and "Traceback" not in result.output


def test_an_unknown_source_is_refused_listing_the_defined_ones(stack):
    result = CliRunner().invoke(cli, ["replay", "--source", "sap"])
    assert result.exit_code == 2
    assert "'sap' is not one of 'crm', 'erp', 'legacy'" in result.output


def test_a_since_that_is_not_a_date_is_refused_before_anything_runs(stack):
    result = CliRunner().invoke(cli, ["replay", "--source", "crm", "--since", "last week"])
    assert result.exit_code == 2 and "--since" in result.output and "is not a date" in result.output
