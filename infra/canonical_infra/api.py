"""API: the REST app (`api/lambda_handler.py:handler`) in a Lambda inside the VPC, behind an API Gateway
REST API with API keys, a usage plan, throttling, request validation, CORS, access logs and X-Ray.

The Lambda code is the package `make lambda-package` builds (dist/lambda.zip, or a folder), taken as
it is: nothing is bundled or built here. The function reads its database credentials from Secrets
Manager at cold start (the secret ARNs are in its environment, never the passwords) and reaches
PostgreSQL through RDS Proxy, Dagster through the internal load balancer.
"""

from __future__ import annotations

import json

from aws_cdk import CfnOutput, Duration, SecretValue, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from canonical_infra.common import (
    MANAGED_POLICY_PREFIX,
    lint_ignore,
    log_group,
    s3_bucket_arn,
    s3_objects_arn,
    suppress,
)
from canonical_infra.config import Config
from canonical_infra.data import CANONICAL_DB, IAM_READER_USER, IAM_WRITER_USER, PROXY_USERS, DataStack
from canonical_infra.network import NetworkStack
from canonical_infra.orchestration import OrchestrationStack

HANDLER = "api.lambda_handler.handler"
# API Gateway gives up after 29 s; the app's own time budget (API_SYNC_TIMEOUT_SECONDS, 20 s) ends first,
# so a slow query gets the app's 504 pointing to POST /analytics/jobs rather than the gateway's.
FUNCTION_TIMEOUT = Duration.seconds(29)
# What the first key may do: sync analytics, ingest status, jobs. `sql` (custom_complex_query) is granted
# per key, on purpose.
DEFAULT_KEY_SCOPES = ("read", "jobs")

# Bodies checked at the edge before the function is invoked (the REST API's contract:
# POST /analytics and POST /analytics/jobs take {"operation", "parameters"}).
ANALYTICS_REQUEST_SCHEMA = apigw.JsonSchema(
    schema=apigw.JsonSchemaVersion.DRAFT4,
    title="AnalyticsRequest",
    type=apigw.JsonSchemaType.OBJECT,
    required=["operation"],
    properties={
        "operation": apigw.JsonSchema(type=apigw.JsonSchemaType.STRING, min_length=1, max_length=100),
        "parameters": apigw.JsonSchema(type=apigw.JsonSchemaType.OBJECT),
    },
)

# Errors API Gateway answers itself keep the app's problem+json shape (RFC 9457 + the seed's fields).
PROBLEM_TEMPLATE = json.dumps(
    {
        "type": "about:blank",
        "title": "$context.error.responseType",
        "detail": "$context.error.message $context.error.validationErrorString",
        "instance": "$context.path",
        "requestId": "$context.requestId",
        "success": False,
        "error": {"message": "$context.error.message", "type": "$context.error.responseType"},
    }
)


class ApiStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: Config,
        network: NetworkStack,
        data: DataStack,
        orchestration: OrchestrationStack,
        **kwargs,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.config = config

        self.function_logs = log_group(self, "FunctionLogs", config)
        # The first client key, and the app's scopes for it. API Gateway checks the key on every method and
        # hands the function the key's id; the keys secret (API_KEYS_SECRET_ARN, api/auth.py) maps ids (or
        # sha256 digests of key values) to the scopes read / jobs / sql. It holds no credential — ids,
        # digests and scopes — and is read once per container.
        self.api_key = apigw.ApiKey(
            self,
            "DefaultKey",
            api_key_name=config.name("default"),
            description="First client key; add one per client (infra/README.md)",
        )
        self.api_keys_secret = secretsmanager.Secret(
            self,
            "ApiKeys",
            secret_name=config.name("api-keys"),
            description="canonical-pipeline API: scopes per API key (JSON list of {name, apiGatewayKeyId | "
            "sha256, scopes})",
            secret_string_value=SecretValue.unsafe_plain_text(
                Stack.of(self).to_json_string(
                    [
                        {
                            "name": "default",
                            "apiGatewayKeyId": self.api_key.key_id,
                            "scopes": list(DEFAULT_KEY_SCOPES),
                        },
                    ]
                )
            ),
        )
        role = iam.Role(
            self,
            "FunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="REST API Lambda",
        )
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=config.name("api"),
            description="canonical-pipeline REST API (api/lambda_handler.py)",
            code=lambda_.Code.from_asset(str(config.lambda_asset_path())),
            handler=HANDLER,
            runtime=lambda_.Runtime(config.lambda_runtime, lambda_.RuntimeFamily.PYTHON),
            architecture=lambda_.Architecture.X86_64,
            memory_size=config.lambda_memory,
            timeout=FUNCTION_TIMEOUT,
            reserved_concurrent_executions=config.lambda_reserved_concurrency,
            vpc=network.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[network.security_groups.api_lambda],
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.function_logs,
            role=role,
            environment={
                "PIPELINE_ENV": config.env_name,
                "RAW_BUCKET": config.bucket_name("raw"),
                "RESULTS_BUCKET": config.bucket_name("results"),
                "JOBS_TABLE": data.jobs_table.table_name,
                "DAGSTER_URL": orchestration.dagster_url,  # GraphQL, inside the VPC
                **({"DAGSTER_PUBLIC_URL": config.dagster_public_url} if config.dagster_public_url else {}),
                # Through the proxy with IAM auth tokens (resources/clients/db_iam.py): no password, nothing for a
                # secret rotation to invalidate in a warm function.
                "DATABASE_IAM_AUTH": "true",
                "DATABASE_PROXY_ENDPOINT": data.proxy.endpoint,
                "DATABASE_NAME": CANONICAL_DB,
                "DATABASE_USER": IAM_WRITER_USER,
                "READONLY_DATABASE_USER": IAM_READER_USER,
                "API_CORS_ORIGINS": ",".join(config.cors_origins),
                "API_KEYS_SECRET_ARN": self.api_keys_secret.secret_arn,
                # keylessRead: callers without a key (the old API's clients) may read, nothing more.
                **({"API_ANONYMOUS_SCOPES": "read"} if config.keyless_read else {}),
            },
        )
        self._grant(role, data)
        lint_ignore(self.function, "W3005")  # CDK orders the function after its role's policy explicitly

        access_logs = log_group(self, "AccessLogs", config)
        cors = (
            apigw.CorsOptions(
                allow_origins=config.cors_origins,
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                allow_headers=[
                    "Content-Type",
                    "X-Api-Key",
                    "Authorization",
                    "Idempotency-Key",
                    "Prefer",
                    "If-None-Match",
                    "Cache-Control",
                    "X-Request-Id",
                ],
                expose_headers=["Location", "ETag", "X-Cache", "X-Cache-Tier", "X-Request-Id"],
                max_age=Duration.hours(1),
            )
            if config.cors_origins
            else None
        )
        self.api = apigw.RestApi(
            self,
            "RestApi",
            rest_api_name=config.name("api"),
            description="canonical-pipeline analytics and ingest API",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=True,  # the account-level role API Gateway needs to write any log
            api_key_source_type=apigw.ApiKeySourceType.HEADER,
            default_method_options=apigw.MethodOptions(api_key_required=True),
            default_cors_preflight_options=cors,
            deploy_options=apigw.StageOptions(
                stage_name=config.api_stage_name,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
                tracing_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # request bodies stay out of the logs
                metrics_enabled=True,
                throttling_rate_limit=config.api_rate_limit,
                throttling_burst_limit=config.api_burst_limit,
            ),
        )
        self._routes()
        self._gateway_responses()

        plan = self.api.add_usage_plan(
            "UsagePlan",
            name=config.name("standard"),
            throttle=apigw.ThrottleSettings(
                rate_limit=config.api_rate_limit, burst_limit=config.api_burst_limit
            ),
            quota=apigw.QuotaSettings(limit=config.api_quota_per_day, period=apigw.Period.DAY),
            api_stages=[apigw.UsagePlanPerApiStage(api=self.api, stage=self.api.deployment_stage)],
        )
        plan.add_api_key(self.api_key)

        self._nag_suppressions(role)
        CfnOutput(self, "ApiUrl", value=self.api.url)
        CfnOutput(
            self,
            "ApiKeyId",
            value=self.api_key.key_id,
            description="aws apigateway get-api-key --include-value --api-key <id>",
        )
        CfnOutput(self, "FunctionName", value=self.function.function_name)

    def _routes(self) -> None:
        """A proxy route for every path, plus explicit routes where the edge can check the request."""
        integration = apigw.LambdaIntegration(self.function, proxy=True)
        validator = self.api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        body = self.api.add_model(
            "AnalyticsRequest",
            content_type="application/json",
            model_name="AnalyticsRequest",
            schema=ANALYTICS_REQUEST_SCHEMA,
        )
        checked_body = {"request_validator": validator, "request_models": {"application/json": body}}

        # keylessRead: reads need no key at the edge (the app grants such callers the read scope only).
        read_key = not self.config.keyless_read
        root = self.api.root
        root.add_method("ANY", integration)
        proxy = root.add_proxy(default_integration=integration, any_method=True)
        analytics = root.add_resource("analytics")
        analytics.add_method(
            "GET",
            integration,
            request_validator=validator,
            api_key_required=read_key,
            request_parameters={"method.request.querystring.operation": True},
        )
        analytics.add_method("POST", integration, api_key_required=read_key, **checked_body)
        analytics_proxy = analytics.add_proxy(default_integration=integration, any_method=True)
        jobs = analytics.add_resource("jobs")
        jobs.add_method("POST", integration, **checked_body)
        jobs_proxy = jobs.add_proxy(default_integration=integration, any_method=True)
        if not read_key:
            for resource in (proxy, analytics_proxy, jobs_proxy):
                resource.add_method("GET", integration, api_key_required=False)

    def _gateway_responses(self) -> None:
        headers = {"Content-Type": "'application/problem+json'"}
        if len(self.config.cors_origins) == 1:
            headers["Access-Control-Allow-Origin"] = f"'{self.config.cors_origins[0]}'"
        for id, kind in {
            "Default4xx": apigw.ResponseType.DEFAULT_4_XX,
            "Default5xx": apigw.ResponseType.DEFAULT_5_XX,
        }.items():
            self.api.add_gateway_response(
                id, type=kind, response_headers=headers, templates={"application/json": PROBLEM_TEMPLATE}
            )

    def _grant(self, role: iam.Role, data: DataStack) -> None:
        statements = [
            iam.PolicyStatement(
                sid="OwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.function_logs.log_group_arn],
            ),
            # The ENIs of a function in a VPC: EC2 takes no resource for these calls.
            iam.PolicyStatement(
                sid="VpcNetworkInterfaces",
                actions=[
                    "ec2:CreateNetworkInterface",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="Secrets",
                actions=["secretsmanager:GetSecretValue"],
                resources=[self.api_keys_secret.secret_arn],
            ),
            iam.PolicyStatement(
                sid="JobsAndCache",
                actions=[
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:Query",
                    "dynamodb:DescribeTable",
                ],  # (health: DescribeTable)
                resources=[data.jobs_table.table_arn],
            ),
            # GET /health checks the buckets (HeadBucket needs ListBucket).
            iam.PolicyStatement(
                sid="BucketHealth",
                actions=["s3:ListBucket"],
                resources=[
                    s3_bucket_arn(self, self.config.bucket_name("raw")),
                    s3_bucket_arn(self, self.config.bucket_name("results")),
                ],
            ),
            # Presigned downloads of results, presigned uploads into the raw bucket.
            iam.PolicyStatement(
                sid="ReadResults",
                actions=["s3:GetObject"],
                resources=[s3_objects_arn(self, self.config.bucket_name("results"))],
            ),
            iam.PolicyStatement(
                sid="UploadRaw",
                actions=["s3:PutObject"],
                resources=[s3_objects_arn(self, self.config.bucket_name("raw"))],
            ),
            iam.PolicyStatement(
                sid="DataKey",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[data.data_key.key_arn],
            ),
        ]
        for statement in statements:
            role.add_to_policy(statement)
        # rds-db:connect on this proxy (its resource id), as the two roles the API uses, nothing else.
        for user in PROXY_USERS:
            data.proxy.grant_connect(role, user)

    def _nag_suppressions(self, role: iam.Role) -> None:
        suppress(
            self.function,
            "L1",
            f"The runtime ({self.config.lambda_runtime}) must match the Python the "
            "package is built for by `make lambda-package` (the project supports 3.11-3.13); change both "
            "together through the lambdaRuntime context value.",
        )
        config = self.config
        suppress(
            role,
            "IAM5",
            "EC2 network-interface calls of a VPC function and X-Ray trace writes take no "
            "resource; object actions name the objects of the two data buckets (object ARNs end in /*).",
            findings=[
                "Resource::*",
                f"Resource::{s3_objects_arn(self, config.bucket_name('raw'))}",
                f"Resource::{s3_objects_arn(self, config.bucket_name('results'))}",
            ],
        )
        suppress(
            self.api,
            "APIG3",
            "No WAF: callers are authenticated with API keys, throttled per stage and "
            "per key by the usage plan, and bodies are validated at the edge; a WAF web ACL can be "
            "attached to the stage later without changing this stack (README).",
        )
        suppress(
            self.api,
            "APIG4",
            "Clients authenticate with API Gateway API keys (usage plan) and the app "
            "checks scoped keys itself; there is no user directory to authorise against.",
        )
        suppress(
            self.api_keys_secret,
            "SMG4",
            "Not a credential: the secret maps API key ids and sha256 "
            "digests to scopes, so there is nothing to rotate; keys are rotated in API Gateway (infra/README.md).",
        )
        suppress(
            self.api,
            "COG4",
            "No Cognito user pool: the callers are services and scripts holding API keys, not end users.",
        )
        suppress(
            self.api,
            "IAM4",
            "API Gateway's account-level CloudWatch role uses the AWS-managed "
            "AmazonAPIGatewayPushToCloudWatchLogs policy, the documented way to let it write logs.",
            findings=[f"Policy::{MANAGED_POLICY_PREFIX}AmazonAPIGatewayPushToCloudWatchLogs"],
        )
