"""Security properties of the synthesized templates: network exposure, data at rest, IAM."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest

from tests.infra.infra_synth import Synth

pytestmark = pytest.mark.xdist_group("infra")

OPEN_CIDRS = {"0.0.0.0/0", "::/0"}


def _ingress_rules(synth: Synth) -> list[tuple[str, dict[str, Any]]]:
    """(group logical id, rule) for every ingress rule, inline or standalone, in every stack."""
    rules = []
    for sg_id, sg in synth.resources("AWS::EC2::SecurityGroup").items():
        rules += [(sg_id, rule) for rule in sg["Properties"].get("SecurityGroupIngress", [])]
    for rule in synth.resources("AWS::EC2::SecurityGroupIngress").values():
        group = rule["Properties"]["GroupId"]
        rules.append((json.dumps(group), rule["Properties"]))
    return rules


def _group_logical_id(ref: Any) -> str:
    """The logical id a GroupId/SourceSecurityGroupId points at (local GetAtt or cross-stack import)."""
    text = json.dumps(ref)
    match = re.search(r'"Fn::GetAtt": \["(\w+)"|ExportsOutputFnGetAtt(\w+?)GroupId', text)
    assert match, f"not a security-group reference: {text}"
    return match.group(1) or match.group(2)


# -- network ------------------------------------------------------------------------------------------


def test_nothing_is_open_to_the_internet(deployment: Synth) -> None:
    """Every rule admits a named security group, never an address range, with two exceptions, HTTPS only:
    the Dagster UI's load balancer (uiAuth: it authenticates every request) from the allowed ranges, and
    dev-lean's NAT instance from the VPC's own range."""
    config = deployment.config
    for group, rule in _ingress_rules(deployment):
        if "SourceSecurityGroupId" in rule:
            continue
        assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 443, 443), (group, rule)
        if group.startswith("DagsterUiSg"):
            assert config.ui_auth != "none" and rule["CidrIp"] in config.ui_allowed_cidrs, (group, rule)
        else:
            assert config.nat_provider == "instance" and rule["CidrIp"] == config.vpc_cidr, (group, rule)
    # Without uiAuth there is no such group, hence no address range at all.
    assert all("SourceSecurityGroupId" in rule for _, rule in _ingress_rules(deployment)) == (
        config.ui_auth == "none" and config.nat_provider == "gateway"
    )


def test_each_ingress_rule_appears_once(deployment: Synth) -> None:
    """EC2 refuses duplicate rules: CDK's own grants and ours must not overlap."""
    keys = Counter(
        (
            _group_logical_id(rule["GroupId"]) if "GroupId" in rule else group,
            _group_logical_id(rule["SourceSecurityGroupId"])
            if "SourceSecurityGroupId" in rule
            else rule["CidrIp"],
            json.dumps(rule["FromPort"]),
        )
        for group, rule in _ingress_rules(deployment)
    )
    assert [k for k, n in keys.items() if n > 1] == []


def test_who_reaches_the_database_and_the_dagster_webserver(dev: Synth) -> None:
    sources: dict[str, set[str]] = {}
    ports: dict[str, set[Any]] = {}
    for group, rule in _ingress_rules(dev):
        target = _group_logical_id(rule["GroupId"]) if "GroupId" in rule else group
        target = re.sub(r"[0-9A-F]{8}$", "", target)
        sources.setdefault(target, set()).add(
            re.sub(r"[0-9A-F]{8}$", "", _group_logical_id(rule["SourceSecurityGroupId"]))
        )
        ports.setdefault(target, set()).add(json.dumps(rule["FromPort"]))
    assert sources["DatabaseSg"] == {
        "ProxySg",
        "RotationSg",
        "DagsterTasksSg",
        "DagsterWebserverSg",
        "DagsterCodeSg",
    }
    assert sources["ProxySg"] == {"ApiLambdaSg"}
    assert sources["DagsterAlbSg"] == {"ApiLambdaSg"}
    assert sources["DagsterWebserverSg"] == {"DagsterAlbSg"}
    assert ports["DagsterWebserverSg"] == {"3000"} and ports["DagsterAlbSg"] == {"80"}
    # The code server answers the daemon and the webserver, on its gRPC port only.
    assert sources["DagsterCodeSg"] == {"DagsterTasksSg", "DagsterWebserverSg"} and ports[
        "DagsterCodeSg"
    ] == {"4000"}
    assert "DagsterTasksSg" not in sources and "ApiLambdaSg" not in sources  # nothing reaches them
    # The database group sends nothing out.
    (db_sg,) = [
        sg
        for sid, sg in dev.resources("AWS::EC2::SecurityGroup", "data").items()
        if sid.startswith("DatabaseSg")
    ]
    assert db_sg["Properties"]["SecurityGroupEgress"][0]["CidrIp"] == "255.255.255.255/32"


def test_dagster_load_balancer_for_the_api_is_internal(dev: Synth, prod: Synth) -> None:
    from aws_cdk.assertions import Match

    for synth in (dev, prod):
        synth.template("orchestration").has_resource_properties(
            "AWS::ElasticLoadBalancingV2::LoadBalancer",
            {
                "Scheme": "internal",
                "LoadBalancerAttributes": Match.array_with(
                    [{"Key": "access_logs.s3.enabled", "Value": "true"}]
                ),
            },
        )
    schemes = [
        lb["Properties"]["Scheme"]
        for lb in dev.resources("AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    ]
    assert schemes == ["internal"]  # without uiAuth nothing faces the internet


def _ui_listener(synth: Synth) -> dict[str, Any]:
    (ui_lb,) = [
        k
        for k, lb in synth.resources("AWS::ElasticLoadBalancingV2::LoadBalancer").items()
        if lb["Properties"]["Scheme"] == "internet-facing"
    ]
    (listener,) = [
        ls["Properties"]
        for ls in synth.resources("AWS::ElasticLoadBalancingV2::Listener").values()
        if ls["Properties"]["LoadBalancerArn"] == {"Ref": ui_lb}
    ]
    return listener


def test_the_dagster_ui_is_reached_only_through_a_sign_in(prod: Synth, lean: Synth) -> None:
    """uiAuth: an internet-facing load balancer whose only listener is HTTPS with the configured certificate,
    and whose default action signs the request in (Cognito in prod, OIDC in lean) before forwarding it."""
    from tests.infra.infra_synth import UI_CERTIFICATE_ARN

    for synth, kind in ((prod, "authenticate-cognito"), (lean, "authenticate-oidc")):
        listener = _ui_listener(synth)
        assert (listener["Protocol"], listener["Port"]) == ("HTTPS", 443)
        assert listener["Certificates"] == [{"CertificateArn": UI_CERTIFICATE_ARN}]
        actions = sorted(listener["DefaultActions"], key=lambda a: a["Order"])
        assert [a["Type"] for a in actions] == [kind, "forward"]
        assert listener["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    # The OIDC client secret is a dynamic reference resolved at deploy time, never a literal in the template.
    oidc = sorted(_ui_listener(lean)["DefaultActions"], key=lambda a: a["Order"])[0]["AuthenticateOidcConfig"]
    assert oidc["ClientSecret"] == "{{resolve:secretsmanager:canonical-dev-dagster-ui-oidc:SecretString:::}}"
    assert oidc["Issuer"] == "https://login.example.com" and oidc["ClientId"] == "dagster-ui"
    # Cognito: invited users only, with MFA.
    (pool,) = prod.resources("AWS::Cognito::UserPool").values()
    assert pool["Properties"]["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert pool["Properties"]["MfaConfiguration"] == "ON"
    (client,) = prod.resources("AWS::Cognito::UserPoolClient").values()
    assert client["Properties"]["GenerateSecret"] is True
    assert client["Properties"]["CallbackURLs"] == ["https://dagster.example.com/oauth2/idpresponse"]


def test_vpc_has_flow_logs_and_isolated_data_subnets(dev: Synth) -> None:
    network = dev.template("network")
    network.resource_count_is("AWS::EC2::FlowLog", 1)
    network.has_resource_properties("AWS::EC2::FlowLog", {"TrafficType": "ALL"})
    isolated = [
        sid
        for sid, subnet in dev.resources("AWS::EC2::Subnet", "network").items()
        if {"Key": "aws-cdk:subnet-type", "Value": "Isolated"} in subnet["Properties"]["Tags"]
    ]
    assert len(isolated) == 2 and all(s.startswith("Vpcdata") for s in isolated)
    # The isolated subnets' route tables have no route at all (no NAT, no internet gateway).
    routes = json.dumps(dev.resources("AWS::EC2::Route", "network"))
    assert "Vpcdata" not in routes


# -- data at rest -------------------------------------------------------------------------------------


def _buckets(synth: Synth) -> dict[str, dict[str, Any]]:
    return {
        re.sub(r"[0-9A-F]{8}$", "", k): v["Properties"] for k, v in synth.resources("AWS::S3::Bucket").items()
    }


def test_every_bucket_is_encrypted_private_and_tls_only(deployment: Synth) -> None:
    buckets = deployment.resources("AWS::S3::Bucket")
    assert len(buckets) == 3
    policies = deployment.resources("AWS::S3::BucketPolicy")
    for logical_id, bucket in buckets.items():
        props = bucket["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"], logical_id
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        # Prod keeps its buckets (a redeploy adopts them); a dev deployment's go with it (test_redeploy.py).
        assert bucket["DeletionPolicy"] == ("Retain" if deployment.config.is_prod else "Delete")
        (policy,) = [p for p in policies.values() if p["Properties"]["Bucket"] == {"Ref": logical_id}]
        assert {
            "Action": "s3:*",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }.items() <= next(
            s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s.get("Effect") == "Deny"
        ).items()


def test_raw_bucket_versioned_kms_lifecycle_and_logged(dev: Synth) -> None:
    raw = _buckets(dev)["RawBucket"]
    assert raw["BucketName"] == f"canonical-dev-raw-{dev.config.account}-{dev.config.region}"
    assert raw["VersioningConfiguration"] == {"Status": "Enabled"}
    sse = raw["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms" and sse["BucketKeyEnabled"]
    (rule,) = raw["LifecycleConfiguration"]["Rules"]
    assert [t["StorageClass"] for t in rule["Transitions"]] == ["STANDARD_IA", "GLACIER_IR"]
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    assert raw["LoggingConfiguration"]["LogFilePrefix"] == "s3-access/raw/"
    assert raw["CorsConfiguration"]["CorsRules"][0]["AllowedOrigins"] == ["https://dashboard.example.com"]


def test_results_expire_after_30_days(deployment: Synth) -> None:
    results = _buckets(deployment)["ResultsBucket"]
    (rule,) = results["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == 30 and rule["Status"] == "Enabled"
    sse = results["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert sse["SSEAlgorithm"] == "aws:kms"


def test_data_key_rotates(deployment: Synth) -> None:
    for key in deployment.resources("AWS::KMS::Key").values():
        assert key["Properties"]["EnableKeyRotation"] is True


def test_raw_bucket_events_reach_a_queue_with_a_dead_letter_queue(dev: Synth) -> None:
    from aws_cdk.assertions import Match

    data = dev.template("data")
    data.has_resource_properties(
        "Custom::S3BucketNotifications",
        {
            "NotificationConfiguration": {
                "QueueConfigurations": [
                    {
                        "Events": ["s3:ObjectCreated:*"],
                        "QueueArn": {"Fn::GetAtt": [Match.string_like_regexp("^IngestQueue"), "Arn"]},
                    },
                ]
            },
        },
    )
    data.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "QueueName": "canonical-dev-raw-events",
            "SqsManagedSseEnabled": True,
            "RedrivePolicy": {
                "deadLetterTargetArn": {
                    "Fn::GetAtt": [Match.string_like_regexp("^IngestDeadLetterQueue"), "Arn"]
                },
                "maxReceiveCount": 5,
            },
        },
    )
    data.has_resource_properties(
        "AWS::SQS::Queue",
        {"QueueName": "canonical-dev-raw-events-dlq", "MessageRetentionPeriod": 14 * 24 * 3600},
    )
    # Both queues refuse plain-HTTP access.
    for policy in dev.resources("AWS::SQS::QueuePolicy").values():
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
        )


def test_jobs_table(deployment: Synth) -> None:
    (table,) = deployment.resources("AWS::DynamoDB::Table").values()
    props = table["Properties"]
    assert props["KeySchema"] == [
        {"AttributeName": "PK", "KeyType": "HASH"},
        {"AttributeName": "SK", "KeyType": "RANGE"},
    ]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    if deployment.config.is_prod:
        assert props["DeletionProtectionEnabled"] is True and table["DeletionPolicy"] == "Retain"


def test_database(deployment: Synth) -> None:
    (db,) = deployment.resources("AWS::RDS::DBInstance").values()
    props = db["Properties"]
    assert props["Engine"] == "postgres" and props["EngineVersion"].split(".")[0] == "17"
    assert props["StorageEncrypted"] is True
    assert props["PubliclyAccessible"] is False
    assert props["BackupRetentionPeriod"] >= 7
    assert props["DeletionProtection"] is deployment.config.is_prod
    assert props["MultiAZ"] is deployment.config.is_prod
    assert db["DeletionPolicy"] == "Snapshot"
    # In the isolated subnets only.
    (group,) = deployment.resources("AWS::RDS::DBSubnetGroup").values()
    subnets = json.dumps(group["Properties"]["SubnetIds"])
    assert subnets.count("Vpcdata") == 2 and "Vpcapp" not in subnets and "Vpcpublic" not in subnets
    # TLS only.
    (params,) = deployment.resources("AWS::RDS::DBParameterGroup").values()
    assert params["Properties"]["Parameters"]["rds.force_ssl"] == "1"


def test_database_secrets_rotated_and_reader_has_its_own(deployment: Synth) -> None:
    every = deployment.resources("AWS::SecretsManager::Secret")
    # Generated credentials; the one other secret is the API's key → scopes map (no credential in it).
    secrets = {sid: s for sid, s in every.items() if "GenerateSecretString" in s["Properties"]}
    others = [sid for sid in every if sid not in secrets]
    assert len(others) == 1 and others[0] in deployment.resources("AWS::SecretsManager::Secret", "api")
    assert others[0].startswith("ApiKeys")
    users = {
        re.search(r'username\\":\\"(\w+)', json.dumps(s["Properties"]["GenerateSecretString"])).group(1): sid
        for sid, s in secrets.items()
    }
    assert set(users) == {"canonical_admin", "pipeline_writer", "pipeline_reader", "dagster"}
    # A schedule names the secret, or its attachment to the instance (which names the secret).
    attached = {
        aid: a["Properties"]["SecretId"]["Ref"]
        for aid, a in deployment.resources("AWS::SecretsManager::SecretTargetAttachment").items()
    }
    rotated = [
        r["Properties"]["SecretId"]["Ref"]
        for r in deployment.resources("AWS::SecretsManager::RotationSchedule").values()
    ]
    assert sorted(attached.get(ref, ref) for ref in rotated) == sorted(secrets)
    if deployment.config.is_prod:  # credentials outlive a prod stack, like its final snapshot
        assert {s["DeletionPolicy"] for s in secrets.values()} == {"Retain"}
    for schedule in deployment.resources("AWS::SecretsManager::RotationSchedule").values():
        assert schedule["Properties"]["RotationRules"]["ScheduleExpression"] == "rate(30 days)"


def test_proxy_for_the_lambda_requires_tls_and_iam_end_to_end(deployment: Synth) -> None:
    """No password on the API's path: a warm function cannot be locked out by a secret rotation."""
    [proxy] = deployment.resources("AWS::RDS::DBProxy", "data").values()
    props = proxy["Properties"]
    assert props["EngineFamily"] == "POSTGRESQL" and props["RequireTLS"] is True
    assert props["DefaultAuthScheme"] == "IAM_AUTH" and "Auth" not in props  # no secrets registered
    [db] = deployment.resources("AWS::RDS::DBInstance", "data").values()
    assert db["Properties"]["EnableIAMDatabaseAuthentication"] is True
    # The proxy's role connects to this instance as the API's two IAM roles, nothing else.
    [role_id] = [k for k in deployment.resources("AWS::IAM::Role", "data") if k.startswith("ProxyRole")]
    connects = [st for pid, st in _statements(deployment) if "rds-db:connect" in json.dumps(st["Action"])]
    proxy_side = [st for st in connects if "DbiResourceId" in json.dumps(st["Resource"])]
    assert proxy_side and all(
        p in json.dumps(proxy_side) for p in ("pipeline_writer_iam", "pipeline_reader_iam")
    )
    assert role_id


def test_the_api_connects_with_iam_tokens_scoped_to_the_proxy_and_reads_no_database_secret(
    deployment: Synth,
) -> None:
    (fn,) = deployment.resources("AWS::Lambda::Function", "api").values()
    env = fn["Properties"]["Environment"]["Variables"]
    assert env["DATABASE_IAM_AUTH"] == "true"
    assert (env["DATABASE_USER"], env["READONLY_DATABASE_USER"]) == (
        "pipeline_writer_iam",
        "pipeline_reader_iam",
    )
    assert not {"DATABASE_SECRET_ARN", "READONLY_DATABASE_SECRET_ARN"} & set(env)
    api_statements = [
        st
        for policy in deployment.resources("AWS::IAM::Policy", "api").values()
        for st in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    connect = [st for st in api_statements if st["Action"] == "rds-db:connect"]
    text = json.dumps(connect)
    # arn:aws:rds-db:<region>:<account>:dbuser:<proxy resource id, from the proxy's ARN>/<role>
    assert "dbuser:" in text and "DBProxyArn" in text and "pipeline_reader_iam" in text and "*" not in text
    reads = [st for st in api_statements if "secretsmanager:GetSecretValue" in json.dumps(st["Action"])]
    assert len(json.dumps(reads).split("Ref")) == 2  # one secret only: the API keys


# -- IAM ----------------------------------------------------------------------------------------------


def _statements(synth: Synth) -> list[tuple[str, dict[str, Any]]]:
    """(policy logical id, statement) of every identity policy in every stack."""
    found = []
    for pid, policy in synth.resources("AWS::IAM::Policy").items():
        found += [(pid, s) for s in policy["Properties"]["PolicyDocument"]["Statement"]]
    for rid, role in synth.resources("AWS::IAM::Role").items():
        for inline in role.get("Properties", {}).get("Policies", []):
            found += [(rid, s) for s in inline["PolicyDocument"]["Statement"]]
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


DATA_RESOURCE_MARKERS = (
    "s3:::canonical-",
    "JobsTable",
    "IngestQueue",
    "JobNotices",
    "DataKey",
    "RawBucket",
    "ResultsBucket",
    "LogsBucket",
)


def test_no_wildcard_actions(deployment: Synth) -> None:
    for policy, statement in _statements(deployment):
        actions = _as_list(statement.get("Action", []))
        assert not [a for a in actions if a == "*" or a.endswith(":*")], (policy, statement)
        if any(marker in json.dumps(statement.get("Resource")) for marker in DATA_RESOURCE_MARKERS):
            assert not [a for a in actions if "*" in a], (policy, statement)


def test_nothing_can_delete_buckets_tables_queues_or_keys(deployment: Synth) -> None:
    forbidden = re.compile(
        r"^(s3:Delete\w*|dynamodb:Delete\w*|sqs:DeleteQueue|sqs:PurgeQueue|sns:DeleteTopic|"
        r"kms:(ScheduleKeyDeletion|DisableKey)|rds:Delete\w*|secretsmanager:DeleteSecret)$"
    )
    for policy, statement in _statements(deployment):
        if statement["Effect"] == "Allow":
            assert not [a for a in _as_list(statement["Action"]) if forbidden.match(a)], (policy, statement)


def _role_actions(synth: Synth, role_prefix: str) -> dict[str, set[str]]:
    """Actions of a role's policy by statement id."""
    (policy,) = [
        p
        for pid, p in synth.resources("AWS::IAM::Policy", "orchestration").items()
        if pid.startswith(role_prefix)
    ]
    return {
        s.get("Sid", "?"): set(_as_list(s["Action"]))
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    }


def test_task_roles_hold_only_what_each_task_does(dev: Synth) -> None:
    run = _role_actions(dev, "RunTaskRole")
    assert run["ReadRawObjects"] == {"s3:GetObject"}
    assert run["WriteResults"] == {"s3:PutObject", "s3:GetObject"}
    assert run["PublishNotices"] == {"sns:Publish"}
    assert {"dynamodb:PutItem", "dynamodb:UpdateItem"} <= run["JobsTable"]
    assert "DrainIngestQueue" not in run and "StartRunTasks" not in run

    # Sensors and schedules are evaluated by the code server: it drains the queue and writes job items.
    code = _role_actions(dev, "CodeServerTaskRole")
    assert "sqs:ReceiveMessage" in code["DrainIngestQueue"] and {"dynamodb:PutItem"} <= code["JobsTable"]
    assert "StartRunTasks" not in code and "PassRunRoles" not in code

    # The daemon ticks and launches runs; it touches no data.
    daemon = _role_actions(dev, "DaemonTaskRole")
    assert daemon["StartRunTasks"] == {"ecs:RunTask"} and daemon["PassRunRoles"] == {"iam:PassRole"}
    assert not {"DrainIngestQueue", "ReadRawObjects", "WriteResults", "JobsTable", "PublishNotices"} & set(
        daemon
    )

    webserver = _role_actions(dev, "WebserverTaskRole")
    assert not {"ReadRawObjects", "WriteResults", "JobsTable", "StartRunTasks", "PassRunRoles"} & set(
        webserver
    )
    assert webserver["WatchRunTasks"] == {"ecs:DescribeTasks", "ecs:StopTask"}

    # db-setup needs no AWS API at all: its role has no policy.
    assert not [
        pid for pid in dev.resources("AWS::IAM::Policy", "orchestration") if pid.startswith("DbSetupTaskRole")
    ]


def test_run_launching_is_scoped_to_the_cluster_and_run_roles(dev: Synth) -> None:
    (policy,) = [
        p
        for pid, p in dev.resources("AWS::IAM::Policy", "orchestration").items()
        if pid.startswith("DaemonTaskRole")
    ]
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert statements["StartRunTasks"]["Resource"].endswith(":task-definition/canonical-dev-dagster-run:*")
    assert "ecs:cluster" in statements["StartRunTasks"]["Condition"]["ArnEquals"]
    assert statements["PassRunRoles"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }
    (code,) = [
        p
        for pid, p in dev.resources("AWS::IAM::Policy", "orchestration").items()
        if pid.startswith("CodeServerTaskRole")
    ]
    metrics = next(
        s for s in code["Properties"]["PolicyDocument"]["Statement"] if s["Sid"] == "PipelineMetrics"
    )
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "CanonicalPipeline"}}


def test_each_task_definition_has_its_own_execution_role_reading_only_its_own_secrets(
    deployment: Synth,
) -> None:
    """ECS injects database secrets through the execution role: shared, every task could read the master
    secret. One role per task definition, granted exactly the secrets its containers inject."""
    tasks = deployment.resources("AWS::ECS::TaskDefinition", "orchestration")
    roles = [json.dumps(t["Properties"]["ExecutionRoleArn"]) for t in tasks.values()]
    assert len(roles) == len(set(roles)) == 5
    [master] = {
        json.dumps(s["ValueFrom"])
        for t in tasks.values()
        for c in t["Properties"]["ContainerDefinitions"]
        for s in c.get("Secrets", [])
        if s["Name"] == "ADMIN_DATABASE_SECRET"
    }
    policies = deployment.resources("AWS::IAM::Policy", "orchestration")
    for task in tasks.values():
        role_ref = task["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0]
        injected = {
            json.dumps(s["ValueFrom"])
            for c in task["Properties"]["ContainerDefinitions"]
            for s in c.get("Secrets", [])
        }
        readable = set()
        for policy in policies.values():
            if {"Ref": role_ref} not in policy["Properties"]["Roles"]:
                continue
            for st in policy["Properties"]["PolicyDocument"]["Statement"]:
                if "secretsmanager:GetSecretValue" in json.dumps(st["Action"]):
                    resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                    readable |= {json.dumps(r) for r in resources}
        assert readable == injected, task["Properties"]["Family"]
        reads_master = master in readable
        assert reads_master == task["Properties"]["Family"].endswith("db-setup"), task["Properties"]["Family"]


def test_no_security_group_allows_all_egress(deployment: Synth) -> None:
    """Egress is HTTPS to AWS's endpoints or a named port to a named group; never everything."""
    for sid, group in deployment.resources("AWS::EC2::SecurityGroup").items():
        for rule in group["Properties"].get("SecurityGroupEgress", []):
            if rule.get("CidrIp") == "255.255.255.255/32":  # CDK's placeholder for "no egress"
                continue
            assert rule["IpProtocol"] == "tcp", (sid, rule)
            assert rule.get("CidrIp") != "0.0.0.0/0" or rule["FromPort"] == rule["ToPort"] == 443, (sid, rule)
    # dev-lean's NAT instance forwards HTTPS only, like every group behind it.
    for sid, group in deployment.resources("AWS::EC2::SecurityGroup", "network").items():
        if sid.startswith("VpcNatSecurityGroup"):
            assert [(r["FromPort"], r["CidrIp"]) for r in group["Properties"]["SecurityGroupEgress"]] == [
                (443, "0.0.0.0/0")
            ]
    targets = Counter()
    for rid, rule in deployment.resources("AWS::EC2::SecurityGroupEgress").items():
        props = rule["Properties"]
        assert props["IpProtocol"] == "tcp" and "DestinationSecurityGroupId" in props, (rid, props)
        targets[json.dumps([props["GroupId"], props["DestinationSecurityGroupId"]], sort_keys=True)] += 1
    # One rule per pair of groups (a port written once as a number and once as the instance's port
    # attribute would be the same rule twice at deploy time, which EC2 refuses).
    assert [t for t, n in targets.items() if n > 1] == []
