"""CDK entry point: `cdk synth|deploy|destroy` from infra/ (see README.md)."""

import aws_cdk as cdk
from canonical_infra.platform import build_app

app = cdk.App()
build_app(app)
app.synth()
