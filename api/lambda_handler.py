"""AWS Lambda entry point: `api.lambda_handler.handler` (API Gateway REST v1 and HTTP API v2 events).

The app is built once per container, at import (cold start), and reused across invocations.
"""

from __future__ import annotations

from mangum import Mangum

from api.app import create_app

app = create_app()
handler = Mangum(app, lifespan="off", api_gateway_base_path="/")
