"""Small helpers every stack uses: log retention, removal policies, and cdk-nag acknowledgments."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Acknowledgment, CfnResource, RemovalPolicy, Stack, Validations
from aws_cdk import aws_logs as logs
from constructs import Construct

from canonical_infra.config import Config, ConfigError

# How cdk-nag names an AWS-managed policy in IAM4 findings.
MANAGED_POLICY_PREFIX = "arn:<AWS::Partition>:iam::aws:policy/service-role/"

_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
}


def retention(config: Config) -> logs.RetentionDays:
    try:
        return _RETENTION[config.log_retention_days]
    except KeyError:
        raise ConfigError(
            f"logRetentionDays must be one of {sorted(_RETENTION)}, got {config.log_retention_days}"
        ) from None


def log_group(scope: Construct, id: str, config: Config, name: str | None = None) -> logs.LogGroup:
    """A log group with the deployment's retention, kept in prod and dropped with a dev stack."""
    return logs.LogGroup(
        scope,
        id,
        log_group_name=name,
        retention=retention(config),
        removal_policy=RemovalPolicy.RETAIN if config.is_prod else RemovalPolicy.DESTROY,
    )


def s3_objects_arn(stack: Stack, bucket_name: str, pattern: str = "*") -> str:
    """The ARN of objects in a bucket named in config: a literal, so the IAM policies (and the cdk-nag
    findings that name them) read the same in every stack that grants access."""
    return f"arn:{stack.partition}:s3:::{bucket_name}/{pattern}"


def s3_bucket_arn(stack: Stack, bucket_name: str) -> str:
    return f"arn:{stack.partition}:s3:::{bucket_name}"


def data_removal_policy(config: Config) -> RemovalPolicy:
    """Data outlives a prod stack (its named resources are adopted by a redeploy: infra/adopt.py); a dev
    stack's data goes with it, so a destroyed dev deployment can be deployed again under the same names."""
    return RemovalPolicy.RETAIN if config.is_prod else RemovalPolicy.DESTROY


def suppress(construct: Construct, rule: str, reason: str, *, findings: Iterable[str] = ()) -> None:
    """Acknowledge one cdk-nag AwsSolutions rule on `construct` and everything under it, with its reason.

    Rules that report several findings per resource (IAM4, IAM5) are acknowledged finding by
    finding (`AwsSolutions-IAM5[Resource::*]`): a new wildcard elsewhere still fails the synth.
    """
    ids = [f"AwsSolutions-{rule}[{f}]" for f in findings] or [f"AwsSolutions-{rule}"]
    Validations.of(construct).acknowledge(*(Acknowledgment(id=i, reason=reason) for i in ids))


def lint_ignore(resource: Construct, *checks: str) -> None:
    """Tell cfn-lint to skip `checks` on this one resource (template Metadata), for warnings about
    template shapes CDK itself emits. Every call says which and why at its call site."""
    cfn = resource if isinstance(resource, CfnResource) else resource.node.default_child
    assert isinstance(cfn, CfnResource), f"{resource.node.path} has no CloudFormation resource"
    cfn.add_metadata("cfn-lint", {"config": {"ignore_checks": list(checks)}})
