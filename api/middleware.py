"""ASGI middleware: request id on every response, request size limit, and a last-resort 500.

Pure ASGI (no BaseHTTPMiddleware): it runs outside the routing, so even errors raised by the framework
itself leave with an `X-Request-Id` and a problem body, never a stack trace.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

from api.problems import PROBLEM_JSON, ApiProblem, problem_body

log = logging.getLogger("api")
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


async def _send_problem(send: Any, p: ApiProblem, path: str, request_id: str) -> None:
    body = json.dumps(problem_body(p, path, request_id)).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    await send({"type": "http.response.start", "status": p.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestContextMiddleware:
    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.fullmatch(incoming) else str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        path = scope.get("path", "")
        limit = self.max_body_bytes

        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _send_problem(send, _too_large(limit), path, request_id)
            return

        received = 0
        overflow = False

        async def limited_receive() -> dict[str, Any]:
            # A body without Content-Length (chunked) is counted as it streams; past the limit the app sees
            # the body end there, and whatever it answers is replaced by the 413 below.
            nonlocal received, overflow
            if overflow:
                return {"type": "http.request", "body": b"", "more_body": False}
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    overflow = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        started = False

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal started
            if overflow:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _send_problem(send, _too_large(limit), path, request_id)
                return
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except Exception:
            log.exception("unhandled error (request id %s)", request_id)
            if not started:
                await _send_problem(
                    send,
                    ApiProblem(
                        500,
                        "internal_error",
                        "the request could not be completed; quote the request id when reporting it",
                        error_type="InternalError",
                    ),
                    path,
                    request_id,
                )


def _too_large(limit: int) -> ApiProblem:
    return ApiProblem(
        413,
        "request_too_large",
        f"the request body is larger than {limit} bytes",
        error_type="PayloadTooLarge",
        suggestions=["Send a smaller body"],
    )
