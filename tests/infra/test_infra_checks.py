"""Linters over the synthesized app (cdk-nag, cfn-lint), the Dagster instance config, and the two
scripts the image runs (entrypoint, db-setup)."""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from tests.infra.infra_synth import INFRA_DIR, REGION, Synth

pytestmark = pytest.mark.xdist_group("infra")


def _load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"infra_docker_{name}", INFRA_DIR / "docker" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- cdk-nag ------------------------------------------------------------------------------------------


def test_cdk_nag_reports_nothing_unacknowledged(deployment: Synth) -> None:
    """The pack is a validation plugin: synthesis (the fixture) fails on any finding nobody acknowledged.
    The report in the cloud assembly lists only plugins that found something, and nothing remains."""
    report = json.loads((deployment.outdir / "validation-report.json").read_text())
    assert [(p["pluginName"], v["ruleName"]) for p in report["pluginReports"] for v in p["violations"]] == []


def test_an_unacknowledged_finding_fails_the_synth(tmp_path: Path, lambda_asset: str) -> None:
    """Proof that build_app enforces the pack: one non-compliant queue added to the data stack."""
    import aws_cdk as cdk
    from aws_cdk import aws_sqs as sqs
    from canonical_infra.platform import build_app

    from tests.infra.infra_synth import synth_context

    app = cdk.App(outdir=str(tmp_path), context=synth_context(env="dev", lambdaAsset=lambda_asset))
    stacks = build_app(app)
    sqs.Queue(stacks.data, "UncheckedQueue")  # no DLQ, no TLS-only policy
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    findings = {
        (v["ruleName"], c["constructPath"])
        for p in report["pluginReports"]
        for v in p["violations"]
        for c in v["violatingConstructs"]
    }
    assert findings == {
        ("AwsSolutions-SQS3", "Canonical-Dev-Data/UncheckedQueue/Resource"),
        ("AwsSolutions-SQS4", "Canonical-Dev-Data/UncheckedQueue/Resource"),
    }


def test_every_acknowledgment_is_specific_and_explained(deployment: Synth) -> None:
    acknowledged: dict[str, str] = {}
    for template in deployment.templates.values():
        for logical_id, resource in template["Resources"].items():
            for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
                if rule["id"].startswith("AwsSolutions-"):  # (CDK acknowledges some of its own checks too)
                    acknowledged[f"{logical_id}:{rule['id']}"] = rule["reason"]
    assert acknowledged, "the acknowledgments are written into the templates' Metadata"
    for where, reason in acknowledged.items():
        assert len(reason) >= 40, f"{where}: say why, not just that ({reason!r})"
        # IAM wildcard findings are acknowledged one finding at a time, never for the whole rule.
        rule = where.split(":", 1)[1]
        if rule.startswith(("AwsSolutions-IAM5", "AwsSolutions-IAM4")):
            assert rule.endswith("]") and "[" in rule, where
    rules = {where.split(":", 1)[1].split("[")[0] for where in acknowledged}
    # The full list, so adding one is a visible decision (README: "cdk-nag acknowledgments").
    allowed = {
        "AwsSolutions-IAM4",
        "AwsSolutions-IAM5",
        "AwsSolutions-ECS2",
        "AwsSolutions-L1",
        "AwsSolutions-APIG3",
        "AwsSolutions-APIG4",
        "AwsSolutions-COG4",
        "AwsSolutions-RDS11",
        "AwsSolutions-SMG4",
    }
    if deployment.config.ui_auth == "cognito":  # threat protection is a paid plan: the deployer's choice
        allowed |= {"AwsSolutions-COG3", "AwsSolutions-COG8"}
    if "0.0.0.0/0" in deployment.config.ui_allowed_cidrs and deployment.config.ui_auth != "none":
        allowed |= {"AwsSolutions-EC23"}  # the authenticating UI load balancer
    if deployment.config.nat_provider == "instance":  # dev-lean's NAT instance
        allowed |= {"AwsSolutions-EC26", "AwsSolutions-EC28", "AwsSolutions-EC29"}
    if not deployment.config.is_prod:
        allowed |= {"AwsSolutions-RDS3", "AwsSolutions-RDS10"}
    assert rules <= allowed, rules - allowed


# -- cfn-lint -----------------------------------------------------------------------------------------


def test_cfn_lint_clean(deployment: Synth) -> None:
    from cfnlint.api import ManualArgs, lint_file

    problems = []
    for stack in deployment.stacks.all():
        template = deployment.outdir / stack.template_file
        problems += [str(m) for m in lint_file(template, config=ManualArgs(regions=[REGION]))]
    assert problems == []


# -- Dagster instance configuration -------------------------------------------------------------------


def _validate_configurable(section: dict[str, Any]) -> None:
    from dagster._config import process_config, resolve_to_config_type

    klass = getattr(importlib.import_module(section["module"]), section["class"])
    result = process_config(resolve_to_config_type(klass.config_type()), section.get("config", {}))
    assert result.success, (section["class"], [e.message for e in result.errors or []])


def test_dagster_yaml_is_valid_for_dagster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from dagster._core.instance.config import dagster_instance_config

    for name, value in {
        "DAGSTER_DATABASE_URL": "postgresql://dagster:secret@db:5432/dagster?sslmode=require",
        "DAGSTER_RUN_TASK_DEFINITION": "canonical-dev-dagster-run",
        "DAGSTER_MAX_CONCURRENT_RUNS": "10",
        "COMPUTE_LOGS_BUCKET": "canonical-dev-logs-111111111111-eu-west-1",
        "COMPUTE_LOGS_PREFIX": "dagster/compute-logs",
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "dagster.yaml").write_text((INFRA_DIR / "dagster.yaml").read_text())
    config, _ = dagster_instance_config(str(tmp_path))  # the instance schema
    raw = yaml.safe_load((INFRA_DIR / "dagster.yaml").read_text())
    for section in ("run_launcher", "run_coordinator", "compute_logs"):
        _validate_configurable(raw[section])  # each class's own schema
    from dagster_postgres import DagsterPostgresStorage

    assert config["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_DATABASE_URL"}
    assert DagsterPostgresStorage.config_type()  # the storage the `storage: postgres` key selects
    assert (
        raw["run_launcher"]["class"] == "EcsRunLauncher"
        and raw["run_launcher"]["config"]["container_name"] == "run"
    )
    assert raw["run_monitoring"]["enabled"] and raw["run_retries"]["enabled"]
    assert (
        raw["run_retries"]["retry_on_asset_or_op_failure"] is False
    )  # ops retry themselves; bad config fails once
    # Ticks are purged (the landing sensor ticks every few seconds: skipped ticks go after a week).
    assert config["retention"]["sensor"]["purge_after_days"]["skipped"] == 7
    assert all(v > 0 for v in config["retention"]["sensor"]["purge_after_days"].values())
    assert config["retention"]["schedule"]["purge_after_days"] > 0


# -- the image's scripts ------------------------------------------------------------------------------


def test_entrypoint_turns_secrets_into_urls() -> None:
    entrypoint = _load_script("entrypoint")
    secret = {
        "username": "pipeline_writer",
        "password": "p@ss w/rd",
        "host": "db.example",
        "port": 5432,
        "dbname": "canonical",
        "engine": "postgres",
    }
    env = entrypoint.compose(
        {
            "DATABASE_SECRET": json.dumps(secret),
            "DAGSTER_DATABASE_SECRET": json.dumps({**secret, "username": "dagster", "dbname": None}),
            "READONLY_DATABASE_URL": "postgresql://already-set",
            "READONLY_DATABASE_SECRET": json.dumps(secret),
            "PATH": "/usr/bin",
        }
    )
    assert (
        env["DATABASE_URL"]
        == "postgresql://pipeline_writer:p%40ss%20w%2Frd@db.example:5432/canonical?sslmode=require"
    )
    assert env["DAGSTER_DATABASE_URL"].endswith("@db.example:5432/dagster?sslmode=require")
    assert env["READONLY_DATABASE_URL"] == "postgresql://already-set"  # an explicit URL wins
    assert not [k for k in env if k.endswith("_SECRET")]  # the JSON does not reach the command
    assert env["PATH"] == "/usr/bin"


def test_the_entrypoint_runs_with_only_what_the_system_image_holds(tmp_path: Path) -> None:
    """The system image (webserver, daemon) has Python's standard library, the entrypoint and
    resources/clients/secrets.py of ours: the entrypoint must need nothing else (run here without site-packages)."""
    import shutil
    import subprocess
    import sys

    root = INFRA_DIR.parent
    for relative in (
        "infra/docker/entrypoint.py",
        "resources/__init__.py",
        "resources/clients/__init__.py",
        "resources/clients/secrets.py",
    ):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / relative, tmp_path / relative)
    secret = json.dumps(
        {"username": "dagster", "password": "pw", "host": "db", "port": 5432, "dbname": "dagster"}
    )
    done = subprocess.run(
        [
            sys.executable,
            "-S",
            str(tmp_path / "infra/docker/entrypoint.py"),
            sys.executable,
            "-S",
            "-c",
            "import os; print(os.environ['DAGSTER_DATABASE_URL'])",
        ],
        env={"PYTHONPATH": str(tmp_path), "DAGSTER_DATABASE_SECRET": secret, "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "postgresql://dagster:pw@db:5432/dagster?sslmode=require"


def test_in_the_image_the_urls_verify_the_server_with_the_rds_ca_bundle(tmp_path: Path) -> None:
    """The image fetches the RDS CA bundle when it is built and names it in DATABASE_CA_BUNDLE; the
    entrypoint's URLs then verify the server's certificate and name (`require` encrypts only)."""
    dockerfile = (INFRA_DIR / "Dockerfile").read_text()
    assert (
        "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem /app/rds-ca-bundle.pem"
        in dockerfile
    )
    assert "ENV DATABASE_CA_BUNDLE=/app/rds-ca-bundle.pem" in dockerfile
    entrypoint = _load_script("entrypoint")
    secret = {
        "username": "dagster",
        "password": "pw",
        "host": "canonical-prod-db.abc.eu-west-1.rds.amazonaws.com",
        "port": 5432,
        "dbname": "dagster",
    }
    env = entrypoint.compose(
        {"DAGSTER_DATABASE_SECRET": json.dumps(secret), "DATABASE_CA_BUNDLE": "/app/rds-ca-bundle.pem"}
    )
    params = conninfo_to_dict(env["DAGSTER_DATABASE_URL"])
    assert (params["sslmode"], params["sslrootcert"]) == ("verify-full", "/app/rds-ca-bundle.pem")
    assert params["host"] == secret["host"]


@pytest.mark.integration
def test_db_setup_prepares_a_database_like_rds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """db-setup against a real PostgreSQL, run as a master user that is not a superuser (as on RDS)."""
    from pipeline_defs.devstack.postgres import LocalPostgres
    from pipeline_defs.devstack.processes import free_port

    server = LocalPostgres(tmp_path / "pg", port=free_port(), settings={"fsync": "off"})
    server.start()
    try:
        with psycopg.connect(server.admin_url, autocommit=True) as conn:
            conn.execute("CREATE ROLE canonical_admin LOGIN CREATEDB CREATEROLE PASSWORD 'master-pw'")
        urls = {
            "ADMIN_DATABASE_URL": server.url("postgres", "canonical_admin", "master-pw"),
            "DATABASE_URL": server.url("canonical", "pipeline_writer", "writer-pw"),
            "READONLY_DATABASE_URL": server.url("canonical", "pipeline_reader", "reader-pw"),
            "DAGSTER_DATABASE_URL": server.url("dagster", "dagster", "dagster-pw"),
        }
        for name, url in urls.items():
            monkeypatch.setenv(name, url)
        db_setup = _load_script("db_setup")
        assert db_setup.main() == 0
        assert db_setup.main() == 0  # idempotent: runs after every deploy

        with psycopg.connect(urls["DATABASE_URL"]) as conn:
            conn.execute("SELECT count(*) FROM ingest.files").fetchone()
        with psycopg.connect(urls["READONLY_DATABASE_URL"]) as conn:
            assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        with psycopg.connect(urls["DAGSTER_DATABASE_URL"], autocommit=True) as conn:
            conn.execute("CREATE TABLE runs_probe (id int)")  # the dagster role owns its database

        # What multi-user rotation does on its first run: give the clone a password, then use it.
        with psycopg.connect(urls["ADMIN_DATABASE_URL"], autocommit=True) as conn:
            conn.execute("ALTER ROLE pipeline_reader_clone PASSWORD 'clone-pw'")
        clone_url = server.url("canonical", "pipeline_reader_clone", "clone-pw")
        with psycopg.connect(clone_url) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("pipeline_reader",)
            assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
            assert conn.execute("SHOW statement_timeout").fetchone() == ("30s",)
            conn.execute("SELECT count(*) FROM canonical.entities").fetchone()
        # And db-setup after a rotation (the secret now names the clone) keeps both working.
        monkeypatch.setenv("READONLY_DATABASE_URL", clone_url)
        assert db_setup.main() == 0
        psycopg.connect(clone_url).close()

        # On RDS (a role rds_iam exists) the API's IAM twins appear: members of rds_iam (token login only)
        # acting as the base roles with their settings; the base roles keep their password login.
        with psycopg.connect(server.admin_url, autocommit=True) as conn:
            conn.execute("CREATE ROLE rds_iam NOLOGIN")
            # The RDS master (rds_superuser) may grant it.
            conn.execute("GRANT rds_iam TO canonical_admin WITH ADMIN OPTION")
        assert db_setup.main() == 0
        with psycopg.connect(server.admin_url, autocommit=True) as conn:
            member = "SELECT pg_has_role(%s, %s, 'MEMBER')"
            assert conn.execute(member, ("pipeline_reader_iam", "rds_iam")).fetchone() == (True,)
            assert conn.execute(member, ("pipeline_writer_iam", "rds_iam")).fetchone() == (True,)
            assert conn.execute(member, ("pipeline_reader", "rds_iam")).fetchone() == (False,)
            assert conn.execute(member, ("pipeline_reader_clone", "rds_iam")).fetchone() == (False,)
            # Give the twin a password here only to log in as it (RDS would take a token).
            conn.execute("ALTER ROLE pipeline_reader_iam PASSWORD 'iam-pw'")
        with psycopg.connect(server.url("canonical", "pipeline_reader_iam", "iam-pw")) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("pipeline_reader",)
            assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        psycopg.connect(clone_url).close()
    finally:
        server.stop(mode="immediate")
