"""Fixtures of the infra tests: the CDK app synthesized once per test session (they all run in one
xdist group), as three deployments in temporary cloud-assembly directories: `dev` (the defaults plus
an alert email and a CORS origin); `prod`, deployed as the old system's replacement (its stage name
`prod`, reads without an API key, CORS as the default "*") with the Dagster UI behind a Cognito
sign-in; and `lean`, the `dev-lean` profile with the UI behind an OIDC provider."""

from __future__ import annotations

import pytest

from tests.infra.infra_synth import (
    ALERT_EMAIL,
    CORS_ORIGIN,
    DAGSTER_PUBLIC_URL,
    JOB_NOTICE_EMAIL,
    OIDC_UI,
    UI_CERTIFICATE_ARN,
    Synth,
    real_lambda_package,
    synthesize,
)


@pytest.fixture(scope="session")
def lambda_asset(tmp_path_factory: pytest.TempPathFactory) -> str:
    """'' (the app's own default: the real package) when it exists, else a placeholder folder."""
    if real_lambda_package():
        return ""
    folder = tmp_path_factory.mktemp("lambda-placeholder")
    (folder / "api").mkdir()
    (folder / "api" / "__init__.py").write_text("")
    (folder / "api" / "lambda_handler.py").write_text("def handler(event, context):\n    return {}\n")
    return str(folder)


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory, lambda_asset: str) -> Synth:
    return synthesize(
        tmp_path_factory.mktemp("cdk-dev"),
        env="dev",
        lambdaAsset=lambda_asset,
        alertEmail=ALERT_EMAIL,
        corsOrigins=[CORS_ORIGIN],
        jobNoticeEmails=[JOB_NOTICE_EMAIL],
    )


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory, lambda_asset: str) -> Synth:
    return synthesize(
        tmp_path_factory.mktemp("cdk-prod"),
        env="prod",
        lambdaAsset=lambda_asset,
        alertEmail=ALERT_EMAIL,
        apiStageName="prod",
        keylessRead=True,
        lambdaReservedConcurrency=50,
        dagsterPublicUrl=DAGSTER_PUBLIC_URL,
        uiAuth="cognito",
        uiDomainName="dagster.example.com",
        uiCertificateArn=UI_CERTIFICATE_ARN,
    )


@pytest.fixture(scope="session")
def lean(tmp_path_factory: pytest.TempPathFactory, lambda_asset: str) -> Synth:
    return synthesize(
        tmp_path_factory.mktemp("cdk-lean"),
        env="dev",
        profile="dev-lean",
        lambdaAsset=lambda_asset,
        alertEmail=ALERT_EMAIL,
        **OIDC_UI,
    )


@pytest.fixture(scope="session", params=["dev", "prod", "lean"])
def deployment(request: pytest.FixtureRequest) -> Synth:
    return request.getfixturevalue(request.param)
