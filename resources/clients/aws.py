"""boto3 clients for the configured AWS endpoint.

`aws_client()` is the one place a boto3 client is built: pointed at `AWS_ENDPOINT_URL` (the moto
server locally and in tests) or, when that is unset, at real AWS with the default credential chain.
What the CDK app creates on AWS is created on moto by `pipeline_defs.devstack.provisioning`.
Dagster-free.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.config import Config

from resources.settings import Settings, get_settings

# Credentials used against a local endpoint when none are configured: moto accepts anything.
DUMMY_CREDENTIAL = "testing"


def aws_client(
    service: str, settings: Settings | None = None, *, max_pool_connections: int | None = None
) -> Any:
    """A boto3 client for `service` on the configured endpoint and region."""
    settings = settings or get_settings()
    return boto3_client(
        service, settings.aws_region, settings.aws_endpoint_url, max_pool_connections=max_pool_connections
    )


def boto3_client(
    service: str, region: str, endpoint_url: str | None, *, max_pool_connections: int | None = None
) -> Any:
    """A boto3 client for `service` in `region`, on `endpoint_url` when given (else real AWS).

    A fresh session per call: boto3's default session is not safe to share across threads (sensor,
    run workers and the API each build their own clients). `max_pool_connections` (botocore's default: 10)
    should be at least the number of threads calling the client at once: past it, each extra call opens a
    connection and closes it afterwards (a TCP, and on AWS a TLS, handshake per call).
    """
    kwargs: dict[str, Any] = {"region_name": region}
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60)
    if max_pool_connections is not None:
        config = config.merge(Config(max_pool_connections=max_pool_connections))
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
        # moto and other local endpoints serve every bucket under one host: path-style addressing.
        config = config.merge(Config(s3={"addressing_style": "path"}))
        if not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
            kwargs["aws_access_key_id"] = DUMMY_CREDENTIAL
            kwargs["aws_secret_access_key"] = DUMMY_CREDENTIAL
    return boto3.session.Session().client(service, config=config, **kwargs)
