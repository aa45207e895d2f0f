"""The local runtime: AWS bootstrap on a real moto server, MotoServer itself, and the `pipeline` CLI.

`dagster dev` is never started here (that is `make dev`'s job); everything else runs for real.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote_plus

import psycopg
import pytest
from click.testing import CliRunner
from conftest_aws import aws_env, aws_settings, receive_messages, s3_event_records  # noqa: F401

from pipeline_defs import cli as cli_module
from pipeline_defs import devstack
from pipeline_defs.cli import cli
from resources.aws import aws_client, ensure_aws_resources
from resources.local_aws import MotoServer, MotoServerError, free_port, probe
from resources.settings import Settings, get_settings

integration = pytest.mark.integration


def run(*args: str) -> object:
    get_settings.cache_clear()
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


# ---------------------------------------------------------------------------------------------------
# ensure_aws_resources against moto


@integration
def test_ensure_aws_resources_creates_everything_and_is_idempotent(aws_env):  # noqa: F811
    s = aws_env
    first = ensure_aws_resources(s)
    second = ensure_aws_resources(s)
    assert first == second
    assert first.queue_arn and first.queue_arn.endswith(":" + s.ingest_queue)
    assert first.topic_arn.endswith(":" + s.notify_topic)

    s3 = aws_client("s3", s)
    for bucket in (s.raw_bucket, s.results_bucket):
        # us-east-1: no LocationConstraint (S3 reports None for it).
        assert s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") is None
    notif = s3.get_bucket_notification_configuration(Bucket=s.raw_bucket)
    assert [(q["QueueArn"], q["Events"]) for q in notif["QueueConfigurations"]] == [
        (first.queue_arn, ["s3:ObjectCreated:*"])
    ]

    sqs = aws_client("sqs", s)
    policy = json.loads(sqs.get_queue_attributes(QueueUrl=first.queue_url, AttributeNames=["Policy"])
                        ["Attributes"]["Policy"])
    [stmt] = policy["Statement"]
    assert stmt["Action"] == "sqs:SendMessage"
    assert stmt["Condition"]["ArnLike"]["aws:SourceArn"] == f"arn:aws:s3:::{s.raw_bucket}"

    ddb = aws_client("dynamodb", s)
    table = ddb.describe_table(TableName=s.jobs_table)["Table"]
    assert {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]} == {("PK", "HASH"), ("SK", "RANGE")}
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = ddb.describe_time_to_live(TableName=s.jobs_table)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expiresAt")

    topics = aws_client("sns", s).list_topics()["Topics"]
    assert first.topic_arn in {t["TopicArn"] for t in topics}

    # The notification configuration was written once: one s3:TestEvent, not one per call.
    bodies = receive_messages(sqs, first.queue_url, timeout=1.5, expect=2)
    assert [b.get("Event") for b in bodies] == ["s3:TestEvent"]


@integration
def test_an_upload_delivers_an_s3_event_with_url_encoded_key_and_unquoted_etag(aws_settings):  # noqa: F811
    s, res = aws_settings
    sqs = aws_client("sqs", s)
    receive_messages(sqs, res.queue_url, timeout=2, expect=1)  # the configuration's s3:TestEvent
    key = "crm-data/with space+plus é.json"
    put = aws_client("s3", s).put_object(Bucket=s.raw_bucket, Key=key, Body=b'{"records": []}')

    [record] = s3_event_records(receive_messages(sqs, res.queue_url, timeout=10))
    assert record["eventSource"] == "aws:s3"
    assert record["eventName"].startswith("ObjectCreated:")
    assert record["s3"]["bucket"]["name"] == s.raw_bucket
    obj = record["s3"]["object"]
    assert obj["key"] != key and unquote_plus(obj["key"]) == key  # form-encoded, as S3 does
    assert obj["eTag"] == put["ETag"].strip('"')  # events carry the ETag without quotes
    assert obj["size"] == len(b'{"records": []}')


@integration
def test_buckets_outside_us_east_1_get_their_location_constraint(moto_server, monkeypatch):
    from conftest_aws import unique_aws_env

    env = unique_aws_env(moto_server.endpoint_url) | {"AWS_REGION": "eu-west-1"}
    s = Settings(**env)
    res = ensure_aws_resources(s)
    assert ensure_aws_resources(s) == res
    assert ":eu-west-1:" in (res.queue_arn or "")
    loc = aws_client("s3", s).get_bucket_location(Bucket=s.raw_bucket)["LocationConstraint"]
    assert loc == "eu-west-1"


@integration
def test_an_empty_ingest_queue_disables_the_queue_and_the_notifications(moto_server):
    from conftest_aws import unique_aws_env

    s = Settings(**unique_aws_env(moto_server.endpoint_url) | {"INGEST_QUEUE": ""})
    res = ensure_aws_resources(s)
    assert (res.queue_url, res.queue_arn) == (None, None)
    notif = aws_client("s3", s).get_bucket_notification_configuration(Bucket=s.raw_bucket)
    assert not notif.get("QueueConfigurations")


def test_local_endpoint_without_credentials_uses_dummy_ones(monkeypatch):
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    client = aws_client("s3", Settings(AWS_ENDPOINT_URL="http://127.0.0.1:1"))
    creds = client._request_signer._credentials
    assert (creds.access_key, creds.secret_key) == ("testing", "testing")
    assert client.meta.endpoint_url == "http://127.0.0.1:1"


# ---------------------------------------------------------------------------------------------------
# MotoServer


@pytest.fixture
def http_404_server() -> Iterator[int]:
    """Something on a port that answers HTTP but is not moto."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@integration
def test_moto_server_refuses_a_port_taken_by_something_else(http_404_server):
    assert probe("127.0.0.1", http_404_server) == "other"
    with pytest.raises(MotoServerError, match="not a moto server"):
        MotoServer(port=http_404_server).start()


@integration
def test_moto_server_reuses_a_running_moto_only_when_asked_and_never_stops_it(moto_server):
    with pytest.raises(MotoServerError, match="already running"):
        MotoServer(port=moto_server.port).start()
    other = MotoServer(port=moto_server.port, reuse_existing=True)
    with other:
        assert other.reused and other.pid is None
    assert probe("127.0.0.1", moto_server.port) == "moto"


@integration
def test_moto_server_stops_and_frees_its_port(tmp_path):
    port = free_port()
    server = MotoServer(port=port, log_path=tmp_path / "moto.log").start()
    assert server.running() and probe("127.0.0.1", port) == "moto"
    server.stop()
    assert not server.running()
    assert probe("127.0.0.1", port) == "free"


# ---------------------------------------------------------------------------------------------------
# CLI: upload


@integration
def test_upload_puts_the_file_under_its_source_prefix_and_prints_key_and_etag(aws_settings, tmp_path):  # noqa: F811
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
def test_upload_to_a_missing_bucket_is_a_one_line_error(aws_env, tmp_path, monkeypatch):  # noqa: F811
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
    monkeypatch.setenv("DATABASE_URL", f"postgresql://pipeline_writer:s3cret@127.0.0.1:{free_port()}/canonical")
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
    from resources.local_postgres import SUPERUSER, SUPERUSER_PASSWORD

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
    from resources.ingest_registry import FileObject, register_files

    with psycopg.connect(pg_env.writer_url) as conn:
        register_files(conn, [FileObject("crm-data/a.json", '"e1"', 10), FileObject("notes/readme.txt", "e2", 5)],
                       via="listing")
        conn.execute("UPDATE ingest.files SET status = 'loaded', received = 3, inserted = 3, updated = 0, "
                     "unchanged = 0, superseded = 1, rejected = 0 WHERE s3_key = 'crm-data/a.json'")

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
    with psycopg.connect(pg_env.writer_url) as conn:
        conn.execute("UPDATE ingest.files SET status = 'loading' WHERE s3_key = 'crm-data/a.json'")
    refused = CliRunner().invoke(cli, ["reprocess", "crm-data/a.json"])
    assert refused.exit_code == 1 and "is loading" in refused.output


# ---------------------------------------------------------------------------------------------------
# Other terminals find a running `pipeline dev`


def test_cli_adopts_the_environment_of_a_running_dev_stack_without_overriding(tmp_path):
    state = {"pid": os.getppid(), "env": {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "RAW_BUCKET": "from-dev"}}
    (tmp_path / "dev-stack.json").write_text(json.dumps(state))
    environ = {"PIPELINE_LOCAL_DIR": str(tmp_path), "RAW_BUCKET": "explicit"}
    assert cli_module.adopt_running_dev_stack(environ)
    assert environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566" and environ["RAW_BUCKET"] == "explicit"

    state["pid"] = 2**22 + 12345  # above pid_max: certainly not running
    (tmp_path / "dev-stack.json").write_text(json.dumps(state))
    environ = {"PIPELINE_LOCAL_DIR": str(tmp_path)}
    assert not cli_module.adopt_running_dev_stack(environ)
    assert "AWS_ENDPOINT_URL" not in environ


# ---------------------------------------------------------------------------------------------------
# devstack pieces (no processes)


def test_dagster_storage_url_names_psycopg2_for_sqlalchemy_and_back():
    url = "postgresql://postgres:pw@127.0.0.1:5432/dagster"
    assert devstack.dagster_storage_url(url) == "postgresql+psycopg2://postgres:pw@127.0.0.1:5432/dagster"
    assert devstack.dagster_storage_url("postgresql+psycopg2://x@h/d") == "postgresql+psycopg2://x@h/d"
    assert devstack.libpq_url(devstack.dagster_storage_url(url)) == url


def test_url_on_port_keeps_credentials_and_database():
    url = "postgresql://pipeline_reader:pipeline_reader@127.0.0.1:5432/canonical"
    assert devstack._url_on_port(url, 5433) == "postgresql://pipeline_reader:pipeline_reader@127.0.0.1:5433/canonical"
    assert devstack._url_on_port("host=x port=1", 5433) == "host=x port=1"


def test_child_env_carries_every_setting_and_the_extras(monkeypatch):
    monkeypatch.setenv("SOMETHING_ELSE", "kept")
    s = Settings(RAW_BUCKET="r", AWS_ENDPOINT_URL="http://127.0.0.1:4566")
    env = devstack.child_env(s, {"DAGSTER_HOME": "/x"})
    aliases = {f.alias for n, f in Settings.model_fields.items() if getattr(s, n) is not None}
    assert aliases <= set(env)
    assert env["RAW_BUCKET"] == "r" and env["DAGSTER_HOME"] == "/x" and env["SOMETHING_ELSE"] == "kept"


def test_sample_files_map_to_source_prefixed_keys(tmp_path):
    (tmp_path / "samples" / "crm-data" / "sub").mkdir(parents=True)
    (tmp_path / "samples" / "crm-data" / "a.json").write_text("[]")
    (tmp_path / "samples" / "crm-data" / "sub" / "b.ndjson").write_text("")
    (tmp_path / "samples" / "crm-data" / ".hidden").write_text("")
    (tmp_path / "samples" / "other").mkdir()
    (tmp_path / "samples" / "other" / "c.json").write_text("[]")
    assert [k for _, k in devstack.sample_files(tmp_path)] == ["crm-data/a.json", "crm-data/sub/b.ndjson"]


def test_the_repository_samples_cover_every_source():
    keys = [k for _, k in devstack.sample_files(Path(devstack.PROJECT_ROOT))]
    assert {k.split("/")[0] + "/" for k in keys} == {"crm-data/", "erp-data/", "legacy-data/"}


def test_generated_dagster_yaml_is_a_valid_instance_config(tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    (tmp_path / "dagster.yaml").write_text(devstack.DAGSTER_YAML)
    monkeypatch.setenv("DAGSTER_DATABASE_URL", "postgresql+psycopg2://u:p@127.0.0.1:1/dagster")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_coordinator"]["config"]["max_concurrent_runs"] == 2
    assert config["telemetry"]["enabled"] is False
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_DATABASE_URL"}



def test_a_port_taken_by_another_server_stops_pipeline_dev_before_it_starts_anything(tmp_path, http_404_server):
    s = Settings(
        DATABASE_URL=f"postgresql://pipeline_writer:pipeline_writer@127.0.0.1:{http_404_server}/canonical",
        PIPELINE_LOCAL_DIR=str(tmp_path),
    )
    stack = devstack.DevStack(s, echo=lambda msg: None)
    with pytest.raises(devstack.DevStackError, match=f"port {http_404_server} is taken"):
        stack.start()
    assert not stack.stop()  # nothing was started
    assert not (tmp_path / "postgres").exists()
