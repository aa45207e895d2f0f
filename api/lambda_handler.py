"""AWS Lambda entry point: `api.lambda_handler.handler` (API Gateway REST v1 and HTTP API v2 events).

The app is built once per container, at import (cold start), and reused across invocations. Nothing here
imports dagster or pandas (a test checks `sys.modules`).
"""

from __future__ import annotations

from typing import Any

from mangum import Mangum

from api.app import create_app

# Bodies of these types go back as text: a REST API (v1) without binaryMediaTypes would otherwise hand
# base64 to the client.
TEXT_MIME_TYPES = ["application/json", "application/problem+json", "application/vnd.oai.openapi",
                   "application/javascript", "application/xml", "text/csv"]


def make_handler(app: Any) -> Mangum:
    return Mangum(app, lifespan="off", api_gateway_base_path="/", text_mime_types=TEXT_MIME_TYPES)


handler = make_handler(create_app())
