"""Orchestration: Dagster on ECS Fargate — the code-location server (the definitions: sensors and
schedules are evaluated there), the webserver behind an internal load balancer, the daemon (sensor and
schedule ticks, run queue, run monitoring, retries), one Fargate task per run, and a one-off db-setup
task. As in Dagster's own `deploy_ecs` example, the webserver and the daemon load no user code: they
reach it over gRPC, so a code deploy replaces the code server alone and the daemon keeps ticking.

They run the two targets of `infra/Dockerfile` (the locked dependencies, `infra/dagster.yaml` as the
instance configuration): `code` (our packages) for the code server, run tasks and db-setup; `system`
(none of our packages) for the webserver and daemon. Each has its own task role holding only what it
does: see `_grant_data_access` and `_grant_run_launching`.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import ArnFormat, CfnOutput, Duration, Fn, IgnoreMode, Stack, triggers
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_servicediscovery as servicediscovery
from constructs import Construct

from canonical_infra.common import (
    MANAGED_POLICY_PREFIX,
    lint_ignore,
    log_group,
    s3_bucket_arn,
    s3_objects_arn,
    suppress,
)
from canonical_infra.config import REPO_ROOT, Config
from canonical_infra.data import DataStack
from canonical_infra.network import (
    DAGSTER_ALB_PORT,
    DAGSTER_CODE_SERVER_PORT,
    DAGSTER_WEBSERVER_PORT,
    HTTPS_PORT,
    NetworkStack,
)
from canonical_infra.ui_auth import add_authenticated_ui

# The Docker build contexts are the repository root, reduced to what each image needs (allow-lists in
# .dockerignore syntax), so an asset's hash changes only when its image would. The system image
# (webserver, daemon) holds no code of ours but the entrypoint's secrets module: a code change does not
# touch it, so a code deploy never restarts the daemon.
CODE_CONTEXT = [
    "*",
    "!pyproject.toml",
    "!uv.lock",
    "!README.md",
    "!workspace.yaml",
    "!pipeline_defs",
    "!assets",
    "!sensors",
    "!resources",
    "!api",
    "!infra/Dockerfile",
    "!infra/dagster.yaml",
    "!infra/workspace.yaml",
    "!infra/docker",
    "**/__pycache__",
    "**/*.pyc",
]
SYSTEM_CONTEXT = [
    "*",
    "!pyproject.toml",
    "!uv.lock",
    "!infra/Dockerfile",
    "!infra/dagster.yaml",
    "!infra/workspace.yaml",
    "!infra/docker/entrypoint.py",
    "!resources/__init__.py",
    "!resources/clients/__init__.py",
    "!resources/clients/secrets.py",
    "**/__pycache__",
    "**/*.pyc",
]
DB_SETUP_TRIGGER = Path(__file__).with_name("db_setup_trigger.py")  # inlined into the template
RESTART_ON_ROTATION = Path(__file__).with_name("restart_on_rotation.py")  # inlined too
RUN_FAMILY = "dagster-run"
WEBSERVER_HEALTH_CHECK = elbv2.HealthCheck(
    path="/server_info", healthy_http_codes="200", interval=Duration.seconds(30)
)
RUN_CONTAINER = "run"  # the container the EcsRunLauncher overrides (its `container_name` default)
COMPUTE_LOGS_PREFIX = "dagster/compute-logs"
# The webserver's and daemon's workspace: the code server over gRPC (infra/workspace.yaml).
WORKSPACE = "/app/infra/workspace.yaml"
CODE_LOCATION = "canonical_pipeline"  # as in workspace.yaml for `make dev`: run history stays attached
CODE_SERVER_NAME = "code"  # its service-discovery name: code.<namespace>
WEBSERVER_NAME = "webserver"


class OrchestrationStack(Stack):
    def __init__(
        self, scope: Construct, id: str, *, config: Config, network: NetworkStack, data: DataStack, **kwargs
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.config = config
        self.data = data
        groups = network.security_groups
        app_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        self.app_subnets = network.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)

        self.cluster_name = config.name("dagster")
        exec_logs = log_group(self, "ExecLogs", config, name=config.log_group_name("ecs-exec"))
        # As ECS's own ECS Exec grant renders it (a reference to the group, shown as <logical id>).
        self.exec_logs_arn = self.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"<{self.get_logical_id(exec_logs.node.default_child)}>:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            cluster_name=self.cluster_name,
            vpc=network.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
            # Private DNS for the services' discovery names (code.<namespace>, webserver.<namespace>).
            default_cloud_map_namespace=ecs.CloudMapNamespaceOptions(
                name=f"{config.env_name}.canonical.internal",
                vpc=network.vpc,
                type=servicediscovery.NamespaceType.DNS_PRIVATE,
                use_for_service_connect=False,
            ),
            enable_fargate_capacity_providers=config.fargate_spot,
            # ECS Exec sessions (the operator path to the UI) are recorded.
            execute_command_configuration=ecs.ExecuteCommandConfiguration(
                logging=ecs.ExecuteCommandLogging.OVERRIDE,
                log_configuration=ecs.ExecuteCommandLogConfiguration(cloud_watch_log_group=exec_logs),
            ),
        )
        self.logs = log_group(self, "DagsterLogs", config, name=config.log_group_name("dagster"))
        self.image, self.system_image = self._images(config)

        self.namespace_name = f"{config.env_name}.canonical.internal"
        # The internal load balancer: the API Lambda's way to Dagster's GraphQL endpoint. Without it
        # (dev-lean, internalAlb=false) the API calls the webserver by its discovery name.
        self.alb: elbv2.ApplicationLoadBalancer | None = None
        if config.internal_alb:
            self.alb = elbv2.ApplicationLoadBalancer(
                self,
                "DagsterAlb",
                vpc=network.vpc,
                internet_facing=False,
                security_group=groups.dagster_alb,
                vpc_subnets=app_subnets,
                drop_invalid_header_fields=True,
                deletion_protection=config.is_prod,
            )
            self.alb.log_access_logs(data.logs_bucket, prefix="alb/dagster")
            self.dagster_url = f"http://{self.alb.load_balancer_dns_name}"
        else:
            self.dagster_url = f"http://{WEBSERVER_NAME}.{self.namespace_name}:{DAGSTER_WEBSERVER_PORT}"
        self.code_server_host = f"{CODE_SERVER_NAME}.{self.namespace_name}"

        # -- the run task: what the EcsRunLauncher starts for every run -------------------------------
        self.run_role = self._task_role("RunTaskRole", "Dagster run tasks: ingest and analytics")
        self.run_task = self._task_definition(
            "RunTask", RUN_FAMILY, config.run_cpu, config.run_memory, self.run_role
        )
        self._container(
            self.run_task,
            RUN_CONTAINER,
            ["dagster", "--version"],  # the launcher sets the command
            secrets=("writer", "reader", "dagster"),
        )
        self._grant_data_access(self.run_role, sensors=False)

        # -- the code server: the definitions, served over gRPC; sensors and schedules run here ----------
        self.code_role = self._task_role(
            "CodeServerTaskRole", "Dagster code location: sensors, schedules, run-status sensors"
        )
        code_task = self._task_definition(
            "CodeServerTask",
            "dagster-code",
            config.code_server_cpu,
            config.code_server_memory,
            self.code_role,
        )
        code = self._container(
            code_task,
            "code",
            [
                "dagster",
                "api",
                "grpc",
                "-h",
                "0.0.0.0",
                "-p",
                str(DAGSTER_CODE_SERVER_PORT),
                "-m",
                "pipeline_defs.definitions",
                "-a",
                "defs",
                "--location-name",
                CODE_LOCATION,
            ],
            secrets=("writer", "dagster"),
            health_check=ecs.HealthCheck(
                command=["CMD-SHELL", f"dagster api grpc-health-check -p {DAGSTER_CODE_SERVER_PORT}"],
                interval=Duration.seconds(30),
                timeout=Duration.seconds(15),
                retries=3,
                start_period=Duration.seconds(120),
            ),
        )
        code.add_port_mappings(ecs.PortMapping(container_port=DAGSTER_CODE_SERVER_PORT))
        self._grant_data_access(self.code_role, sensors=True)
        # The new server starts, answers its health check and registers before the old one stops: the
        # daemon and webserver see a new server id and reload the location; the daemon never stops.
        self.code_service = self._service(
            "CodeServerService",
            "dagster-code",
            code_task,
            groups.dagster_code,
            desired=1,
            min_healthy=100,
            max_healthy=200,
            discovery_name=CODE_SERVER_NAME,
        )

        # -- the daemon: sensor and schedule ticks, the run queue, run monitoring and retries ----------
        self.daemon_role = self._task_role("DaemonTaskRole", "Dagster daemon: ticks and run launching")
        daemon_task = self._task_definition(
            "DaemonTask", "dagster-daemon", config.daemon_cpu, config.daemon_memory, self.daemon_role
        )
        self._container(
            daemon_task,
            "daemon",
            ["dagster-daemon", "run", "-w", WORKSPACE],
            secrets=("dagster",),
            launches_runs=True,
            system=True,
            # A daemon whose heartbeats stopped (a hung sensor thread, a lost database) is
            # marked unhealthy and replaced by ECS.
            health_check=ecs.HealthCheck(
                command=["CMD-SHELL", "dagster-daemon liveness-check"],
                interval=Duration.seconds(60),
                timeout=Duration.seconds(30),
                retries=3,
                start_period=Duration.seconds(180),
            ),
        )
        self._grant_run_launching(self.daemon_role, launch=True)
        # Exactly one daemon: the old task stops before the new one starts.
        self.daemon_service = self._service(
            "DaemonService",
            "dagster-daemon",
            daemon_task,
            groups.dagster_tasks,
            desired=1,
            min_healthy=0,
            max_healthy=100,
        )

        # -- the webserver: UI and GraphQL, behind the internal load balancer -------------------------
        self.webserver_role = self._task_role("WebserverTaskRole", "Dagster webserver: UI and GraphQL")
        webserver_task = self._task_definition(
            "WebserverTask",
            "dagster-webserver",
            config.webserver_cpu,
            config.webserver_memory,
            self.webserver_role,
        )
        webserver = self._container(
            webserver_task,
            "webserver",
            ["dagster-webserver", "-h", "0.0.0.0", "-p", str(DAGSTER_WEBSERVER_PORT), "-w", WORKSPACE],
            secrets=("dagster",),
            launches_runs=True,
            system=True,
        )
        webserver.add_port_mappings(ecs.PortMapping(container_port=DAGSTER_WEBSERVER_PORT))
        self._grant_run_launching(self.webserver_role, launch=False)
        self._grant_compute_logs(self.webserver_role, write=False)
        self.webserver_service = self._service(
            "WebserverService",
            "dagster-webserver",
            webserver_task,
            groups.dagster_webserver,
            desired=config.webserver_count,
            min_healthy=100,
            max_healthy=200,
            discovery_name=None if self.alb else WEBSERVER_NAME,
            health_check_grace_period=Duration.minutes(3) if self.alb or config.ui_auth != "none" else None,
            enable_execute_command=True,  # the operator path: ECS Exec port forwarding (README)
        )
        webserver_target = self.webserver_service.load_balancer_target(
            container_name="webserver", container_port=DAGSTER_WEBSERVER_PORT
        )
        if self.alb is not None:
            listener = self.alb.add_listener(
                "Http", port=DAGSTER_ALB_PORT, protocol=elbv2.ApplicationProtocol.HTTP, open=False
            )
            listener.add_targets(
                "Webserver",
                port=DAGSTER_WEBSERVER_PORT,
                protocol=elbv2.ApplicationProtocol.HTTP,
                targets=[webserver_target],
                health_check=WEBSERVER_HEALTH_CHECK,
                deregistration_delay=Duration.seconds(30),
            )
            lint_ignore(
                self.webserver_service, "W3005"
            )  # CDK orders the service after its listener explicitly
        # The authenticated way in for people (uiAuth=cognito|oidc): an internet-facing HTTPS load balancer
        # that signs every request in before it reaches the webserver (canonical_infra/ui_auth.py).
        self.ui = None
        if config.ui_auth != "none":
            assert groups.dagster_ui is not None
            self.ui = add_authenticated_ui(
                self,
                config,
                vpc=network.vpc,
                group=groups.dagster_ui,
                logs_bucket=data.logs_bucket,
                target=webserver_target,
                health_check=WEBSERVER_HEALTH_CHECK,
                https_port=HTTPS_PORT,
            )
            lint_ignore(self.webserver_service, "W3005")

        # -- db-setup: databases, roles and migrations, before the services start (see _db_setup_trigger)
        setup_role = self._task_role("DbSetupTaskRole", "db-setup: needs no AWS API, only the database")
        self.setup_task = self._task_definition("DbSetupTask", "db-setup", 256, 512, setup_role)
        self._container(
            self.setup_task,
            "db-setup",
            ["python", "/app/infra/docker/db_setup.py"],
            secrets=("master", "writer", "reader", "dagster"),
        )
        self._db_setup_trigger(
            groups.dagster_tasks, before=[self.code_service, self.daemon_service, self.webserver_service]
        )

        self._restart_services_on_rotation()
        self._nag_suppressions()
        self._outputs()

    # -- building blocks ----------------------------------------------------------------------------

    def _service(
        self,
        id: str,
        name: str,
        task: ecs.FargateTaskDefinition,
        group: ec2.ISecurityGroup,
        *,
        desired: int,
        min_healthy: int,
        max_healthy: int,
        discovery_name: str | None = None,
        **kwargs,
    ) -> ecs.FargateService:
        """A private Fargate service (no public IP, app subnets), rolled back when a deployment fails;
        on Fargate Spot in dev-lean; registered in the cluster's namespace under `discovery_name`."""
        spot = (
            [ecs.CapacityProviderStrategy(capacity_provider="FARGATE_SPOT", weight=1)]
            if self.config.fargate_spot
            else None
        )
        return ecs.FargateService(
            self,
            id,
            service_name=self.config.name(name),
            cluster=self.cluster,
            task_definition=task,
            desired_count=desired,
            min_healthy_percent=min_healthy,
            max_healthy_percent=max_healthy,
            security_groups=[group],
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            capacity_provider_strategies=spot,
            cloud_map_options=ecs.CloudMapOptions(
                name=discovery_name,
                dns_record_type=servicediscovery.DnsRecordType.A,
                dns_ttl=Duration.seconds(10),
            )
            if discovery_name
            else None,
            **kwargs,
        )

    def _images(self, config: Config) -> tuple[ecs.ContainerImage, ecs.ContainerImage]:
        """(code image, system image). `dagsterImage` from context (an ECR URI
        `<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>` or any registry URI) replaces the code
        image, `dagsterSystemImage` the system image (else the code image serves both); otherwise both
        are built from infra/Dockerfile at deploy time, as its two targets."""
        if not config.dagster_image:
            code = self._docker_asset("DagsterImage", "code", CODE_CONTEXT)
            self.image_identity = (
                code.asset_hash
            )  # a literal at synthesis: changes exactly when the image does
            system = self._docker_asset("DagsterSystemImage", "system", SYSTEM_CONTEXT)
            return (
                ecs.ContainerImage.from_docker_image_asset(code),
                ecs.ContainerImage.from_docker_image_asset(system),
            )
        self.image_identity = config.dagster_image
        code_image = self._registry_image("ImageRepository", config.dagster_image)
        if not config.dagster_system_image:
            return code_image, code_image
        return code_image, self._registry_image("SystemImageRepository", config.dagster_system_image)

    def _docker_asset(self, id: str, target: str, context: list[str]) -> ecr_assets.DockerImageAsset:
        return ecr_assets.DockerImageAsset(
            self,
            id,
            directory=str(REPO_ROOT),
            file="infra/Dockerfile",
            target=target,
            platform=ecr_assets.Platform.LINUX_AMD64,
            exclude=context,
            ignore_mode=IgnoreMode.DOCKER,
        )

    def _registry_image(self, id: str, uri: str) -> ecs.ContainerImage:
        if ".dkr.ecr." in uri:  # ECR: the execution role is granted the pull
            path = uri.split("/", 1)[1]
            name, _, tag = path.partition(":")
            repo = ecr.Repository.from_repository_name(self, id, name)
            return ecs.ContainerImage.from_ecr_repository(repo, tag or "latest")
        return ecs.ContainerImage.from_registry(uri)

    def _task_role(self, id: str, description: str) -> iam.Role:
        return iam.Role(
            self, id, assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"), description=description
        )

    def _task_definition(
        self, id: str, family: str, cpu: int, memory: int, role: iam.Role
    ) -> ecs.FargateTaskDefinition:
        # Its own execution role: ECS grants it read access to exactly the secrets its containers inject
        # (only db-setup's can read the master secret), besides pulling the image and writing logs.
        execution_role = iam.Role(
            self,
            f"{id}ExecutionRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description=f"{family}: pulls the Dagster image, writes its logs, reads the secrets it injects",
        )
        return ecs.FargateTaskDefinition(
            self,
            id,
            family=self.config.name(family),
            cpu=cpu,
            memory_limit_mib=memory,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
            task_role=role,
            execution_role=execution_role,
        )

    def _container(
        self,
        task: ecs.FargateTaskDefinition,
        name: str,
        command: list[str],
        *,
        secrets: tuple[str, ...],
        launches_runs: bool = False,
        system: bool = False,
        health_check: ecs.HealthCheck | None = None,
    ) -> ecs.ContainerDefinition:
        """A container of the Dagster image. Database credentials arrive as whole secrets (JSON) that
        the image's entrypoint turns into DATABASE_URL & co.; the rest is plain configuration."""
        data = self.data
        by_name = {
            "master": ("ADMIN_DATABASE_SECRET", data.master_secret),
            "writer": ("DATABASE_SECRET", data.writer_secret),
            "reader": ("READONLY_DATABASE_SECRET", data.reader_secret),
            "dagster": ("DAGSTER_DATABASE_SECRET", data.dagster_secret),
        }
        return task.add_container(
            name,
            container_name=name,
            image=self.system_image if system else self.image,
            command=command,
            essential=True,
            environment=self.environment(launches_runs=launches_runs),
            secrets={by_name[s][0]: ecs.Secret.from_secrets_manager(by_name[s][1]) for s in secrets},
            logging=ecs.LogDrivers.aws_logs(stream_prefix=name, log_group=self.logs),
            stop_timeout=Duration.seconds(60),
            health_check=health_check,
        )

    def environment(self, *, launches_runs: bool = False) -> dict[str, str]:
        """What every Dagster container reads (resources/settings.py names); no secret among them.

        A container that launches runs (daemon, webserver) gets the run task definition's ARN, one revision:
        a change of the run size registers a new revision and, through this variable, a new revision of
        the launcher's own task definition, so the launcher is redeployed with it instead of holding a
        revision CloudFormation has deregistered. The run tasks themselves launch nothing: the family name
        is enough there (and their own ARN would be a circular reference)."""
        data, config = self.data, self.config
        return {
            "PIPELINE_ENV": config.env_name,
            "AWS_REGION": self.region,
            "RAW_BUCKET": config.bucket_name("raw"),
            "RESULTS_BUCKET": config.bucket_name("results"),
            "JOBS_TABLE": data.jobs_table.table_name,
            "NOTIFY_TOPIC": data.notices_topic.topic_arn,
            "INGEST_QUEUE": data.ingest_queue.queue_url,
            "METRICS_NAMESPACE": config.metrics_namespace,
            "DAGSTER_URL": self.dagster_url,
            # Run links in job items and notices: the address people open (dagsterPublicUrl, else the
            # authenticated UI's), else the internal one.
            **({"DAGSTER_PUBLIC_URL": config.public_ui_url} if config.public_ui_url else {}),
            "DAGSTER_CODE_SERVER_HOST": self.code_server_host,
            "DAGSTER_CODE_SERVER_PORT": str(DAGSTER_CODE_SERVER_PORT),
            "COMPUTE_LOGS_BUCKET": config.bucket_name("logs"),
            "COMPUTE_LOGS_PREFIX": COMPUTE_LOGS_PREFIX,
            "DAGSTER_MAX_CONCURRENT_RUNS": str(config.max_concurrent_runs),
            "DAGSTER_RUN_TASK_DEFINITION": (
                self.run_task.task_definition_arn if launches_runs else config.name(RUN_FAMILY)
            ),
        }

    def _grant_data_access(self, role: iam.Role, *, sensors: bool) -> None:
        """Read raw objects, write results, write the jobs table, publish notices, emit metrics.
        Object and item actions only: no principal here can delete a bucket, a table or the queue."""
        data, config = self.data, self.config
        raw, results = config.bucket_name("raw"), config.bucket_name("results")
        statements = [
            iam.PolicyStatement(
                sid="ReadRawObjects", actions=["s3:GetObject"], resources=[s3_objects_arn(self, raw)]
            ),
            iam.PolicyStatement(
                sid="ListRawBucket", actions=["s3:ListBucket"], resources=[s3_bucket_arn(self, raw)]
            ),
            iam.PolicyStatement(
                sid="WriteResults",
                actions=["s3:PutObject", "s3:GetObject"],
                resources=[s3_objects_arn(self, results)],
            ),
            iam.PolicyStatement(
                sid="DataKey",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[data.data_key.key_arn],
            ),
            iam.PolicyStatement(
                sid="JobsTable",
                actions=[
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:Query",
                    "dynamodb:BatchGetItem",
                ],
                resources=[data.jobs_table.table_arn],
            ),
            iam.PolicyStatement(
                sid="PublishNotices", actions=["sns:Publish"], resources=[data.notices_topic.topic_arn]
            ),
            iam.PolicyStatement(
                sid="PipelineMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": config.metrics_namespace}},
            ),
        ]
        if sensors:
            statements.append(
                iam.PolicyStatement(
                    sid="DrainIngestQueue",
                    actions=[
                        "sqs:ReceiveMessage",
                        "sqs:DeleteMessage",
                        "sqs:ChangeMessageVisibility",
                        "sqs:GetQueueAttributes",
                        "sqs:GetQueueUrl",
                    ],
                    resources=[data.ingest_queue.queue_arn],
                )
            )
        for statement in statements:
            role.add_to_policy(statement)
        self._grant_compute_logs(role, write=True)
        suppress(
            role,
            "IAM5",
            "Objects of the raw and results buckets (object ARNs end in /*); "
            "PutMetricData takes no resource and is limited to the pipeline's namespace by condition.",
            findings=[
                f"Resource::{s3_objects_arn(self, raw)}",
                f"Resource::{s3_objects_arn(self, results)}",
                "Resource::*",
            ],
        )

    def _grant_compute_logs(self, role: iam.Role, *, write: bool) -> None:
        bucket = self.config.bucket_name("logs")
        objects = s3_objects_arn(self, bucket, f"{COMPUTE_LOGS_PREFIX}/*")
        actions = ["s3:GetObject", "s3:PutObject"] if write else ["s3:GetObject"]
        role.add_to_policy(iam.PolicyStatement(sid="ComputeLogObjects", actions=actions, resources=[objects]))
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ComputeLogListing",
                actions=["s3:ListBucket"],
                resources=[s3_bucket_arn(self, bucket)],
                conditions={"StringLike": {"s3:prefix": [f"{COMPUTE_LOGS_PREFIX}/*"]}},
            )
        )
        suppress(
            role,
            "IAM5",
            "Dagster compute logs: the objects under their prefix in the logs bucket.",
            findings=[f"Resource::{objects}"],
        )

    def _grant_run_launching(self, role: iam.Role, *, launch: bool) -> None:
        """What the EcsRunLauncher calls (dagster_aws/ecs/launcher.py): the daemon starts run tasks of
        the run task definition in this cluster; the webserver only looks at and stops them."""
        cluster_tasks = self.format_arn(
            service="ecs", resource="task", resource_name=f"{self.cluster_name}/*"
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WatchRunTasks", actions=["ecs:DescribeTasks", "ecs:StopTask"], resources=[cluster_tasks]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadRunTaskDefinition", actions=["ecs:DescribeTaskDefinition"], resources=["*"]
            )
        )  # the action takes no resource
        suppress(
            role,
            "IAM5",
            "Tasks of this cluster only (task IDs are generated); DescribeTaskDefinition takes no resource.",
            findings=[f"Resource::{cluster_tasks}", "Resource::*"],
        )
        if not launch:
            return
        family = self.format_arn(
            service="ecs", resource="task-definition", resource_name=f"{self.config.name(RUN_FAMILY)}:*"
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="StartRunTasks",
                actions=["ecs:RunTask"],
                resources=[family],
                conditions={"ArnEquals": {"ecs:cluster": self.cluster.cluster_arn}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="TagRunTasks",
                actions=["ecs:TagResource"],
                resources=[cluster_tasks],
                conditions={"StringEquals": {"ecs:CreateAction": "RunTask"}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PassRunRoles",
                actions=["iam:PassRole"],
                resources=[self.run_role.role_arn, self.run_task.obtain_execution_role().role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
            )
        )
        # use_current_ecs_task_config: the launcher copies the daemon's subnets and security groups.
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadOwnNetwork", actions=["ec2:DescribeNetworkInterfaces"], resources=["*"]
            )
        )  # the action takes no resource
        # Run monitoring reads a failed run task's last log lines into the run's failure event.
        run_log_streams = self.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"{self.config.log_group_name('dagster')}:log-stream:{RUN_CONTAINER}/*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        role.add_to_policy(
            iam.PolicyStatement(sid="ReadRunLogs", actions=["logs:GetLogEvents"], resources=[run_log_streams])
        )
        suppress(
            role,
            "IAM5",
            "Every revision of the run task definition, and the log streams of run "
            "containers (named per task).",
            findings=[f"Resource::{family}", f"Resource::{run_log_streams}"],
        )

    def _db_setup_trigger(self, group: ec2.ISecurityGroup, *, before: list[Construct]) -> None:
        """Run the db-setup task during `cdk deploy`, after its task definition and before the Dagster
        services, and wait for it: the services start against a database that has their roles and the
        current schema. It runs again whenever the image changes (new migrations: see IMAGE below); a
        failure fails the deployment, which rolls back."""
        cluster_tasks = self.format_arn(
            service="ecs", resource="task", resource_name=f"{self.cluster_name}/*"
        )
        setup_family = self.format_arn(
            service="ecs", resource="task-definition", resource_name=f"{self.setup_task.family}:*"
        )
        trigger = triggers.TriggerFunction(
            self,
            "DbSetupTrigger",
            description="Runs the db-setup ECS task during deployment and waits for it",
            **self._inline_handler(DB_SETUP_TRIGGER, "DbSetupTriggerLogs", Duration.minutes(15)),
            environment={
                # The image's identity as a literal: the function's version hash includes its environment,
                # so a new image makes a new version and the trigger runs db-setup again (the task
                # definition's ARN is a token, the same string whatever the image).
                "IMAGE": self.image_identity,
                "CLUSTER": self.cluster_name,
                "TASK_DEFINITION": self.setup_task.task_definition_arn,
                "SUBNETS": Fn.join(",", self.app_subnets.subnet_ids),
                "SECURITY_GROUP": group.security_group_id,
            },
            initial_policy=[
                iam.PolicyStatement(
                    sid="RunDbSetup",
                    actions=["ecs:RunTask"],
                    resources=[setup_family],
                    conditions={"ArnEquals": {"ecs:cluster": self.cluster.cluster_arn}},
                ),
                iam.PolicyStatement(
                    sid="WatchDbSetup", actions=["ecs:DescribeTasks"], resources=[cluster_tasks]
                ),
                iam.PolicyStatement(
                    sid="PassDbSetupRoles",
                    actions=["iam:PassRole"],
                    resources=[
                        self.setup_task.task_role.role_arn,
                        self.setup_task.obtain_execution_role().role_arn,
                    ],
                    conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
                ),
            ],
            execute_after=[self.setup_task],
            execute_before=before,
            execute_on_handler_change=True,
        )
        # cfn-lint W3005: CDK orders the function and its trigger provider after their roles explicitly.
        lint_ignore(trigger, "W3005")
        provider = self.node.try_find_child("AWSCDK.TriggerCustomResourceProviderCustomResourceProvider")
        if provider is not None:
            lint_ignore(provider.node.find_child("Handler"), "W3005")
        suppress(
            trigger,
            "IAM4",
            "The trigger function writes its own logs through AWSLambdaBasicExecutionRole.",
            findings=[f"Policy::{MANAGED_POLICY_PREFIX}AWSLambdaBasicExecutionRole"],
        )
        suppress(
            trigger,
            "IAM5",
            "db-setup tasks of this cluster (task IDs are generated) and every revision "
            "of the db-setup task definition.",
            findings=[f"Resource::{cluster_tasks}", f"Resource::{setup_family}"],
        )

    def _inline_handler(self, source: Path, log_id: str, timeout: Duration) -> dict[str, object]:
        """A small Python handler inlined into the template (boto3 only, from the runtime), its own logs."""
        return {
            "runtime": lambda_.Runtime.PYTHON_3_14,
            "handler": "index.handler",
            "code": lambda_.Code.from_inline(source.read_text()),
            "timeout": timeout,
            "log_group": log_group(self, log_id, self.config),
        }

    def _restart_services_on_rotation(self) -> None:
        """A successful rotation of a secret the services inject starts fresh tasks of those services
        (restart_on_rotation.py says why): the first month, and every month after, keeps working."""
        services = [self.code_service, self.daemon_service, self.webserver_service]
        injected = [self.data.writer_secret, self.data.dagster_secret]  # what code, daemon, webserver hold
        restart = lambda_.Function(
            self,
            "RestartOnRotation",
            description="Starts fresh Dagster service tasks after their database secret rotated",
            **self._inline_handler(RESTART_ON_ROTATION, "RestartOnRotationLogs", Duration.minutes(1)),
            environment={
                "CLUSTER": self.cluster_name,
                "SERVICES": ",".join(
                    self.config.name(n) for n in ("dagster-code", "dagster-daemon", "dagster-webserver")
                ),
            },
        )
        restart.add_to_role_policy(
            iam.PolicyStatement(
                sid="RestartServices",
                actions=["ecs:UpdateService"],
                resources=[s.service_arn for s in services],
            )
        )
        events.Rule(
            self,
            "SecretRotated",
            description="A database secret of the Dagster services rotated",
            event_pattern=events.EventPattern(
                source=["aws.secretsmanager"],
                detail_type=["AWS Service Event via CloudTrail"],
                detail={
                    "eventSource": ["secretsmanager.amazonaws.com"],
                    "eventName": ["RotationSucceeded"],
                    "additionalEventData": {"SecretId": [secret.secret_arn for secret in injected]},
                },
            ),
            targets=[targets.LambdaFunction(restart, retry_attempts=4)],
        )
        lint_ignore(restart, "W3005")  # cfn-lint: CDK orders the function after its role explicitly
        suppress(
            restart,
            "IAM4",
            "The restart function writes its own logs through AWSLambdaBasicExecutionRole.",
            findings=[f"Policy::{MANAGED_POLICY_PREFIX}AWSLambdaBasicExecutionRole"],
        )

    # -- nag and outputs ----------------------------------------------------------------------------

    def _nag_suppressions(self) -> None:
        tasks = (
            self.run_task,
            self.setup_task,
            self.code_service.task_definition,
            self.daemon_service.task_definition,
            self.webserver_service.task_definition,
        )
        for task in tasks:
            suppress(
                task.obtain_execution_role(),
                "IAM5",
                "ecr:GetAuthorizationToken takes no resource (ECS's "
                "own image-pull grant); the repository actions are limited to the image's repository.",
                findings=["Resource::*"],
            )
        suppress(
            self.webserver_role,
            "IAM5",
            "ECS Exec (the operator path to the UI): the ssmmessages channel "
            "actions and logs:DescribeLogGroups take no resource; session logs go to their own log group.",
            findings=["Resource::*", f"Resource::{self.exec_logs_arn}"],
        )
        for task in tasks:
            suppress(
                task,
                "ECS2",
                "Only non-secret configuration (resource names, URLs) is in the environment; "
                "database credentials are injected from Secrets Manager as ECS secrets.",
            )

    def _outputs(self) -> None:
        outputs = {
            "ClusterName": self.cluster.cluster_name,
            "WebserverServiceName": self.webserver_service.service_name,
            "DaemonServiceName": self.daemon_service.service_name,
            "CodeServerServiceName": self.code_service.service_name,
            "CodeServerHost": self.code_server_host,
            "DagsterInternalUrl": self.dagster_url,
            "RunTaskDefinitionFamily": self.run_task.family,
            "DbSetupTaskDefinitionFamily": self.setup_task.family,
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
