"""AWS Lambda entry point: `api.lambda_handler.handler` (API Gateway REST v1 and HTTP API v2 events).

The app is built once per container, at import (cold start), and reused across invocations. Nothing here
imports dagster or pandas (a test checks `sys.modules`).
"""

from __future__ import annotations

import os
from typing import Any

from mangum import Mangum

from api.app import create_app
from resources.aws import aws_client
from resources.secrets import database_urls_from_secret_arns

# Bodies of these types go back as text: a REST API (v1) without binaryMediaTypes would otherwise hand
# base64 to the client.
TEXT_MIME_TYPES = ["application/json", "application/problem+json", "application/vnd.oai.openapi",
                   "application/javascript", "application/xml", "text/csv"]


def make_handler(app: Any) -> Mangum:
    return Mangum(app, lifespan="off", api_gateway_base_path="/", text_mime_types=TEXT_MIME_TYPES)


def _database_urls_from_secrets() -> None:
    """On AWS the function's environment names the database secrets, never the passwords: read them
    once per container, before the settings are."""
    if any(os.environ.get(v) for v in ("DATABASE_SECRET_ARN", "READONLY_DATABASE_SECRET_ARN")):
        sm = aws_client("secretsmanager")
        database_urls_from_secret_arns(os.environ, lambda arn: sm.get_secret_value(SecretId=arn)["SecretString"])


_database_urls_from_secrets()
handler = make_handler(create_app())
