"""Network: the VPC, its flow log, and the security groups of the compute (Dagster, the API Lambda).

Subnets: public (only the NAT gateways live there), private with egress (Fargate tasks, the API
Lambda, RDS Proxy, secret rotation), isolated (RDS, no route out at all). Nothing accepts traffic
from outside the VPC: each ingress rule names the security group it comes from. The database's own
groups (instance, proxy, rotation) are in the data stack, beside the database, and admit the groups
defined here.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from canonical_infra.common import lint_ignore, log_group, suppress
from canonical_infra.config import Config

POSTGRES_PORT = 5432
DAGSTER_WEBSERVER_PORT = 3000
DAGSTER_ALB_PORT = 80
DAGSTER_CODE_SERVER_PORT = 4000
HTTPS_PORT = 443


@dataclass(frozen=True)
class SecurityGroups:
    dagster_alb: ec2.SecurityGroup  # internal load balancer in front of the Dagster webserver
    dagster_webserver: ec2.SecurityGroup
    dagster_tasks: ec2.SecurityGroup  # the daemon, every run task, the db-setup task
    dagster_code: ec2.SecurityGroup  # the code-location server: sensors, schedules, the definitions
    api_lambda: ec2.SecurityGroup
    dagster_ui: ec2.SecurityGroup | None  # the internet-facing, authenticating load balancer (uiAuth)


class NetworkStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: Config, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)

        nat_instance = None
        if config.nat_provider == "instance":
            # dev-lean: one NAT instance (t4g.nano, about $7 a month with its address) instead of a NAT
            # gateway (about $37). Its group admits HTTPS from the VPC and forwards HTTPS only: HTTPS
            # to AWS's endpoints is all that leaves the private subnets (see `sg` below).
            nat_instance = ec2.NatProvider.instance_v2(
                instance_type=ec2.InstanceType("t4g.nano"),
                default_allowed_traffic=ec2.NatTrafficDirection.NONE,
                associate_public_ip_address=True,
            )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(config.vpc_cidr),
            max_azs=2,
            nat_gateways=1 if nat_instance else config.nat_gateways,
            nat_gateway_provider=nat_instance,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name="app", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22
                ),
                ec2.SubnetConfiguration(
                    name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
                ),
            ],
            # S3 and DynamoDB traffic stays on the AWS network and off the NAT bill.
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
                "DynamoDB": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.DYNAMODB),
            },
        )
        # cfn-lint W3010 (hard-coded AZs): CDK pins the AZs it looked up (cdk.context.json) on purpose,
        # so the subnets never move. W3005 (redundant DependsOn): CDK's provider for the default-SG lockdown.
        for subnet in self.vpc.public_subnets + self.vpc.private_subnets + self.vpc.isolated_subnets:
            lint_ignore(subnet, "W3010")
        provider = self.node.try_find_child("Custom::VpcRestrictDefaultSGCustomResourceProvider")
        if provider is not None:
            lint_ignore(provider.node.find_child("Handler"), "W3005")
        if nat_instance is not None:
            self._secure_nat_instance(nat_instance, config)
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(log_group(self, "FlowLogGroup", config)),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )

        def sg(id: str, description: str) -> ec2.SecurityGroup:
            # No blanket egress: each group may open HTTPS to AWS's public endpoints (through the NAT
            # gateway: ECR, S3, DynamoDB, SQS, SNS, CloudWatch, Secrets Manager) and the ports of the
            # groups it talks to, named below and in the data stack. DNS (the VPC resolver) is not
            # subject to security groups.
            return ec2.SecurityGroup(
                self, id, vpc=self.vpc, description=description, allow_all_outbound=False
            )

        groups = SecurityGroups(
            dagster_alb=sg("DagsterAlbSg", "Internal ALB of the Dagster webserver: from the API Lambda only"),
            dagster_webserver=sg("DagsterWebserverSg", "Dagster webserver: from its load balancer only"),
            dagster_tasks=sg("DagsterTasksSg", "Dagster daemon, run tasks and db-setup: no ingress"),
            dagster_code=sg(
                "DagsterCodeSg", "Dagster code-location server: from the daemon and webserver only"
            ),
            api_lambda=sg("ApiLambdaSg", "REST API Lambda: no ingress"),
            dagster_ui=(
                sg("DagsterUiSg", "Internet-facing ALB of the Dagster UI: HTTPS, authenticated")
                if config.ui_auth != "none"
                else None
            ),
        )
        for group in (groups.dagster_webserver, groups.dagster_tasks, groups.dagster_code, groups.api_lambda):
            group.add_egress_rule(
                ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS_PORT), "AWS APIs and ECR over HTTPS"
            )
        # connections.allow_from opens the ingress on the target and the matching egress on the source.
        webserver = ec2.Port.tcp(DAGSTER_WEBSERVER_PORT)
        if config.internal_alb:
            groups.dagster_alb.connections.allow_from(
                groups.api_lambda, ec2.Port.tcp(DAGSTER_ALB_PORT), "API Lambda: Dagster GraphQL"
            )
            groups.dagster_webserver.connections.allow_from(groups.dagster_alb, webserver, "Internal ALB")
        else:  # dev-lean: the API calls the webserver by its service-discovery name
            groups.dagster_webserver.connections.allow_from(
                groups.api_lambda, webserver, "API Lambda: Dagster GraphQL"
            )
        code = ec2.Port.tcp(DAGSTER_CODE_SERVER_PORT)
        groups.dagster_code.connections.allow_from(
            groups.dagster_tasks, code, "Dagster daemon: sensors, schedules"
        )
        groups.dagster_code.connections.allow_from(
            groups.dagster_webserver, code, "Dagster webserver: definitions"
        )
        if groups.dagster_ui is not None:
            for cidr in config.ui_allowed_cidrs:
                groups.dagster_ui.add_ingress_rule(
                    ec2.Peer.ipv4(cidr),
                    ec2.Port.tcp(HTTPS_PORT),
                    "People opening the Dagster UI (authenticated by the ALB)",
                )
            # Authentication calls the identity provider's token and user-info endpoints over HTTPS.
            groups.dagster_ui.add_egress_rule(
                ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS_PORT), "Identity provider"
            )
            groups.dagster_webserver.connections.allow_from(groups.dagster_ui, webserver, "UI load balancer")
        # Without uiAuth, operators reach the UI through ECS Exec port forwarding (README): no ingress rule.
        self.security_groups = groups

    def _secure_nat_instance(self, provider: ec2.NatInstanceProviderV2, config: Config) -> None:
        group = provider.security_group
        group.add_ingress_rule(ec2.Peer.ipv4(config.vpc_cidr), ec2.Port.tcp(HTTPS_PORT), "HTTPS from the VPC")
        group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS_PORT), "HTTPS to AWS's endpoints")
        for instance in provider.gateway_instances:
            lint_ignore(instance, "W3010")  # in the public subnet of the AZ CDK pinned (as the subnets above)
            suppress(instance, "EC28", "dev-lean's NAT instance: basic monitoring is enough for a dev NAT.")
            suppress(
                instance,
                "EC26",
                "dev-lean's NAT instance: its root volume holds the OS image only; "
                "traffic is forwarded, never stored.",
            )
            suppress(
                instance,
                "EC29",
                "dev-lean's NAT instance is replaced by redeploying; no termination "
                "protection, so the stack can be destroyed.",
            )
