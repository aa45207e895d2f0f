"""The authenticated way to the Dagster UI (`uiAuth=cognito|oidc`): an internet-facing HTTPS load balancer
whose only listener signs every request in (Cognito user pool, or your OIDC provider) before forwarding
it to the webserver. Nobody needs a shell or ECS Exec to open the UI, and no request reaches Dagster
unauthenticated: the ALB answers with the sign-in redirect, then forwards with the user's claims.

The internal load balancer (or, in dev-lean, the webserver's discovery name) stays the API Lambda's
way to GraphQL: machine calls inside the VPC, not people.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnOutput, Duration, RemovalPolicy, SecretValue, Stack
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_elasticloadbalancingv2_actions as elbv2_actions
from aws_cdk import aws_s3 as s3

from canonical_infra.common import suppress
from canonical_infra.config import Config
from canonical_infra.network import DAGSTER_WEBSERVER_PORT

# How long a signed-in browser session lasts before the ALB asks the provider again.
SESSION_TIMEOUT = Duration.hours(12)


@dataclass(frozen=True)
class AuthenticatedUi:
    load_balancer: elbv2.ApplicationLoadBalancer
    url: str
    user_pool: cognito.UserPool | None


def add_authenticated_ui(
    stack: Stack,
    config: Config,
    *,
    vpc: ec2.IVpc,
    group: ec2.ISecurityGroup,
    logs_bucket: s3.IBucket,
    target: elbv2.IApplicationLoadBalancerTarget,
    health_check: elbv2.HealthCheck,
    https_port: int,
) -> AuthenticatedUi:
    alb = elbv2.ApplicationLoadBalancer(
        stack,
        "DagsterUiAlb",
        vpc=vpc,
        internet_facing=True,
        security_group=group,
        vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
        drop_invalid_header_fields=True,
        deletion_protection=config.is_prod,
    )
    alb.log_access_logs(logs_bucket, prefix="alb/dagster-ui")
    webserver = elbv2.ApplicationTargetGroup(
        stack,
        "DagsterUiWebserver",
        vpc=vpc,
        port=DAGSTER_WEBSERVER_PORT,
        protocol=elbv2.ApplicationProtocol.HTTP,
        targets=[target],
        health_check=health_check,
        deregistration_delay=Duration.seconds(30),
    )
    forward = elbv2.ListenerAction.forward([webserver])
    user_pool = None
    if config.ui_auth == "cognito":
        user_pool, action = _cognito(stack, config, forward)
    else:
        action = elbv2.ListenerAction.authenticate_oidc(
            issuer=config.ui_oidc_issuer,
            authorization_endpoint=config.ui_oidc_authorization_endpoint,
            token_endpoint=config.ui_oidc_token_endpoint,
            user_info_endpoint=config.ui_oidc_user_info_endpoint,
            client_id=config.ui_oidc_client_id,
            # A dynamic reference: CloudFormation resolves it at deploy time; the template never holds it.
            client_secret=SecretValue.secrets_manager(config.ui_oidc_client_secret_name),
            scope="openid email",
            session_timeout=SESSION_TIMEOUT,
            next=forward,
        )
    alb.add_listener(
        "Https",
        port=https_port,
        protocol=elbv2.ApplicationProtocol.HTTPS,
        certificates=[elbv2.ListenerCertificate.from_arn(config.ui_certificate_arn)],
        ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
        open=False,  # the ingress rules are the allowed CIDRs (network.py), not CDK's 0.0.0.0/0
        default_action=action,
    )
    if "0.0.0.0/0" in config.ui_allowed_cidrs:
        suppress(
            group,
            "EC23",
            "The Dagster UI's load balancer accepts HTTPS from anywhere (uiAllowedCidrs "
            "unset) because every request is authenticated by the ALB (Cognito/OIDC) before it is forwarded.",
        )
    url = f"https://{config.ui_domain_name}"
    CfnOutput(stack, "DagsterUiUrl", value=url, description="Open in a browser (after the DNS record below)")
    CfnOutput(
        stack,
        "DagsterUiLoadBalancerDns",
        value=alb.load_balancer_dns_name,
        description=f"Point {config.ui_domain_name} here (CNAME, or a Route 53 alias)",
    )
    return AuthenticatedUi(load_balancer=alb, url=url, user_pool=user_pool)


def _cognito(
    stack: Stack, config: Config, forward: elbv2.ListenerAction
) -> tuple[cognito.UserPool, elbv2.ListenerAction]:
    """A user pool for the operators: no self sign-up (an administrator invites people), MFA by an
    authenticator app, strong passwords, recovery by e-mail."""
    pool = cognito.UserPool(
        stack,
        "UiUserPool",
        self_sign_up_enabled=False,
        sign_in_aliases=cognito.SignInAliases(email=True),
        auto_verify=cognito.AutoVerifiedAttrs(email=True),
        mfa=cognito.Mfa.REQUIRED,
        mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
        password_policy=cognito.PasswordPolicy(
            min_length=12,
            require_digits=True,
            require_lowercase=True,
            require_uppercase=True,
            require_symbols=True,
            temp_password_validity=Duration.days(3),
        ),
        account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
        deletion_protection=config.is_prod,
        # The users (operators) outlive a prod stack; its name is generated, so a redeploy never collides.
        removal_policy=RemovalPolicy.RETAIN if config.is_prod else RemovalPolicy.DESTROY,
    )
    for rule in ("COG3", "COG8"):
        suppress(
            pool,
            rule,
            "Threat protection (Cognito's Plus plan, priced per user) is left to the deployer; "
            "sign-in needs a password and an authenticator-app code, and there is no self sign-up.",
        )
    domain = pool.add_domain(
        "UiDomain",
        cognito_domain=cognito.CognitoDomainOptions(
            domain_prefix=f"canonical-{config.env_name}-{config.account}"
        ),
    )
    client = pool.add_client(
        "UiClient",
        generate_secret=True,  # the ALB is a confidential client
        o_auth=cognito.OAuthSettings(
            flows=cognito.OAuthFlows(authorization_code_grant=True),
            scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL],
            callback_urls=[f"https://{config.ui_domain_name}/oauth2/idpresponse"],
        ),
        supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
        prevent_user_existence_errors=True,
    )
    CfnOutput(
        stack,
        "DagsterUiUserPoolId",
        value=pool.user_pool_id,
        description="Invite operators: aws cognito-idp admin-create-user --user-pool-id <this> ...",
    )
    action = elbv2_actions.AuthenticateCognitoAction(
        user_pool=pool,
        user_pool_client=client,
        user_pool_domain=domain,
        session_timeout=SESSION_TIMEOUT,
        next=forward,
    )
    return pool, action
