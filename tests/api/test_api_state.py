"""api.state.AppState: how the app's long-lived clients are built."""

from __future__ import annotations

import asyncio

import anyio.to_thread

from api.config import ApiSettings
from api.state import AppState
from resources.settings import Settings


def _worker_threads() -> int:
    async def tokens() -> int:
        return int(anyio.to_thread.current_default_thread_limiter().total_tokens)

    return asyncio.run(tokens())


def test_aws_clients_keep_a_connection_for_every_worker_thread() -> None:
    # Blocking AWS calls (the DynamoDB cache tier) run in Starlette's worker threads; with fewer pooled
    # connections than threads, calls under load each opened a connection and closed it afterwards.
    state = AppState(settings=Settings(AWS_ENDPOINT_URL="http://127.0.0.1:1"), api=ApiSettings())
    assert state.client("dynamodb").meta.config.max_pool_connections >= _worker_threads()
