"""Monitoring: the alerts topic (email from context), one alarm per way the platform can go wrong, and
one dashboard. Deployed last: it only reads the other stacks' metrics.

Two alarms watch custom metrics that the platform's code emits into the `CanonicalPipeline` namespace
(README), each with an `Environment` dimension (PIPELINE_ENV, so environments sharing an account keep
apart): `FailedRuns` also by `JobType` (sensors/job_status.py, one per failed Dagster run) and
`RefusedRecords` (ingest, records refused per file).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from canonical_infra.api import ApiStack
from canonical_infra.config import Config
from canonical_infra.data import DataStack
from canonical_infra.orchestration import OrchestrationStack

FIVE_MINUTES = Duration.minutes(5)
GIB = 1024**3
JOB_TYPES = ("analytics", "ingest")  # the JobType dimension of FailedRuns


def failed_runs(namespace: str, env: str, period: Duration = FIVE_MINUTES) -> cw.MathExpression:
    """Failed Dagster runs of every job type (the sensor emits one datum per failed run, so each series is
    sparse: FILL makes a missing one 0, or the sum would have no data point whenever either is empty)."""
    return cw.MathExpression(
        expression=" + ".join(f"FILL({t}, 0)" for t in JOB_TYPES),
        label="Failed runs",
        period=period,
        using_metrics={
            t: cw.Metric(
                namespace=namespace,
                metric_name="FailedRuns",
                statistic="Sum",
                period=period,
                dimensions_map={"Environment": env, "JobType": t},
            )
            for t in JOB_TYPES
        },
    )


def refused_records(namespace: str, env: str, period: Duration = FIVE_MINUTES) -> cw.Metric:
    return cw.Metric(
        namespace=namespace,
        metric_name="RefusedRecords",
        statistic="Sum",
        period=period,
        dimensions_map={"Environment": env},
    )


@dataclass(frozen=True)
class AlarmSpec:
    id: str
    description: str
    metric: cw.IMetric
    threshold: float
    comparison: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
    periods: int = 1
    missing: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING


class MonitoringStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: Config,
        data: DataStack,
        orchestration: OrchestrationStack,
        api: ApiStack,
        **kwargs,
    ) -> None:
        super().__init__(scope, id, **kwargs)

        # Alarm notifications are encrypted with a key CloudWatch may use (the AWS-managed SNS key
        # does not let CloudWatch publish).
        key = kms.Key(
            self,
            "AlertsKey",
            alias=f"alias/{config.name('alerts')}",
            enable_key_rotation=True,
            description="canonical-pipeline alert notifications",
            removal_policy=RemovalPolicy.DESTROY,
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        self.alerts_topic = sns.Topic(
            self,
            "Alerts",
            topic_name=config.name("alerts"),
            display_name="canonical-pipeline alerts",
            master_key=key,
            enforce_ssl=True,
        )
        if config.alert_email:
            self.alerts_topic.add_subscription(subscriptions.EmailSubscription(config.alert_email))

        fn, rest, db = api.function, api.api, data.database
        namespace = config.metrics_namespace

        def container_insights(service) -> cw.Metric:
            return cw.Metric(
                namespace="ECS/ContainerInsights",
                metric_name="RunningTaskCount",
                dimensions_map={
                    "ClusterName": orchestration.cluster.cluster_name,
                    "ServiceName": service.service_name,
                },
                statistic="Minimum",
                period=FIVE_MINUTES,
            )

        specs = [
            AlarmSpec(
                "ApiLambdaErrors",
                "REST API Lambda raised errors",
                fn.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
                5,
            ),
            AlarmSpec(
                "ApiLambdaThrottles",
                "REST API Lambda throttled (reserved concurrency reached)",
                fn.metric_throttles(period=FIVE_MINUTES, statistic="Sum"),
                1,
            ),
            AlarmSpec(
                "Api5xx",
                "API Gateway answered 5xx",
                rest.metric_server_error(period=FIVE_MINUTES, statistic="Sum"),
                5,
            ),
            AlarmSpec(
                "ApiLatencyP99",
                "API p99 latency above 10 s for 15 minutes",
                rest.metric_latency(period=FIVE_MINUTES, statistic="p99"),
                10_000,
                periods=3,
            ),
            AlarmSpec(
                "DbCpu",
                "RDS CPU above 80 % for 15 minutes",
                db.metric_cpu_utilization(period=FIVE_MINUTES),
                80,
                periods=3,
            ),
            AlarmSpec(
                "DbFreeStorage",
                "RDS free storage below 2 GiB",
                db.metric_free_storage_space(period=FIVE_MINUTES, statistic="Minimum"),
                2 * GIB,
                comparison=cw.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
            ),
            AlarmSpec(
                "DbConnections",
                f"RDS connections at or above {config.db_connections_alarm}",
                db.metric_database_connections(period=FIVE_MINUTES, statistic="Maximum"),
                config.db_connections_alarm,
                periods=2,
            ),
            AlarmSpec(
                "JobsTableThrottles",
                "DynamoDB jobs table throttled reads or writes",
                cw.MathExpression(
                    expression="FILL(r, 0) + FILL(w, 0)",
                    period=FIVE_MINUTES,
                    using_metrics={
                        "r": data.jobs_table.metric(
                            "ReadThrottleEvents", statistic="Sum", period=FIVE_MINUTES
                        ),
                        "w": data.jobs_table.metric(
                            "WriteThrottleEvents", statistic="Sum", period=FIVE_MINUTES
                        ),
                    },
                ),
                1,
            ),
            AlarmSpec(
                "IngestDlqDepth",
                "S3 event messages the landing sensor could not process (ingest DLQ)",
                data.ingest_dlq.metric_approximate_number_of_messages_visible(
                    period=FIVE_MINUTES, statistic="Maximum"
                ),
                1,
            ),
            AlarmSpec(
                "IngestQueueAge",
                "Raw-bucket events waiting over 15 minutes: is the daemon draining?",
                data.ingest_queue.metric_approximate_age_of_oldest_message(
                    period=FIVE_MINUTES, statistic="Maximum"
                ),
                900,
            ),
            AlarmSpec(
                "FailedDagsterRuns",
                "Dagster runs failed (emitted by the run-status sensor)",
                failed_runs(namespace, config.env_name),
                1,
            ),
            AlarmSpec(
                "RefusedRecords",
                f"{config.refused_records_alarm}+ records refused by ingest in an hour",
                refused_records(namespace, config.env_name, Duration.hours(1)),
                config.refused_records_alarm,
            ),
            AlarmSpec(
                "DaemonNotRunning",
                "No Dagster daemon task running: sensors, queue and retries stopped",
                container_insights(orchestration.daemon_service),
                1,
                comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
                periods=2,
                missing=cw.TreatMissingData.BREACHING,
            ),
            AlarmSpec(
                "CodeServerNotRunning",
                "No Dagster code-location server: sensors and schedules cannot tick",
                container_insights(orchestration.code_service),
                1,
                comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
                periods=2,
                missing=cw.TreatMissingData.BREACHING,
            ),
            AlarmSpec(
                "WebserverNotRunning",
                "No Dagster webserver task running: the API cannot launch jobs",
                container_insights(orchestration.webserver_service),
                1,
                comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
                periods=2,
                missing=cw.TreatMissingData.BREACHING,
            ),
        ]
        action = cw_actions.SnsAction(self.alerts_topic)
        self.alarms: dict[str, cw.Alarm] = {}
        for spec in specs:
            alarm = cw.Alarm(
                self,
                spec.id,
                alarm_name=config.name(spec.id),
                alarm_description=spec.description,
                metric=spec.metric,
                threshold=spec.threshold,
                comparison_operator=spec.comparison,
                evaluation_periods=spec.periods,
                treat_missing_data=spec.missing,
            )
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
            self.alarms[spec.id] = alarm

        self._dashboard(config, data, orchestration, api)
        CfnOutput(self, "AlertsTopicArn", value=self.alerts_topic.topic_arn)

    def _dashboard(
        self, config: Config, data: DataStack, orchestration: OrchestrationStack, api: ApiStack
    ) -> None:
        fn, rest, db, ns = api.function, api.api, data.database, config.metrics_namespace

        def graph(title: str, *metrics: cw.IMetric, right: list[cw.IMetric] | None = None) -> cw.GraphWidget:
            return cw.GraphWidget(title=title, left=list(metrics), right=right or [], width=8, height=6)

        dashboard = cw.Dashboard(
            self, "Dashboard", dashboard_name=config.name("overview"), default_interval=Duration.hours(6)
        )
        dashboard.add_widgets(
            cw.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=24, height=4)
        )
        dashboard.add_widgets(
            graph(
                "API requests and errors",
                rest.metric_count(),
                rest.metric_client_error(),
                rest.metric_server_error(),
            ),
            graph(
                "API latency (p50, p99)",
                rest.metric_latency(statistic="p50"),
                rest.metric_latency(statistic="p99"),
            ),
            graph(
                "API Lambda",
                fn.metric_invocations(),
                fn.metric_errors(),
                fn.metric_throttles(),
                right=[fn.metric_duration(statistic="p99")],
            ),
        )
        dashboard.add_widgets(
            graph(
                "RDS CPU and connections",
                db.metric_cpu_utilization(),
                right=[db.metric_database_connections()],
            ),
            graph("RDS free storage", db.metric_free_storage_space()),
            graph(
                "Jobs table",
                data.jobs_table.metric_consumed_read_capacity_units(),
                data.jobs_table.metric_consumed_write_capacity_units(),
            ),
        )
        services = (orchestration.code_service, orchestration.daemon_service, orchestration.webserver_service)
        dashboard.add_widgets(
            graph(
                "Ingest queue",
                data.ingest_queue.metric_approximate_number_of_messages_visible(),
                data.ingest_dlq.metric_approximate_number_of_messages_visible(),
                right=[data.ingest_queue.metric_approximate_age_of_oldest_message()],
            ),
            graph(
                "Dagster runs and refused records",
                failed_runs(ns, config.env_name),
                right=[refused_records(ns, config.env_name)],
            ),
            graph(
                "Dagster services CPU %",
                *(service.metric_cpu_utilization() for service in services),
                right=[service.metric_memory_utilization() for service in services],
            ),
        )
