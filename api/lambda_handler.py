"""AWS Lambda entry point: `api.lambda_handler.handler` (API Gateway REST v1 and HTTP API v2 events).

The app is built once per container, at import (cold start), and reused across invocations. Nothing here
imports dagster or pandas (a test checks `sys.modules`).

Direct invocations, as the old system's function took them (`aws lambda invoke` or a Step Functions task
with `{"operation": ..., "parameters": {...}}`), are answered as `POST /analytics` would answer them and
return the response body itself (plus `requestId` when the event carried one). Whoever may invoke the
function is already trusted by IAM (`lambda:InvokeFunction`; such a caller could also send any gateway
event), so a direct invocation has every scope.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from mangum import Mangum

from api.app import create_app
from api.auth import DIRECT_INVOKE_MARK
from resources.clients.aws import aws_client
from resources.clients.db_iam import iam_database_urls
from resources.clients.secrets import database_urls_from_secret_arns

# Bodies of these types go back as text: a REST API (v1) without binaryMediaTypes would otherwise hand
# base64 to the client.
TEXT_MIME_TYPES = [
    "application/json",
    "application/problem+json",
    "application/vnd.oai.openapi",
    "application/javascript",
    "application/xml",
    "text/csv",
]


def make_handler(app: Any) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    asgi = Mangum(app, lifespan="off", api_gateway_base_path="/", text_mime_types=TEXT_MIME_TYPES)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if not is_direct_invocation(event):
            return asgi(event, context)
        out = asgi(direct_event(event, getattr(context, "aws_request_id", "direct")), context)
        try:
            body: dict[str, Any] = json.loads(out.get("body") or "{}")
        except ValueError:
            body = {"success": False, "error": {"message": "unreadable response", "type": "InternalError"}}
        if event.get("requestId"):
            body["requestId"] = event["requestId"]
        return body

    return handler


def is_direct_invocation(event: Any) -> bool:
    """An event naming an operation that no API Gateway sent (no request context, no HTTP method)."""
    return (
        isinstance(event, dict)
        and "operation" in event
        and "requestContext" not in event
        and "httpMethod" not in event
        and "routeKey" not in event
    )


def direct_event(event: dict[str, Any], request_id: str) -> dict[str, Any]:
    """The REST (v1) event of `POST /analytics` carrying the invocation's operation and parameters."""
    body = json.dumps({"operation": event.get("operation"), "parameters": event.get("parameters") or {}})
    return {
        "resource": "/analytics",
        "path": "/analytics",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json", "Accept": "application/json"},
        "multiValueHeaders": {"Content-Type": ["application/json"], "Accept": ["application/json"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "body": body,
        "isBase64Encoded": False,
        "requestContext": {
            "resourcePath": "/analytics",
            "httpMethod": "POST",
            "path": "/analytics",
            "stage": "direct",
            "requestId": request_id,
            "identity": {"sourceIp": "127.0.0.1"},
        },
        DIRECT_INVOKE_MARK: True,
    }


def _database_urls_from_secrets() -> None:
    """On AWS the function's environment never holds a password. With IAM auth (the CDK app's choice) it
    names the proxy and the roles: the URLs carry no password and each connection a fresh token. Else it
    names the database secrets, read once per container, before the settings are."""
    if os.environ.get("DATABASE_IAM_AUTH", "").lower() in ("1", "true", "yes"):
        for name, url in iam_database_urls(os.environ).items():
            os.environ.setdefault(name, url)
        return
    if any(os.environ.get(v) for v in ("DATABASE_SECRET_ARN", "READONLY_DATABASE_SECRET_ARN")):
        sm = aws_client("secretsmanager")
        database_urls_from_secret_arns(
            os.environ, lambda arn: sm.get_secret_value(SecretId=arn)["SecretString"]
        )


_database_urls_from_secrets()
handler = make_handler(create_app())
