"""The canonical-pipeline CDK app: five stacks split by lifecycle.

    network ─► data ─► orchestration ─► api ─► monitoring

`build_app(app)` adds them to an `App` (infra/app.py for the CLI, the tests in-process) with cdk-nag's
AwsSolutions checks applied to every construct.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import App, Environment, Stack, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from canonical_infra.api import ApiStack
from canonical_infra.config import Config, ConfigError
from canonical_infra.data import DataStack
from canonical_infra.monitoring import MonitoringStack
from canonical_infra.network import NetworkStack
from canonical_infra.orchestration import OrchestrationStack


@dataclass(frozen=True)
class Stacks:
    network: NetworkStack
    data: DataStack
    orchestration: OrchestrationStack
    api: ApiStack
    monitoring: MonitoringStack

    def all(self) -> list[Stack]:
        return [self.network, self.data, self.orchestration, self.api, self.monitoring]


def build_app(app: App, *, nag: bool = True) -> Stacks:
    config = Config.from_context(app.node)
    if not (config.account and config.region):
        raise ConfigError(
            "no target account/region: run the CDK CLI with AWS credentials (it sets CDK_DEFAULT_ACCOUNT and "
            "CDK_DEFAULT_REGION), or pass -c account=<12 digits> -c region=<region>"
        )
    env = Environment(account=config.account, region=config.region)
    prefix = config.stack_prefix
    common = {"env": env, "termination_protection": config.is_prod}

    network = NetworkStack(
        app,
        f"{prefix}-Network",
        config=config,
        description="canonical-pipeline: VPC and security groups",
        **common,
    )
    data = DataStack(
        app,
        f"{prefix}-Data",
        config=config,
        network=network,
        description="canonical-pipeline: RDS PostgreSQL, S3, SQS, DynamoDB, SNS, secrets",
        **common,
    )
    orchestration = OrchestrationStack(
        app,
        f"{prefix}-Orchestration",
        config=config,
        network=network,
        data=data,
        description="canonical-pipeline: Dagster on ECS Fargate",
        **common,
    )
    api = ApiStack(
        app,
        f"{prefix}-Api",
        config=config,
        network=network,
        data=data,
        orchestration=orchestration,
        description="canonical-pipeline: REST API (Lambda + API Gateway)",
        **common,
    )
    monitoring = MonitoringStack(
        app,
        f"{prefix}-Monitoring",
        config=config,
        data=data,
        orchestration=orchestration,
        api=api,
        description="canonical-pipeline: alerts, alarms, dashboard",
        **common,
    )
    stacks = Stacks(network, data, orchestration, api, monitoring)

    for stack in stacks.all():
        for key, value in {"project": "canonical-pipeline", "environment": config.env_name}.items():
            # CloudFormation's schema has no Tags on proxy target groups (CDK would render them).
            Tags.of(stack).add(key, value, exclude_resource_types=["AWS::RDS::DBProxyTargetGroup"])
    if nag:
        # Any finding not acknowledged (with its reason, next to the resource) fails the synth.
        # The acknowledgments are also written into the templates' Metadata as an audit trail.
        Validations.of(app).add_plugins(
            AwsSolutionsChecks(app, verbose=True, write_suppressions_to_cloud_formation=True)
        )
    return stacks
