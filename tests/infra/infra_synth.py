"""Synthesizing the CDK app (infra/) in-process, offline: no AWS account, no Docker.

cdk-nag's AwsSolutions pack runs as a validation plugin during synthesis: a finding nobody
acknowledged makes `synthesize` fail with the report.

Importing this module stays cheap (every pytest worker collects the infra tests): aws_cdk, which
starts the jsii Node runtime, is imported only when something is synthesized.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

# jsii's Node runtime prints a banner for Node versions it has not been tested with.
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

INFRA_DIR = Path(__file__).resolve().parents[2] / "infra"
if str(INFRA_DIR) not in sys.path:
    sys.path.insert(0, str(INFRA_DIR))

from canonical_infra.config import DEFAULT_LAMBDA_ASSETS, Config  # noqa: E402 - after the sys.path entry

if TYPE_CHECKING:
    from aws_cdk.assertions import Template
    from canonical_infra.platform import Stacks

ACCOUNT = "111111111111"
REGION = "eu-west-1"
CORS_ORIGIN = "https://dashboard.example.com"
JOB_NOTICE_EMAIL = "data-team@example.com"
DAGSTER_PUBLIC_URL = "https://dagster.example.com"
ALERT_EMAIL = "oncall@example.com"
UI_CERTIFICATE_ARN = "arn:aws:acm:eu-west-1:111111111111:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
OIDC_UI = {
    "uiAuth": "oidc",
    "uiDomainName": "dagster.dev.example.com",
    "uiCertificateArn": UI_CERTIFICATE_ARN,
    "uiAllowedCidrs": ["203.0.113.0/24"],
    "uiOidcIssuer": "https://login.example.com",
    "uiOidcAuthorizationEndpoint": "https://login.example.com/oauth2/authorize",
    "uiOidcTokenEndpoint": "https://login.example.com/oauth2/token",
    "uiOidcUserInfoEndpoint": "https://login.example.com/oauth2/userinfo",
    "uiOidcClientId": "dagster-ui",
    "uiOidcClientSecretName": "canonical-dev-dagster-ui-oidc",
}
LAMBDA_PACKAGE_MISSING = "make lambda-package not built yet"


def real_lambda_package() -> Path | None:
    """What `make lambda-package` built (dist/lambda.zip or dist/lambda), if it has been run."""
    return next((p for p in DEFAULT_LAMBDA_ASSETS if p.exists()), None)


@dataclass
class Synth:
    config: Config
    stacks: Stacks
    outdir: Path
    templates: dict[str, dict[str, Any]]  # by short name: network, data, orchestration, api, monitoring

    def template(self, name: str) -> Template:
        from aws_cdk.assertions import Template

        return Template.from_json(self.templates[name])

    def resources(self, type_: str, name: str | None = None) -> dict[str, dict[str, Any]]:
        """Resources of a CloudFormation type, in one stack or all of them (logical id -> resource)."""
        found: dict[str, dict[str, Any]] = {}
        for stack_name, template in self.templates.items():
            if name and stack_name != name:
                continue
            for logical_id, resource in template.get("Resources", {}).items():
                if resource["Type"] == type_:
                    found[logical_id] = resource
        return found

    def assets_manifest(self, name: str) -> dict[str, Any]:
        stack = getattr(self.stacks, name)
        return json.loads((self.outdir / f"{stack.artifact_id}.assets.json").read_text())


def synth_context(**context: Any) -> dict[str, Any]:
    """cdk.json's context, the test account/region, and `context` on top."""
    ctx = json.loads((INFRA_DIR / "cdk.json").read_text())["context"]
    ctx.update(
        {
            "account": ACCOUNT,
            "region": REGION,
            # What `cdk` would look up and store in cdk.context.json.
            f"availability-zones:account={ACCOUNT}:region={REGION}": [
                f"{REGION}a",
                f"{REGION}b",
                f"{REGION}c",
            ],
        }
    )
    ctx.update(context)
    return ctx


def synthesize(outdir: Path, **context: Any) -> Synth:
    if shutil.which("node") is None:
        raise RuntimeError("the CDK runs on Node.js (jsii): install Node.js 20+ so that `node` is on PATH")
    import aws_cdk as cdk
    from canonical_infra.platform import build_app

    ctx = synth_context(**context)
    app = cdk.App(outdir=str(outdir), context=ctx)
    stacks = build_app(app)
    try:
        assembly = app.synth()
    except Exception as exc:  # cdk-nag (or CDK's own template validation) refused the app
        report = outdir / "validation-report.json"
        detail = report.read_text() if report.exists() else ""
        raise AssertionError(f"synthesis failed: {exc}\n{_violations(detail)}") from exc
    templates = {
        name: assembly.get_stack_by_name(stack.stack_name).template
        for name, stack in zip(
            ("network", "data", "orchestration", "api", "monitoring"), stacks.all(), strict=True
        )
    }
    return Synth(config=Config.from_context(app.node), stacks=stacks, outdir=outdir, templates=templates)


def _violations(report_json: str) -> str:
    if not report_json:
        return ""
    lines = []
    for plugin in json.loads(report_json).get("pluginReports", []):
        for v in plugin.get("violations", []):
            paths = ", ".join(c.get("constructPath", "?") for c in v.get("violatingConstructs", []))
            lines.append(
                f"[{plugin['pluginName']}] {v['ruleName']}: {v.get('description', '')[:160]} at {paths}"
            )
    return "\n".join(lines)
