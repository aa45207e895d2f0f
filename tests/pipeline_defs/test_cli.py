"""The `pipeline` CLI: upload, db, files, reprocess; against a real moto server and PostgreSQL."""

from __future__ import annotations

import hashlib

import psycopg
import pytest
from click.testing import CliRunner

from pipeline_defs.cli import cli
from pipeline_defs.devstack.processes import free_port
from resources.clients.aws import aws_client
from resources.settings import get_settings
from tests.support.ingest import live_loader, q1

integration = pytest.mark.integration


def run(*args: str) -> object:
    get_settings.cache_clear()
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@integration
def test_upload_puts_the_file_under_its_source_prefix_and_prints_key_and_etag(aws_settings, tmp_path):
    s, _ = aws_settings
    body = b'{"records": [{"id": 1, "name": "Acme"}]}'
    f = tmp_path / "acme.json"
    f.write_bytes(body)
    result = run("upload", str(f), "--source", "erp")
    assert result.exit_code == 0, result.output
    md5 = hashlib.md5(body).hexdigest()
    assert f"s3://{s.raw_bucket}/erp-data/acme.json" in result.output and md5 in result.output
    got = aws_client("s3", s).get_object(Bucket=s.raw_bucket, Key="erp-data/acme.json")
    assert got["Body"].read() == body

    assert run("upload", str(f), "--source", "crm", "--key", "2024/q1.json").exit_code == 0
    assert run("upload", str(f), "--source", "crm", "--key", "crm-data/already.json").exit_code == 0
    keys = {o["Key"] for o in aws_client("s3", s).list_objects_v2(Bucket=s.raw_bucket)["Contents"]}
    assert {"crm-data/2024/q1.json", "crm-data/already.json"} <= keys


@integration
def test_upload_to_a_missing_bucket_is_a_one_line_error(aws_env, tmp_path, monkeypatch):
    monkeypatch.setenv("RAW_BUCKET", "no-such-bucket")
    f = tmp_path / "x.json"
    f.write_text("[]")
    result = CliRunner().invoke(cli, ["upload", str(f), "--source", "crm"])
    assert result.exit_code == 1
    assert "no-such-bucket" in result.output and "does not exist" in result.output
    assert "Traceback" not in result.output


def test_upload_to_an_unreachable_endpoint_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    f = tmp_path / "x.json"
    f.write_text("[]")
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["upload", str(f), "--source", "legacy"])
    assert result.exit_code == 1
    assert "cannot reach the AWS endpoint" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_upload_rejects_unknown_sources_and_missing_files(tmp_path):
    f = tmp_path / "x.json"
    f.write_text("[]")
    assert CliRunner().invoke(cli, ["upload", str(f), "--source", "sap"]).exit_code == 2
    assert CliRunner().invoke(cli, ["upload", str(tmp_path / "nope.json"), "--source", "crm"]).exit_code == 2


# ---------------------------------------------------------------------------------------------------
# CLI: db, files, reprocess


def test_db_url_prints_the_writer_or_the_read_only_url(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://w:pw@db.example:5433/canonical")
    monkeypatch.setenv("READONLY_DATABASE_URL", "postgresql://r:pr@db.example:5433/canonical")
    assert run("db", "url").output.strip() == "postgresql://w:pw@db.example:5433/canonical"
    assert run("db", "url", "--readonly").output.strip() == "postgresql://r:pr@db.example:5433/canonical"


@pytest.mark.parametrize("args", [["files"], ["reprocess", "crm-data/x.json"]])
def test_database_down_is_a_one_line_error_without_the_password(args, monkeypatch):
    monkeypatch.setenv(
        "DATABASE_URL", f"postgresql://pipeline_writer:s3cret@127.0.0.1:{free_port()}/canonical"
    )
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "cannot connect to PostgreSQL" in result.output and "s3cret" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_db_migrate_with_the_owner_unreachable_names_the_admin_url(monkeypatch):
    monkeypatch.setenv("ADMIN_DATABASE_URL", f"postgresql://postgres:s3cret@127.0.0.1:{free_port()}/postgres")
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["db", "migrate"])
    assert result.exit_code == 1
    assert "cannot connect as the owner" in result.output and "s3cret" not in result.output


@pytest.fixture
def pg_env(db, monkeypatch):
    """The CLI pointed at the test cluster (fixtures `pg`/`db` come from tests/conftest.py)."""
    from pipeline_defs.devstack.postgres import SUPERUSER, SUPERUSER_PASSWORD

    monkeypatch.setenv("DATABASE_URL", db.writer_url)
    monkeypatch.setenv("READONLY_DATABASE_URL", db.reader_url)
    monkeypatch.setenv("ADMIN_DATABASE_URL", db.server.url("postgres", SUPERUSER, SUPERUSER_PASSWORD))
    get_settings.cache_clear()
    return db


@integration
def test_db_migrate_reports_an_up_to_date_schema(pg_env):
    result = run("db", "migrate")
    assert result.exit_code == 0
    assert "schema up to date" in result.output


@integration
def test_files_and_reprocess_against_the_registry(pg_env):
    from resources.ingest.registry import FileObject, register_files

    with psycopg.connect(pg_env.writer_url) as conn:
        register_files(
            conn,
            [FileObject("crm-data/a.json", '"e1"', 10), FileObject("notes/readme.txt", "e2", 5)],
            via="listing",
        )
        conn.execute(
            "UPDATE ingest.files SET status = 'loaded', received = 3, inserted = 3, updated = 0, "
            "unchanged = 0, superseded = 1, rejected = 0 WHERE s3_key = 'crm-data/a.json'"
        )

    out = run("files").output
    header, rule, *rows = out.strip().splitlines()
    assert header.split()[:3] == ["key", "status", "att"] and set(rule) <= {"-", " "}
    assert rows[0].startswith("notes/readme.txt") and "skipped" in rows[0] and "unknown prefix" in rows[0]
    # key, status, attempt, received, inserted, updated, unchanged, superseded, rejected
    assert rows[1].split()[:9] == ["crm-data/a.json", "loaded", "1", "3", "3", "0", "0", "1", "0"]
    assert run("files", "--status", "loaded").output.count("\n") == 3
    assert "no files recorded matching" in run("files", "--source", "erp").output

    result = run("reprocess", "crm-data/a.json")
    assert result.exit_code == 0 and "attempt 2 is pending" in result.output
    unknown = CliRunner().invoke(cli, ["reprocess", "crm-data/unknown.json"])
    assert unknown.exit_code == 1 and "no file with key" in unknown.output
    busy = CliRunner().invoke(cli, ["reprocess", "crm-data/a.json"])
    assert busy.exit_code == 0  # pending again is allowed; queued/loading is not:
    file_id = q1(pg_env.writer_url, "SELECT file_id FROM ingest.files WHERE s3_key = 'crm-data/a.json'")
    with live_loader(pg_env.writer_url, file_id):
        refused = CliRunner().invoke(cli, ["reprocess", "crm-data/a.json"])
        assert refused.exit_code == 1 and "is loading" in refused.output
        assert "loading" in run("files").output  # a live loader's file is never touched
    # Its loader gone (the session ended): `files` fails it, and then it may be reprocessed.
    listed = CliRunner().invoke(cli, ["files"])
    assert "its loader ended without finishing; nothing of it landed" in listed.output
    assert (
        q1(pg_env.writer_url, "SELECT failure_kind FROM ingest.files WHERE file_id = %s", (file_id,))
        == "infrastructure"
    )
    history = run("history", "crm-data/a.json").output
    assert "infrastructure" in history and "reprocess" in history
    assert CliRunner().invoke(cli, ["reprocess", "crm-data/a.json"]).exit_code == 0
