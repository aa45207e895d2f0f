"""Data: everything that holds state — RDS PostgreSQL and its secrets, the buckets, the ingest queue,
the jobs table and the job-notice topic.

It changes rarely and outlives everything else: the stacks that run code (orchestration, API) can be
torn down and redeployed without touching it.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from canonical_infra.common import (
    MANAGED_POLICY_PREFIX,
    data_removal_policy,
    lint_ignore,
    retention,
    suppress,
)
from canonical_infra.config import Config
from canonical_infra.network import POSTGRES_PORT, NetworkStack, SecurityGroups

# PostgreSQL 17 (RDS applies newer minor versions in the maintenance window).
POSTGRES_VERSION = rds.PostgresEngineVersion.VER_17_9
CANONICAL_DB = "canonical"
DAGSTER_DB = "dagster"
MASTER_USER = "canonical_admin"
# Roles created by resources/schema/migrations (writer, reader) and by infra/docker/db_setup.py (dagster).
WRITER_USER = "pipeline_writer"
READER_USER = "pipeline_reader"
# The roles the API Lambda connects as, through the proxy, with IAM auth tokens: twins of the two
# application roles granted rds_iam by db-setup (infra/docker/db_setup.py), which turns password login off
# for them; the Dagster tasks keep logging in as the originals with passwords.
IAM_WRITER_USER = f"{WRITER_USER}_iam"
IAM_READER_USER = f"{READER_USER}_iam"
PROXY_USERS = (IAM_WRITER_USER, IAM_READER_USER)
DAGSTER_USER = "dagster"
# Passwords go into connection URLs: keep out the characters that would need quoting anywhere.
SECRET_EXCLUDE_CHARACTERS = " %+~`#$&*()|[]{}:;<>?!'/@\"\\,="
ROTATION_PERIOD = Duration.days(30)
RESULTS_EXPIRY = Duration.days(30)


class DataStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: Config, network: NetworkStack, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        self.config = config
        vpc = network.vpc

        # One customer-managed key for the data at rest that services read on our behalf
        # (raw and results objects, job notices): its key policy and CloudTrail show every use.
        self.data_key = kms.Key(
            self,
            "DataKey",
            alias=f"alias/{config.name('data')}",
            description="canonical-pipeline: raw/results objects and job notices",
            enable_key_rotation=True,
            # Prod keeps the key with the data it encrypts; a dev key goes with its buckets (7-day window).
            removal_policy=data_removal_policy(config),
            pending_window=None if config.is_prod else Duration.days(7),
        )

        self._buckets(config)
        auto_delete = self.node.try_find_child("Custom::S3AutoDeleteObjectsCustomResourceProvider")
        if auto_delete is not None:  # cfn-lint W3005: CDK orders its bucket-emptying handler after its role
            lint_ignore(auto_delete.node.find_child("Handler"), "W3005")
        self._ingest_queue(config)
        self._jobs_table(config)
        self.notices_topic = sns.Topic(
            self,
            "JobNotices",
            topic_name=config.name("job-notices"),
            display_name="canonical-pipeline job notices",
            master_key=self.data_key,
            enforce_ssl=True,
        )
        for address in config.job_notice_emails:
            # Confirmed by the recipient (SNS sends the link); notices carry the job, its status and a run link.
            self.notices_topic.add_subscription(subscriptions.EmailSubscription(address))
        self._database(config, vpc, network.security_groups)

        for name, value in {
            "RawBucketName": self.raw_bucket.bucket_name,
            "ResultsBucketName": self.results_bucket.bucket_name,
            "LogsBucketName": self.logs_bucket.bucket_name,
            "IngestQueueUrl": self.ingest_queue.queue_url,
            "IngestDeadLetterQueueUrl": self.ingest_dlq.queue_url,
            "JobsTableName": self.jobs_table.table_name,
            "JobNoticesTopicArn": self.notices_topic.topic_arn,
            "DatabaseEndpoint": self.database.db_instance_endpoint_address,
            "DatabaseProxyEndpoint": self.proxy.endpoint,
            "MasterSecretArn": self.master_secret.secret_arn,
        }.items():
            CfnOutput(self, name, value=value)

    # -- S3 -----------------------------------------------------------------------------------------

    def _buckets(self, config: Config) -> None:
        common = {
            "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
            "enforce_ssl": True,
            "object_ownership": s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            # Prod: a bucket outlives the stack (a redeploy adopts it: infra/adopt.py). Elsewhere it goes with
            # the stack, emptied first, so destroy-then-deploy never meets a bucket of the same name.
            "removal_policy": data_removal_policy(config),
            "auto_delete_objects": not config.is_prod,
        }
        # Access logs of the other buckets, ALB access logs and Dagster compute logs. S3 server access
        # logging and ALB log delivery both require SSE-S3 on the target bucket.
        self.logs_bucket = s3.Bucket(
            self,
            "LogsBucket",
            bucket_name=config.bucket_name("logs"),
            encryption=s3.BucketEncryption.S3_MANAGED,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-logs",
                    expiration=Duration.days(365 if config.is_prod else 90),
                    noncurrent_version_expiration=Duration.days(7),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
            ],
            **common,
        )

        cors = (
            [
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.GET, s3.HttpMethods.PUT, s3.HttpMethods.HEAD],
                    allowed_origins=config.cors_origins,
                    allowed_headers=["*"],
                    max_age=3000,
                )
            ]
            if config.cors_origins
            else None
        )

        # Raw uploads: kept (versioned) for reprocessing, moved to cheaper storage as they age.
        self.raw_bucket = s3.Bucket(
            self,
            "RawBucket",
            bucket_name=config.bucket_name("raw"),
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.data_key,
            bucket_key_enabled=True,
            versioned=True,
            server_access_logs_bucket=self.logs_bucket,
            server_access_logs_prefix="s3-access/raw/",
            cors=cors,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="age-to-cheaper-storage",
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=Duration.days(30),
                        ),
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                            transition_after=Duration.days(90),
                        ),
                    ],
                    noncurrent_version_expiration=Duration.days(30),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
            ],
            **common,
        )
        # Results of analytics jobs: downloaded through presigned URLs, gone after 30 days.
        self.results_bucket = s3.Bucket(
            self,
            "ResultsBucket",
            bucket_name=config.bucket_name("results"),
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.data_key,
            bucket_key_enabled=True,
            versioned=False,
            server_access_logs_bucket=self.logs_bucket,
            server_access_logs_prefix="s3-access/results/",
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.GET, s3.HttpMethods.HEAD],
                    allowed_origins=config.cors_origins,
                    allowed_headers=["*"],
                    max_age=3000,
                )
            ]
            if config.cors_origins
            else None,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-results",
                    expiration=RESULTS_EXPIRY,
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
            ],
            **common,
        )

    # -- SQS: S3 event notifications of the raw bucket, drained by the landing sensor ---------------

    def _ingest_queue(self, config: Config) -> None:
        self.ingest_dlq = sqs.Queue(
            self,
            "IngestDeadLetterQueue",
            queue_name=config.name("raw-events-dlq"),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.ingest_queue = sqs.Queue(
            self,
            "IngestQueue",
            queue_name=config.name("raw-events"),
            # SQS-managed keys: S3 can send to the queue without a KMS key policy of its own.
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.minutes(5),
            retention_period=Duration.days(4),
            # The landing sensor's first receive of a tick names no wait, so this long-poll applies: a
            # file's event is taken the moment it arrives (bench/latency_results.md), and empty receives
            # are fewer. Under the daemon's 5 s loop, so a tick still fits in it.
            receive_message_wait_time=Duration.seconds(4),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.ingest_dlq, max_receive_count=5),
        )
        # Every object created, like the local stack (resources/clients/aws.py): the sensor classifies keys.
        self.raw_bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED, s3n.SqsDestination(self.ingest_queue)
        )
        handler = self.node.find_child("BucketNotificationsHandler050a0587b7544547bf325f094a3db834")
        # cfn-lint W3005: CDK's notification resources repeat, as DependsOn, what they already reference.
        lint_ignore(handler.node.find_child("Resource"), "W3005")
        lint_ignore(self.raw_bucket.node.find_child("Notifications").node.find_child("Resource"), "W3005")
        suppress(
            handler,
            "IAM4",
            "CDK's own handler that writes the raw bucket's notification configuration at deploy time; "
            "AWSLambdaBasicExecutionRole only lets it write its logs.",
            findings=[f"Policy::{MANAGED_POLICY_PREFIX}AWSLambdaBasicExecutionRole"],
        )

    # -- DynamoDB: job tracking and the API's result cache (single table) --------------------------

    def _jobs_table(self, config: Config) -> None:
        self.jobs_table = dynamodb.Table(
            self,
            "JobsTable",
            table_name=config.name("jobs"),
            partition_key=dynamodb.Attribute(name="PK", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="SK", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute="expiresAt",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=config.is_prod,
            removal_policy=data_removal_policy(config),
        )

    # -- RDS PostgreSQL -----------------------------------------------------------------------------

    def _database(self, config: Config, vpc: ec2.IVpc, compute: SecurityGroups) -> None:
        # Who may reach PostgreSQL: the proxy (for the API Lambda), Dagster, and secret rotation.
        pg = ec2.Port.tcp(POSTGRES_PORT)
        self.database_sg = ec2.SecurityGroup(
            self,
            "DatabaseSg",
            vpc=vpc,
            allow_all_outbound=False,
            description="RDS PostgreSQL: from the proxy, Dagster and rotation only",
        )
        self.proxy_sg = ec2.SecurityGroup(
            self,
            "ProxySg",
            vpc=vpc,
            allow_all_outbound=False,
            description="RDS Proxy: from the API Lambda only",
        )
        self.rotation_sg = ec2.SecurityGroup(
            self,
            "RotationSg",
            vpc=vpc,
            allow_all_outbound=False,
            description="Secrets Manager rotation functions: no ingress",
        )
        # The rotation functions call Secrets Manager (HTTPS, through the NAT gateway) and the database.
        self.rotation_sg.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "Secrets Manager over HTTPS")
        # Their rules to the database (ingress there, egress here) come from CDK: add_proxy and
        # add_rotation_* open the instance's port between the groups.
        # The proxy and the rotation functions get their rules from CDK itself (add_proxy and
        # add_rotation_* below open the database port to their groups); adding them here too would
        # duplicate the rules, which EC2 refuses.
        self.database_sg.connections.allow_from(compute.dagster_tasks, pg, "Dagster daemon, runs, db-setup")
        self.database_sg.connections.allow_from(
            compute.dagster_webserver, pg, "Dagster webserver (run storage)"
        )
        self.database_sg.connections.allow_from(compute.dagster_code, pg, "Dagster code location (sensors)")
        self.proxy_sg.connections.allow_from(compute.api_lambda, pg, "API Lambda")

        engine = rds.DatabaseInstanceEngine.postgres(version=POSTGRES_VERSION)
        parameters = rds.ParameterGroup(
            self,
            "DbParameters",
            engine=engine,
            description="canonical-pipeline PostgreSQL: TLS only, slow statements logged",
            parameters={"rds.force_ssl": "1", "log_min_duration_statement": "2000"},
        )
        # Named, so its log groups can be created here with a retention (RDS would create them unbounded).
        identifier = config.name("db")
        exported_logs = ("postgresql", "upgrade")
        log_groups = [
            logs.LogGroup(
                self,
                f"DbLog{kind.capitalize()}",
                log_group_name=f"/aws/rds/instance/{identifier}/{kind}",
                retention=retention(config),
                removal_policy=RemovalPolicy.RETAIN if config.is_prod else RemovalPolicy.DESTROY,
            )
            for kind in exported_logs
        ]
        instance = {
            "instance_identifier": identifier,
            "engine": engine,
            "instance_type": ec2.InstanceType(config.db_instance_class),
            "vpc": vpc,
            "vpc_subnets": ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            "security_groups": [self.database_sg],
            "port": POSTGRES_PORT,
            "parameter_group": parameters,
            "allocated_storage": config.db_allocated_storage_gib,
            "max_allocated_storage": config.db_max_allocated_storage_gib,
            "storage_type": rds.StorageType.GP3,
            "multi_az": config.db_multi_az,
            "backup_retention": Duration.days(config.db_backup_retention_days),
            "preferred_backup_window": "02:00-03:00",
            "preferred_maintenance_window": "sun:03:30-sun:04:30",
            "deletion_protection": config.is_prod,
            "removal_policy": RemovalPolicy.SNAPSHOT,
            "auto_minor_version_upgrade": True,
            "cloudwatch_logs_exports": list(exported_logs),
            "publicly_accessible": False,
            "copy_tags_to_snapshot": True,
            "iam_authentication": True,  # RDS Proxy reaches the database with IAM (see the proxy below)
        }
        if config.db_snapshot:
            # Restoring after a destroy (infra/README.md, "Teardown and redeploy"): the final snapshot, opened
            # with the master secret prod kept (adopted under this construct's name). The snapshot carries
            # the data, the roles and their passwords, which the adopted user secrets still hold.
            master = rds.DatabaseSecret(
                self,
                "MasterSecret",
                username=MASTER_USER,
                secret_name=config.name("db-master"),
                exclude_characters=SECRET_EXCLUDE_CHARACTERS,
            )
            master.apply_removal_policy(data_removal_policy(config))
            self.database: rds.DatabaseInstanceBase = rds.DatabaseInstanceFromSnapshot(
                self,
                "Database",
                snapshot_identifier=config.db_snapshot,
                credentials=rds.SnapshotCredentials.from_secret(master),
                **instance,
            )
            suppress(
                self.database,
                "RDS2",
                "Restored from the final snapshot of an encrypted instance: the "
                "restored storage is encrypted with the snapshot's key (RDS keeps a snapshot's encryption).",
            )
        else:
            self.database = rds.DatabaseInstance(
                self,
                "Database",
                credentials=rds.Credentials.from_generated_secret(
                    MASTER_USER,
                    secret_name=config.name("db-master"),
                    exclude_characters=SECRET_EXCLUDE_CHARACTERS,
                ),
                storage_encrypted=True,
                **instance,
            )
            # In prod the credentials outlive the stack, like the final snapshot they open.
            self.database.node.find_child("Secret").apply_removal_policy(data_removal_policy(config))
        for group in log_groups:
            self.database.node.add_dependency(group)
        self.master_secret: secretsmanager.ISecret = self.database.secret  # type: ignore[assignment]

        rotation = {
            "automatically_after": ROTATION_PERIOD,
            "security_group": self.rotation_sg,
            "vpc_subnets": ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            "exclude_characters": SECRET_EXCLUDE_CHARACTERS,
        }
        self.database.add_rotation_single_user(**rotation)

        def user_secret(id: str, username: str, dbname: str) -> secretsmanager.ISecret:
            generated = rds.DatabaseSecret(
                self,
                id,
                username=username,
                dbname=dbname,
                secret_name=config.name(f"db-{username.replace('_', '-')}"),
                master_secret=self.master_secret,
                exclude_characters=SECRET_EXCLUDE_CHARACTERS,
            )
            generated.apply_removal_policy(data_removal_policy(config))
            secret = generated.attach(self.database)
            # Multi-user rotation (done with the master credentials): the secret alternates between
            # `<user>` and `<user>_clone`, so credentials a running process holds stay valid for a whole
            # rotation period. The first rotation waits a period: the roles exist only once db-setup has
            # run, during the deployment of the orchestration stack (README).
            self.database.add_rotation_multi_user(
                f"{id}Rotation", secret=secret, rotate_immediately_on_update=False, **rotation
            )
            return secret

        self.writer_secret = user_secret("WriterSecret", WRITER_USER, CANONICAL_DB)
        self.reader_secret = user_secret("ReaderSecret", READER_USER, CANONICAL_DB)
        self.dagster_secret = user_secret("DagsterSecret", DAGSTER_USER, DAGSTER_DB)

        # The API Lambda connects through the proxy: connection pooling across many short-lived
        # Lambda environments, TLS required. It carries the roles the API uses.
        proxy_role = iam.Role(
            self,
            "ProxyRole",
            assumed_by=iam.ServicePrincipal("rds.amazonaws.com"),
            description="RDS Proxy: connects to the database with IAM as the API's roles",
        )
        proxy_role.add_to_policy(
            iam.PolicyStatement(
                sid="ConnectAsApiRoles",
                actions=["rds-db:connect"],
                resources=[
                    self.format_arn(
                        service="rds-db",
                        resource="dbuser",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        resource_name=f"{self.database.instance_resource_id}/{user}",
                    )
                    for user in PROXY_USERS
                ],
            )
        )
        self.proxy = self.database.add_proxy(
            "Proxy",
            db_proxy_name=config.name("db-proxy"),
            role=proxy_role,
            secrets=[],
            default_auth_scheme=rds.DefaultAuthScheme.IAM_AUTH,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.proxy_sg],
            require_tls=True,
            iam_auth=True,
            idle_client_timeout=Duration.minutes(15),
            debug_logging=False,
        )
        # With end-to-end IAM there is nothing for `Auth` to list; CDK writes an empty list, which
        # CloudFormation's schema (minItems 1) refuses: leave the property out.
        self.proxy.node.find_child("Resource").add_property_deletion_override("Auth")

        if not config.is_prod:
            suppress(
                self.database,
                "RDS3",
                "Single-AZ outside prod to halve the cost; prod (env=prod) is "
                "Multi-AZ by default (context dbMultiAz).",
            )
            suppress(
                self.database,
                "RDS10",
                "Deletion protection is on in prod only, so a dev stack can be "
                "torn down; a final snapshot is still taken (RemovalPolicy.SNAPSHOT).",
            )
        suppress(
            self.database,
            "RDS11",
            "The standard PostgreSQL port: the instance sits in isolated subnets "
            "and accepts only the security groups listed in the network stack, so a non-default port "
            "would add no protection, only client configuration.",
        )
