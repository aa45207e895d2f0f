"""What runs where: Dagster on ECS, the REST API on Lambda + API Gateway, and the alarms that watch them."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.infra.infra_synth import CORS_ORIGIN, INFRA_DIR, LAMBDA_PACKAGE_MISSING, Synth, real_lambda_package

pytestmark = pytest.mark.xdist_group("infra")


# -- orchestration ------------------------------------------------------------------------------------


def _containers(synth: Synth) -> dict[str, dict[str, Any]]:
    return {
        c["Name"]: c
        for td in synth.resources("AWS::ECS::TaskDefinition", "orchestration").values()
        for c in td["Properties"]["ContainerDefinitions"]
    }


def _staged(synth: Synth, image: dict[str, Any]) -> set[str]:
    context = synth.outdir / image["source"]["directory"]
    return {p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file()}


def test_dagster_images_are_built_from_the_infra_dockerfile(dev: Synth) -> None:
    """Two targets of infra/Dockerfile: `code` (our packages: code server, runs, db-setup) and `system`
    (webserver, daemon: no code of ours but the entrypoint's secrets module), each from an allow-listed
    context, so a code change changes the code image alone and a code deploy never restarts the daemon."""
    images = {
        image["source"]["dockerBuildTarget"]: image
        for image in dev.assets_manifest("orchestration")["dockerImages"].values()
    }
    assert set(images) == {"code", "system"}
    for image in images.values():
        assert image["source"]["dockerFile"] == "infra/Dockerfile"
        assert image["source"]["platform"] == "linux/amd64"
    # Synthesis only stages the build contexts (no Docker here): exactly what each image needs.
    code = _staged(dev, images["code"])
    for needed in (
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "workspace.yaml",
        "infra/Dockerfile",
        "infra/dagster.yaml",
        "infra/workspace.yaml",
        "infra/docker/entrypoint.py",
        "infra/docker/db_setup.py",
        "resources/settings.py",
        "pipeline_defs/definitions.py",
    ):
        assert needed in code, needed
    assert not [
        p
        for p in code
        if p.startswith((".venv/", "tests/", ".git/", "infra/canonical_infra/", "dist/"))
        or "__pycache__" in p
    ]
    assert _staged(dev, images["system"]) == {
        "pyproject.toml",
        "uv.lock",
        "infra/Dockerfile",
        "infra/dagster.yaml",
        "infra/workspace.yaml",
        "infra/docker/entrypoint.py",
        "resources/__init__.py",
        "resources/clients/__init__.py",
        "resources/clients/secrets.py",
    }
    # The webserver and daemon run the system image; everything else the code image.
    # Each image is pushed under its asset hash as the tag (the staging folder's name may carry a suffix:
    # CDK takes a dot in the checkout's own path for an extension).
    hashes = {
        target: next(iter(image["destinations"].values()))["imageTag"] for target, image in images.items()
    }
    for name, container in _containers(dev).items():
        target = "system" if name in ("webserver", "daemon") else "code"
        assert hashes[target] in json.dumps(container["Image"]), name
    dockerfile = (INFRA_DIR / "Dockerfile").read_text()
    assert "FROM runtime AS system" in dockerfile and dockerfile.rstrip().splitlines()[-1].startswith("CMD")
    assert dockerfile.index("AS system") < dockerfile.index("AS code")  # `code` is the default (last) target


def test_dagster_image_can_come_from_ecr_instead(
    tmp_path_factory: pytest.TempPathFactory, lambda_asset: str
) -> None:
    from tests.infra.infra_synth import synthesize

    uri = "111111111111.dkr.ecr.eu-west-1.amazonaws.com/canonical-dagster:2024-06-01"
    synth = synthesize(
        tmp_path_factory.mktemp("cdk-ecr"), env="dev", lambdaAsset=lambda_asset, dagsterImage=uri
    )
    assert (
        "dockerImages" not in synth.assets_manifest("orchestration")
        or not synth.assets_manifest("orchestration")["dockerImages"]
    )
    images = {json.dumps(c["Image"]) for c in _containers(synth).values()}
    assert (
        len(images) == 1
        and "canonical-dagster" in images.pop()
        and ":2024-06-01" in json.dumps(synth.templates["orchestration"])
    )


def test_containers_get_database_credentials_only_as_secrets(dev: Synth) -> None:
    containers = _containers(dev)
    assert set(containers) == {"run", "code", "daemon", "webserver", "db-setup"}
    expected = {
        "run": {"DATABASE_SECRET", "READONLY_DATABASE_SECRET", "DAGSTER_DATABASE_SECRET"},
        "code": {"DATABASE_SECRET", "DAGSTER_DATABASE_SECRET"},  # sensors register files, read the instance
        "daemon": {"DAGSTER_DATABASE_SECRET"},
        "webserver": {"DAGSTER_DATABASE_SECRET"},
        "db-setup": {
            "ADMIN_DATABASE_SECRET",
            "DATABASE_SECRET",
            "READONLY_DATABASE_SECRET",
            "DAGSTER_DATABASE_SECRET",
        },
    }
    for name, container in containers.items():
        assert {s["Name"] for s in container["Secrets"]} == expected[name], name
        env = json.dumps(container.get("Environment", [])).lower()
        assert "password" not in env and "postgresql://" not in env, name
        assert container["LogConfiguration"]["LogDriver"] == "awslogs"


def test_services_run_privately_with_one_daemon(dev: Synth) -> None:
    services = {
        s["Properties"]["ServiceName"]: s["Properties"] for s in dev.resources("AWS::ECS::Service").values()
    }
    for service in services.values():
        assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"
        assert service["LaunchType"] == "FARGATE" and service["DesiredCount"] == 1
        assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {
            "Enable": True,
            "Rollback": True,
        }
    daemon = services["canonical-dev-dagster-daemon"]["DeploymentConfiguration"]
    assert (daemon["MinimumHealthyPercent"], daemon["MaximumPercent"]) == (0, 100)  # never two daemons
    assert services["canonical-dev-dagster-webserver"]["EnableExecuteCommand"] is True  # the operator path
    dev.template("orchestration").has_resource_properties(
        "AWS::ECS::Cluster",
        {
            "ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}],
            "Configuration": {"ExecuteCommandConfiguration": {"Logging": "OVERRIDE"}},
        },
    )


def test_dagster_yaml_variables_are_all_provided(dev: Synth) -> None:
    """Every `env:` the instance config reads is set on the daemon, webserver and run containers."""
    import yaml

    from tests.infra.infra_synth import INFRA_DIR

    def env_refs(node: Any) -> set[str]:
        if isinstance(node, dict):
            return {node["env"]} if set(node) == {"env"} else set().union(*map(env_refs, node.values()))
        return set().union(*map(env_refs, node)) if isinstance(node, list) else set()

    wanted = env_refs(yaml.safe_load((INFRA_DIR / "dagster.yaml").read_text()))
    assert "DAGSTER_DATABASE_URL" in wanted and "DAGSTER_RUN_TASK_DEFINITION" in wanted
    run_family = next(
        td["Properties"]["Family"]
        for td in dev.resources("AWS::ECS::TaskDefinition").values()
        if td["Properties"]["ContainerDefinitions"][0]["Name"] == "run"
    )
    for name, container in _containers(dev).items():
        if name == "db-setup":
            continue
        env = {e["Name"]: e["Value"] for e in container["Environment"]}
        composed = {"DAGSTER_DATABASE_URL"}  # by infra/docker/entrypoint.py from DAGSTER_DATABASE_SECRET
        assert wanted <= set(env) | composed, (name, wanted - set(env) - composed)
        # The launchers name one revision (the test below); the run tasks, which launch nothing, the family.
        assert env["DAGSTER_RUN_TASK_DEFINITION"] == run_family or name in ("daemon", "webserver")
        assert (
            env["NOTIFY_TOPIC"] and env["INGEST_QUEUE"] and env["RAW_BUCKET"].startswith("canonical-dev-raw-")
        )


# -- API ----------------------------------------------------------------------------------------------


def test_api_lambda(dev: Synth) -> None:
    (fn,) = [f for f in dev.resources("AWS::Lambda::Function", "api").values()]
    props = fn["Properties"]
    assert props["Handler"] == "api.lambda_handler.handler"
    assert props["Runtime"] == dev.config.lambda_runtime
    # None reserved unless configured: a new account's quota (10) admits no reservation at all.
    assert "ReservedConcurrentExecutions" not in props
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["VpcConfig"]["SubnetIds"] and props["VpcConfig"]["SecurityGroupIds"]
    assert props["Timeout"] <= 29
    env = props["Environment"]["Variables"]
    assert {
        "DATABASE_IAM_AUTH",
        "DATABASE_PROXY_ENDPOINT",
        "DATABASE_USER",
        "READONLY_DATABASE_USER",
        "DAGSTER_URL",
        "JOBS_TABLE",
        "RESULTS_BUCKET",
        "RAW_BUCKET",
    } <= set(env)
    assert env["API_CORS_ORIGINS"] == CORS_ORIGIN  # the name api/config.py reads
    assert "password" not in json.dumps(env).lower()


def test_api_scopes_come_from_a_keys_secret_naming_the_first_gateway_key(dev: Synth) -> None:
    """On AWS the app's scopes are on: the function reads a keys secret whose first entry is the stack's
    API Gateway key (by id, which the gateway hands the function), and may read nothing else of it."""
    secrets = {k: v for k, v in dev.resources("AWS::SecretsManager::Secret", "api").items()}
    (secret_id,) = [k for k, v in secrets.items() if "api-keys" in json.dumps(v["Properties"].get("Name"))]
    (key_id,) = dev.resources("AWS::ApiGateway::ApiKey", "api")
    content = json.dumps(secrets[secret_id]["Properties"]["SecretString"])
    assert '\\"apiGatewayKeyId\\":\\"' in content and f'"Ref": "{key_id}"' in content
    assert '\\"scopes\\":[\\"read\\",\\"jobs\\"]' in content  # no sql for the default key
    (fn,) = dev.resources("AWS::Lambda::Function", "api").values()
    assert fn["Properties"]["Environment"]["Variables"]["API_KEYS_SECRET_ARN"] == {"Ref": secret_id}
    reads = [
        st
        for policy in dev.resources("AWS::IAM::Policy", "api").values()
        for st in policy["Properties"]["PolicyDocument"]["Statement"]
        if {"Ref": secret_id} in (st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]])
    ]
    assert [st["Action"] for st in reads] == ["secretsmanager:GetSecretValue"]


def test_api_stage_logs_traces_and_throttles(dev: Synth) -> None:
    from aws_cdk.assertions import Match

    api = dev.template("api")
    api.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "StageName": "v1",
            "TracingEnabled": True,
            "AccessLogSetting": {
                "DestinationArn": Match.any_value(),
                "Format": Match.string_like_regexp("requestId"),
            },
            "MethodSettings": [
                Match.object_like(
                    {
                        "HttpMethod": "*",
                        "ResourcePath": "/*",
                        "LoggingLevel": "ERROR",
                        "DataTraceEnabled": False,
                        "ThrottlingRateLimit": dev.config.api_rate_limit,
                        "ThrottlingBurstLimit": dev.config.api_burst_limit,
                    }
                )
            ],
        },
    )
    api.has_resource_properties(
        "AWS::ApiGateway::UsagePlan",
        {
            "Throttle": {"RateLimit": dev.config.api_rate_limit, "BurstLimit": dev.config.api_burst_limit},
            "Quota": {"Limit": dev.config.api_quota_per_day, "Period": "DAY"},
        },
    )
    api.resource_count_is("AWS::ApiGateway::ApiKey", 1)
    api.resource_count_is("AWS::ApiGateway::UsagePlanKey", 1)


def test_api_methods_need_a_key_and_bodies_are_validated(dev: Synth) -> None:
    methods = [m["Properties"] for m in dev.resources("AWS::ApiGateway::Method", "api").values()]
    for method in methods:
        if method["HttpMethod"] == "OPTIONS":  # CORS preflight carries no key by design
            assert method["AuthorizationType"] == "NONE"
            assert f"'{CORS_ORIGIN}'" in json.dumps(method["Integration"])
        else:
            assert method["ApiKeyRequired"] is True, method
    validated = [m for m in methods if "RequestModels" in m]
    assert len(validated) == 2 and all(
        m["HttpMethod"] == "POST" and "RequestValidatorId" in m for m in validated
    )
    (get_analytics,) = [m for m in methods if m.get("RequestParameters")]
    assert get_analytics["RequestParameters"] == {"method.request.querystring.operation": True}
    dev.template("api").has_resource_properties(
        "AWS::ApiGateway::RequestValidator", {"ValidateRequestBody": True, "ValidateRequestParameters": True}
    )
    (model,) = dev.resources("AWS::ApiGateway::Model", "api").values()
    assert model["Properties"]["Schema"]["required"] == ["operation"]
    # Gateway-made errors keep the app's problem+json shape.
    for response in dev.resources("AWS::ApiGateway::GatewayResponse", "api").values():
        assert (
            response["Properties"]["ResponseParameters"]["gatewayresponse.header.Content-Type"]
            == "'application/problem+json'"
        )


def test_api_lambda_asset_is_the_real_package(dev: Synth) -> None:
    package = real_lambda_package()
    if package is None:
        pytest.skip(LAMBDA_PACKAGE_MISSING)
    (fn,) = dev.resources("AWS::Lambda::Function", "api").values()
    asset_hash = fn["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    staged = dev.outdir / dev.assets_manifest("api")["files"][asset_hash]["source"]["path"]
    if package.is_file():
        assert hashlib.sha256(staged.read_bytes()).digest() == hashlib.sha256(package.read_bytes()).digest()
        names = set(zipfile.ZipFile(package).namelist())
    else:
        names = {p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()}
        assert names == {p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file()}
    assert "api/lambda_handler.py" in names
    assert not [n for n in names if n.startswith("dagster/")], "the Lambda package must not contain dagster"


def test_missing_lambda_package_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import canonical_infra.config as config_module

    monkeypatch.setattr(
        config_module, "DEFAULT_LAMBDA_ASSETS", (tmp_path / "lambda.zip", tmp_path / "lambda")
    )
    with pytest.raises(config_module.ConfigError, match="make lambda-package"):
        config_module.Config().lambda_asset_path()


# -- monitoring ---------------------------------------------------------------------------------------


def test_alarms_cover_every_failure_mode_and_notify(dev: Synth) -> None:
    from aws_cdk.assertions import Match

    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in dev.resources("AWS::CloudWatch::Alarm").values()
    }
    expected = {
        "ApiLambdaErrors",
        "ApiLambdaThrottles",
        "Api5xx",
        "ApiLatencyP99",
        "DbCpu",
        "DbFreeStorage",
        "DbConnections",
        "JobsTableThrottles",
        "IngestDlqDepth",
        "IngestQueueAge",
        "FailedDagsterRuns",
        "RefusedRecords",
        "DaemonNotRunning",
        "CodeServerNotRunning",
        "WebserverNotRunning",
    }
    assert set(alarms) == {f"canonical-dev-{name}" for name in expected}
    (topic_id,) = [tid for tid in dev.resources("AWS::SNS::Topic", "monitoring")]
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": topic_id}], name
    # Custom metrics, as the platform's code emits them (resources.clients.metrics.put_count: an Environment
    # dimension on every datum; sensors/job_status.py: FailedRuns per JobType too).
    refused = alarms["canonical-dev-RefusedRecords"]
    assert refused["Namespace"] == "CanonicalPipeline"
    assert refused["Dimensions"] == [{"Name": "Environment", "Value": "dev"}]
    failed = [
        m["MetricStat"]["Metric"]
        for m in alarms["canonical-dev-FailedDagsterRuns"]["Metrics"]
        if "MetricStat" in m
    ]
    assert {
        (m["Namespace"], m["MetricName"], tuple((d["Name"], d["Value"]) for d in m["Dimensions"]))
        for m in failed
    } == {
        ("CanonicalPipeline", "FailedRuns", (("Environment", "dev"), ("JobType", "analytics"))),
        ("CanonicalPipeline", "FailedRuns", (("Environment", "dev"), ("JobType", "ingest"))),
    }
    from resources.clients.metrics import NAMESPACE  # what the sensor and the ingest asset publish into

    assert NAMESPACE == "CanonicalPipeline"
    for emitter, needles in (
        (INFRA_DIR.parent / "sensors" / "job_status.py", ('"FailedRuns"', '"JobType"')),
        (INFRA_DIR.parent / "assets" / "ingest.py", ('"RefusedRecords"',)),
    ):
        source = emitter.read_text()
        assert all(n in source for n in needles), emitter
    monitoring = dev.template("monitoring")
    monitoring.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "oncall@example.com"}
    )
    monitoring.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    monitoring.resource_count_is("AWS::CloudWatch::Dashboard", 1)


def test_prod_differs_where_it_should(prod: Synth) -> None:
    assert all(stack.termination_protection for stack in prod.stacks.all())
    (nat,) = [prod.resources("AWS::EC2::NatGateway")]
    assert len(nat) == 2  # one per AZ
    for alb in prod.resources("AWS::ElasticLoadBalancingV2::LoadBalancer").values():  # internal, and the UI's
        assert {"Key": "deletion_protection.enabled", "Value": "true"} in alb["Properties"][
            "LoadBalancerAttributes"
        ]
    # Two webservers: a task replaced or lost leaves the UI and the API's GraphQL up.
    services = {
        s["Properties"]["ServiceName"]: s["Properties"] for s in prod.resources("AWS::ECS::Service").values()
    }
    assert services["canonical-prod-dagster-webserver"]["DesiredCount"] == 2
    assert services["canonical-prod-dagster-daemon"]["DesiredCount"] == 1


# -- db-setup during deployment -----------------------------------------------------------------------


def test_db_setup_runs_during_deploy_before_the_services(dev: Synth) -> None:
    template = dev.templates["orchestration"]["Resources"]
    (trigger_id,) = [k for k, r in template.items() if r["Type"] == "Custom::Trigger"]
    setup_td = next(
        k
        for k, r in template.items()
        if r["Type"] == "AWS::ECS::TaskDefinition"
        and r["Properties"]["ContainerDefinitions"][0]["Name"] == "db-setup"
    )
    assert setup_td in template[trigger_id]["DependsOn"]
    for service in dev.resources("AWS::ECS::Service").values():
        assert trigger_id in service["DependsOn"]
    (fn,) = [
        r
        for r in template.values()
        if r["Type"] == "AWS::Lambda::Function"
        and "TASK_DEFINITION" in r["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert fn["Properties"]["Environment"]["Variables"]["TASK_DEFINITION"] == {"Ref": setup_td}


class _FakeEcs:
    def __init__(self, exit_code: int) -> None:
        self.exit_code, self.calls = exit_code, []

    def run_task(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {
            "tasks": [{"taskArn": "arn:aws:ecs:eu-west-1:111111111111:task/canonical-dev-dagster/abc"}],
            "failures": [],
        }

    def get_waiter(self, name: str) -> Any:
        assert name == "tasks_stopped"
        return type("Waiter", (), {"wait": lambda self, **kw: None})()

    def describe_tasks(self, **kwargs: Any) -> dict[str, Any]:
        return {
            "tasks": [
                {"containers": [{"exitCode": self.exit_code}], "stoppedReason": "Essential container exited"}
            ]
        }


@pytest.mark.parametrize("exit_code", [0, 1])
def test_db_setup_trigger_code(monkeypatch: pytest.MonkeyPatch, exit_code: int) -> None:
    import boto3
    from canonical_infra import db_setup_trigger

    ecs = _FakeEcs(exit_code)
    monkeypatch.setattr(boto3, "client", lambda service: ecs)
    for name, value in {
        "CLUSTER": "canonical-dev-dagster",
        "TASK_DEFINITION": "arn:td",
        "SUBNETS": "s-1,s-2",
        "SECURITY_GROUP": "sg-1",
    }.items():
        monkeypatch.setenv(name, value)
    if exit_code:
        with pytest.raises(RuntimeError, match=r"db-setup failed .* db-setup/db-setup/abc"):
            db_setup_trigger.handler({}, None)
    else:
        assert db_setup_trigger.handler({}, None)["taskArn"].endswith("/abc")
    network = ecs.calls[0]["networkConfiguration"]["awsvpcConfiguration"]
    assert network == {"subnets": ["s-1", "s-2"], "securityGroups": ["sg-1"], "assignPublicIp": "DISABLED"}


def test_old_clients_deployment_serves_the_prod_stage_and_reads_without_a_key(
    prod: Synth, dev: Synth
) -> None:
    """The old API's clients call .../prod/analytics with no key: the stage name and keyless reads are
    configuration (keys stay the default: dev), and the app then grants a keyless caller `read` only."""
    prod.template("api").has_resource_properties("AWS::ApiGateway::Stage", {"StageName": "prod"})
    methods = [m["Properties"] for m in prod.resources("AWS::ApiGateway::Method", "api").values()]
    keyless = [m for m in methods if m["HttpMethod"] != "OPTIONS" and not m.get("ApiKeyRequired")]
    assert {m["HttpMethod"] for m in keyless} == {"GET", "POST"}
    assert len([m for m in keyless if m["HttpMethod"] == "POST"]) == 1  # POST /analytics, validated
    assert all(m["ApiKeyRequired"] for m in methods if m["HttpMethod"] in ("ANY", "DELETE"))
    env = _api_env(prod)
    assert env["API_ANONYMOUS_SCOPES"] == "read"
    assert "API_ANONYMOUS_SCOPES" not in _api_env(dev)


def test_cors_defaults_to_any_origin_as_the_old_api_did(prod: Synth) -> None:
    assert _api_env(prod)["API_CORS_ORIGINS"] == "*"
    preflights = [
        m["Properties"]
        for m in prod.resources("AWS::ApiGateway::Method", "api").values()
        if m["Properties"]["HttpMethod"] == "OPTIONS"
    ]
    assert preflights and all("'*'" in json.dumps(m["Integration"]) for m in preflights)


def _api_env(synth: Synth) -> dict[str, Any]:
    [fn] = [
        f["Properties"]
        for f in synth.resources("AWS::Lambda::Function", "api").values()
        if "Environment" in f["Properties"]
        and "API_KEYS_SECRET_ARN" in f["Properties"]["Environment"]["Variables"]
    ]
    return fn["Environment"]["Variables"]


def test_reserved_concurrency_only_when_configured(prod: Synth) -> None:
    (fn,) = [f for f in prod.resources("AWS::Lambda::Function", "api").values()]
    assert fn["Properties"]["ReservedConcurrentExecutions"] == 50


def test_every_container_that_launches_runs_names_one_run_task_revision(deployment: Synth) -> None:
    """A family name resolves to one revision per launcher process; a run-size change deregisters it and every
    RunTask fails until the launcher restarts. An ARN changes the launcher's own task definition instead."""
    [run_task] = [
        k
        for k, r in deployment.resources("AWS::ECS::TaskDefinition", "orchestration").items()
        if r["Properties"]["Family"].endswith("dagster-run")
    ]
    launchers = 0
    for task in deployment.resources("AWS::ECS::TaskDefinition", "orchestration").values():
        for container in task["Properties"]["ContainerDefinitions"]:
            env = {e["Name"]: e["Value"] for e in container.get("Environment", [])}
            if container["Name"] in ("daemon", "webserver"):
                launchers += 1
                assert env["DAGSTER_RUN_TASK_DEFINITION"] == {"Ref": run_task}, container["Name"]
    assert launchers == 2


def test_the_db_setup_trigger_runs_again_whenever_the_image_changes(tmp_path_factory, lambda_asset) -> None:
    """The trigger re-executes when its function's version changes; the image's identity in its environment
    makes every new image a new version (a task definition ARN token would be the same string)."""
    from tests.infra.infra_synth import ALERT_EMAIL, synthesize

    versions = []
    for image in (
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/dagster:v1",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/dagster:v2",
    ):
        synth = synthesize(
            tmp_path_factory.mktemp("cdk-image"),
            env="dev",
            lambdaAsset=lambda_asset,
            alertEmail=ALERT_EMAIL,
            dagsterImage=image,
        )
        [trigger] = [r for r in synth.resources("Custom::Trigger", "orchestration").values()]
        [fn] = [
            f
            for f in synth.resources("AWS::Lambda::Function", "orchestration").values()
            if "TASK_DEFINITION" in f["Properties"].get("Environment", {}).get("Variables", {})
        ]
        assert fn["Properties"]["Environment"]["Variables"]["IMAGE"] == image
        versions.append(json.dumps(trigger["Properties"]["HandlerArn"]))
    assert versions[0] != versions[1]


def test_every_alarm_expression_over_sparse_metrics_fills_gaps(deployment: Synth) -> None:
    """A sum of two sparse series has no data point while either is empty, so the alarm would never fire
    for one job type alone: every metric an expression reads is wrapped in FILL(…, 0)."""
    expressions = 0
    for alarm in deployment.resources("AWS::CloudWatch::Alarm").values():
        metrics = alarm["Properties"].get("Metrics") or []
        ids = [m["Id"] for m in metrics if "MetricStat" in m]
        for m in metrics:
            if "Expression" in m:
                expressions += 1
                for metric_id in ids:
                    assert f"FILL({metric_id}, 0)" in m["Expression"], (m["Expression"], metric_id)
    assert expressions >= 2


def test_job_notices_reach_the_configured_email_subscribers(dev: Synth, prod: Synth) -> None:
    from tests.infra.infra_synth import JOB_NOTICE_EMAIL

    subs = [r["Properties"] for r in dev.resources("AWS::SNS::Subscription", "data").values()]
    [topic] = [k for k, r in dev.resources("AWS::SNS::Topic", "data").items() if "JobNotices" in k]
    assert {"Protocol": "email", "Endpoint": JOB_NOTICE_EMAIL, "TopicArn": {"Ref": topic}} in [
        {k: s[k] for k in ("Protocol", "Endpoint", "TopicArn")} for s in subs
    ]
    assert not list(prod.resources("AWS::SNS::Subscription", "data"))  # none unless configured


def test_run_links_use_the_public_dagster_url_when_set(dev: Synth, prod: Synth) -> None:
    from tests.infra.infra_synth import DAGSTER_PUBLIC_URL

    for name, container in _containers(prod).items():
        env = {e["Name"]: e["Value"] for e in container["Environment"]}
        assert env["DAGSTER_PUBLIC_URL"] == DAGSTER_PUBLIC_URL, name
    assert _api_env(prod)["DAGSTER_PUBLIC_URL"] == DAGSTER_PUBLIC_URL
    assert "Fn::Join" in json.dumps(
        _api_env(prod)["DAGSTER_URL"]
    )  # GraphQL stays on the internal load balancer
    dev_env = {e["Name"]: e["Value"] for e in _containers(dev)["daemon"]["Environment"]}
    assert "DAGSTER_PUBLIC_URL" not in dev_env and "Fn::Join" in json.dumps(dev_env["DAGSTER_URL"])


def test_the_daemon_is_health_checked_by_its_liveness_check(deployment: Synth) -> None:
    daemon = _containers(deployment)["daemon"]
    assert daemon["HealthCheck"]["Command"] == ["CMD-SHELL", "dagster-daemon liveness-check"]
    assert daemon["HealthCheck"]["StartPeriod"] >= 120


# -- the code location, the lean profile ------------------------------------------------------------


def test_user_code_runs_in_its_own_code_location_service(
    deployment: Synth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As Dagster's deploy_ecs: the webserver and daemon load the workspace of infra/workspace.yaml, which
    names only the code server (gRPC, by its discovery name), so a code deploy replaces that one service
    and the daemon keeps ticking; the code server starts the same definitions `make dev` loads."""
    import yaml
    from dagster._core.workspace.config_schema import ensure_workspace_config

    from tests.infra.infra_synth import INFRA_DIR

    workspace_file = INFRA_DIR / "workspace.yaml"
    workspace = yaml.safe_load(workspace_file.read_text())
    for e in _containers(deployment)["daemon"]["Environment"]:  # what the daemon and webserver get
        if isinstance(e["Value"], str):
            monkeypatch.setenv(e["Name"], e["Value"])
    ensure_workspace_config(workspace, str(workspace_file))  # Dagster's own schema, variables resolved
    (entry,) = workspace["load_from"]
    server = entry["grpc_server"]
    assert server["host"] == {"env": "DAGSTER_CODE_SERVER_HOST"} and server["port"] == {
        "env": "DAGSTER_CODE_SERVER_PORT"
    }
    local = yaml.safe_load((INFRA_DIR.parent / "workspace.yaml").read_text())["load_from"][0]["python_module"]
    assert server["location_name"] == local["location_name"]  # one location name, locally and on ECS

    containers = _containers(deployment)
    env_name = deployment.config.env_name
    for name in ("daemon", "webserver"):
        command = containers[name]["Command"]
        assert command[command.index("-w") + 1] == "/app/infra/workspace.yaml", name
        env = {e["Name"]: e["Value"] for e in containers[name]["Environment"]}
        assert env["DAGSTER_CODE_SERVER_HOST"] == f"code.{env_name}.canonical.internal"
        assert env["DAGSTER_CODE_SERVER_PORT"] == "4000"
    code = containers["code"]
    assert code["Command"][:3] == ["dagster", "api", "grpc"]
    assert code["Command"][code["Command"].index("-m") + 1] == local["module_name"]
    assert code["Command"][code["Command"].index("--location-name") + 1] == local["location_name"]
    assert code["HealthCheck"]["Command"] == ["CMD-SHELL", "dagster api grpc-health-check -p 4000"]
    assert code["PortMappings"] == [{"ContainerPort": 4000, "Protocol": "tcp"}]

    services = {
        s["Properties"]["ServiceName"]: s["Properties"]
        for s in deployment.resources("AWS::ECS::Service").values()
    }
    code_service = services[f"canonical-{env_name}-dagster-code"]
    assert code_service["ServiceRegistries"]  # code.<namespace> in Cloud Map
    # The new server is up before the old one stops: the location is never missing.
    deployment_config = code_service["DeploymentConfiguration"]
    assert (deployment_config["MinimumHealthyPercent"], deployment_config["MaximumPercent"]) == (100, 200)
    (namespace,) = deployment.resources("AWS::ServiceDiscovery::PrivateDnsNamespace").values()
    assert namespace["Properties"]["Name"] == f"{env_name}.canonical.internal"


def test_dev_lean_profile_drops_the_idle_costs(lean: Synth, dev: Synth) -> None:
    """dev-lean (infra/README.md, "Monthly cost"): a NAT instance instead of a NAT gateway, Fargate Spot,
    the smallest sizes, and no internal load balancer: the API calls the webserver by its discovery name."""
    assert not lean.resources("AWS::EC2::NatGateway") and len(dev.resources("AWS::EC2::NatGateway")) == 1
    (nat,) = lean.resources("AWS::EC2::Instance").values()
    assert nat["Properties"]["InstanceType"] == "t4g.nano" and nat["Properties"]["SourceDestCheck"] is False
    schemes = [
        lb["Properties"]["Scheme"]
        for lb in lean.resources("AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    ]
    assert schemes == ["internet-facing"]  # the authenticated UI's (uiAuth=oidc), nothing internal
    (fn,) = lean.resources("AWS::Lambda::Function", "api").values()
    assert (
        fn["Properties"]["Environment"]["Variables"]["DAGSTER_URL"]
        == "http://webserver.dev.canonical.internal:3000"
    )
    for service in lean.resources("AWS::ECS::Service").values():
        assert service["Properties"]["CapacityProviderStrategy"] == [
            {"CapacityProvider": "FARGATE_SPOT", "Weight": 1}
        ]
        assert "LaunchType" not in service["Properties"]
    webserver = next(
        s["Properties"]
        for s in lean.resources("AWS::ECS::Service").values()
        if s["Properties"]["ServiceName"] == "canonical-dev-dagster-webserver"
    )
    assert webserver["ServiceRegistries"]
    (db,) = lean.resources("AWS::RDS::DBInstance").values()
    assert db["Properties"]["DBInstanceClass"] == "db.t4g.micro"
    sizes = {
        td["Properties"]["Family"]: td["Properties"]["Cpu"]
        for td in lean.resources("AWS::ECS::TaskDefinition").values()
    }
    assert sizes["canonical-dev-dagster-webserver"] == sizes["canonical-dev-dagster-daemon"] == "256"
    # Run links name the authenticated UI when no dagsterPublicUrl is given.
    env = {e["Name"]: e["Value"] for e in _containers(lean)["code"]["Environment"]}
    assert env["DAGSTER_PUBLIC_URL"] == "https://dagster.dev.example.com"


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"env": "prod", "profile": "dev-lean"}, "not for prod"),
        ({"profile": "cheap"}, "must be one of standard, dev-lean"),
        ({"uiAuth": "cognito"}, "needs uiDomainName, uiCertificateArn"),
        (
            {
                "uiAuth": "oidc",
                "uiDomainName": "d.example.com",
                "uiCertificateArn": "arn:aws:acm:eu-west-1:111111111111:certificate/x",
            },
            "needs uiOidcIssuer",
        ),
        (
            {"uiAuth": "cognito", "uiDomainName": "d.example.com", "uiCertificateArn": "my-cert"},
            "ACM certificate ARN",
        ),
        ({"uiAuth": "basic"}, "must be one of none, cognito, oidc"),
    ],
)
def test_deployment_choices_are_checked_before_synthesis(context: dict[str, Any], message: str) -> None:
    from canonical_infra.config import Config, ConfigError

    class Node:
        def try_get_context(self, key: str) -> Any:
            return context.get(key)

    with pytest.raises(ConfigError, match=message):
        Config.from_context(Node())


def test_the_code_server_command_serves_the_workspace_the_daemon_loads(dev: Synth, tmp_path: Path) -> None:
    """The code container's command, run here as ECS would (on a free local port): its health check answers
    and the daemon's workspace (infra/workspace.yaml, variables as the daemon gets them) loads every
    definition from it over gRPC."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from pipeline_defs.devstack.processes import free_port, stop_group
    from tests.infra.infra_synth import INFRA_DIR

    port = str(free_port())
    containers = _containers(dev)
    command = [
        port if part == "4000" else "127.0.0.1" if part == "0.0.0.0" else part
        for part in containers["code"]["Command"]
    ]
    health = containers["code"]["HealthCheck"]["Command"][1].replace("4000", port)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    log = tmp_path / "code.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            command,
            cwd=INFRA_DIR.parent,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while subprocess.run(health, shell=True, env=env, capture_output=True, check=False).returncode != 0:
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        daemon_env = {
            e["Name"]: e["Value"] for e in containers["daemon"]["Environment"] if isinstance(e["Value"], str)
        }
        daemon_env |= {"DAGSTER_CODE_SERVER_HOST": "127.0.0.1", "DAGSTER_CODE_SERVER_PORT": port}
        validated = subprocess.run(
            [str(bin_dir / "dagster"), "definitions", "validate", "-w", str(INFRA_DIR / "workspace.yaml")],
            cwd=tmp_path,
            env={**env, **daemon_env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert validated.returncode == 0, validated.stdout + validated.stderr
        assert (
            "Validation successful for code location canonical_pipeline"
            in validated.stdout + validated.stderr
        )
    finally:
        stop_group(server, signal.SIGTERM, timeout=10)


def test_the_services_restart_after_a_secret_they_hold_rotates(dev: Synth) -> None:
    """ECS injects secrets at task start and multi-user rotation keeps old credentials valid for one more
    period only: every successful rotation of the writer or dagster secret starts fresh service tasks."""
    resources = dev.templates["orchestration"]["Resources"]
    (rule,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Events::Rule"]
    pattern = rule["EventPattern"]
    assert pattern["detail"]["eventName"] == ["RotationSucceeded"]
    secrets = {json.dumps(s) for s in pattern["detail"]["additionalEventData"]["SecretId"]}
    injected = {
        json.dumps(s["ValueFrom"])
        for name, c in _containers(dev).items()
        if name in ("code", "daemon", "webserver")
        for s in c["Secrets"]
    }
    assert secrets == injected and len(secrets) == 2
    (target,) = rule["Targets"]
    function_id = target["Arn"]["Fn::GetAtt"][0]
    env = resources[function_id]["Properties"]["Environment"]["Variables"]
    services = {s["Properties"]["ServiceName"] for s in dev.resources("AWS::ECS::Service").values()}
    assert set(env["SERVICES"].split(",")) == services and env["CLUSTER"] == "canonical-dev-dagster"
    role = resources[function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    (policy,) = [
        p["Properties"]
        for p in resources.values()
        if p["Type"] == "AWS::IAM::Policy" and {"Ref": role} in p["Properties"]["Roles"]
    ]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == "ecs:UpdateService" and len(statement["Resource"]) == 3


def test_restart_on_rotation_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("CLUSTER", "canonical-dev-dagster")
    monkeypatch.setenv("SERVICES", "canonical-dev-dagster-code,canonical-dev-dagster-daemon")
    from canonical_infra import restart_on_rotation

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(
        restart_on_rotation, "ecs", type("Ecs", (), {"update_service": lambda self, **kw: calls.append(kw)})()
    )
    event = {
        "detail": {"eventName": "RotationSucceeded", "additionalEventData": {"SecretId": "arn:...:writer"}}
    }
    assert restart_on_rotation.handler(event, None) == {
        "restarted": ["canonical-dev-dagster-code", "canonical-dev-dagster-daemon"]
    }
    assert calls == [
        {"cluster": "canonical-dev-dagster", "service": s, "forceNewDeployment": True}
        for s in ("canonical-dev-dagster-code", "canonical-dev-dagster-daemon")
    ]


def test_on_aws_a_new_file_is_taken_at_once_and_its_run_dequeued_within_a_second(dev: Synth) -> None:
    """The freshness levers of `make dev` (bench/latency_results.md) hold on ECS too: the ingest queue
    long-polls (the landing sensor's first receive names no wait of its own) for less than the daemon's
    5 s loop, and the run queue is looked at every second."""
    import yaml

    (queue,) = [
        q["Properties"]
        for q in dev.resources("AWS::SQS::Queue", "data").values()
        if q["Properties"]["QueueName"] == "canonical-dev-raw-events"
    ]
    assert 1 <= queue["ReceiveMessageWaitTimeSeconds"] < 5
    instance = yaml.safe_load((INFRA_DIR / "dagster.yaml").read_text())
    assert instance["run_coordinator"]["config"]["dequeue_interval_seconds"] == 1


def test_the_oidc_issuer_is_kept_exactly_as_given() -> None:
    """The ALB compares the issuer with the ID token's `iss` claim: Auth0-style issuers end in a slash."""
    from canonical_infra.config import Config

    context = {
        "uiAuth": "oidc",
        "uiDomainName": "d.example.com",
        "uiCertificateArn": "arn:aws:acm:eu-west-1:111111111111:certificate/x",
        "uiOidcIssuer": "https://tenant.auth0.com/",
        "uiOidcAuthorizationEndpoint": "https://tenant.auth0.com/authorize",
        "uiOidcTokenEndpoint": "https://tenant.auth0.com/oauth/token",
        "uiOidcUserInfoEndpoint": "https://tenant.auth0.com/userinfo",
        "uiOidcClientId": "c",
        "uiOidcClientSecretName": "s",
        "dagsterPublicUrl": "https://dagster.example.com/",
    }

    class Node:
        def try_get_context(self, key: str) -> Any:
            return context.get(key)

    config = Config.from_context(Node())
    assert config.ui_oidc_issuer == "https://tenant.auth0.com/"
    assert config.dagster_public_url == "https://dagster.example.com"  # a base: its slash goes
