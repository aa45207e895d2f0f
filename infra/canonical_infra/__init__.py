"""The canonical-pipeline CDK app (see `canonical_infra.platform.build_app` and infra/README.md).

Modules: `config` (context parameters), one module per stack (`network`, `data`, `orchestration`,
`api`, `monitoring`), `common` (log groups, ARNs, cdk-nag acknowledgments, cfn-lint hints).
"""
