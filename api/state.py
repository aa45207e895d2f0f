"""The app's long-lived state: settings, AWS clients, database pools, the Dagster client, the result
cache and the API keys. One `AppState` per app (built by `create_app`, kept on `app.state.app_state`): clients
are built once and reused (boto3 clients are thread-safe; sessions are not, so each client comes from
its own session). Dagster-free.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from botocore.exceptions import BotoCoreError, ClientError

from api.auth import ApiKey, parse_api_keys
from api.config import ApiSettings
from api.dagster_client import DagsterClient
from api.fresh_read import FreshRead
from api.problems import ApiProblem
from api.result_cache import ResultCache
from resources.clients.aws import aws_client
from resources.clients.db_iam import iam_auth_kwargs
from resources.clients.jobs_store import JobsStore
from resources.settings import Settings

log = logging.getLogger("api")
# Blocking AWS calls run in Starlette's worker threads (anyio's default limiter: 40 at once); a client keeps
# that many connections, so no call under load pays a connection set-up (botocore keeps 10 by default).
AWS_POOL_CONNECTIONS = 40


@dataclass
class AppState:
    settings: Settings
    api: ApiSettings
    _clients: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _keys: dict[str, ApiKey] | None = None
    _pools: dict[str, Any] = field(default_factory=dict)
    _async_pool: Any = None
    _async_pool_loop: Any = None
    _version_read: FreshRead[int] = field(init=False)
    result_cache: ResultCache = field(init=False)

    def __post_init__(self) -> None:
        self.result_cache = ResultCache(
            lambda: self.client("dynamodb"),
            self.settings.jobs_table,
            ttl_seconds=self.api.cache_ttl_seconds,
            memory_bytes=self.api.memory_cache_bytes,
        )

    # AWS ---------------------------------------------------------------------------------------------
    def _once(self, cache: dict[str, Any], key: str, build: Callable[[], Any]) -> Any:
        """cache[key], built at most once even when several threads ask for it together."""
        found = cache.get(key)
        if found is None:
            with self._lock:
                found = cache.get(key)
                if found is None:
                    found = cache[key] = build()
        return found

    def client(self, service: str) -> Any:
        return self._once(
            self._clients,
            service,
            lambda: aws_client(service, self.settings, max_pool_connections=AWS_POOL_CONNECTIONS),
        )

    @property
    def jobs(self) -> JobsStore:
        return JobsStore(self.client("dynamodb"), self.settings.jobs_table)

    @property
    def dagster(self) -> DagsterClient:
        return DagsterClient(
            self.settings.dagster_url,
            location=self.api.dagster_location,
            repository=self.api.dagster_repository,
            timeout=self.api.dagster_timeout_seconds,
        )

    # PostgreSQL --------------------------------------------------------------------------------------
    def pool(self, which: str) -> Any:
        """A small connection pool for the reader (analytics queries) or the writer (ingest registry)."""
        return self._once(self._pools, which, lambda: self._new_pool(which))

    def _new_pool(self, which: str) -> Any:
        from psycopg_pool import ConnectionPool

        reader = which == "reader"
        url = self.settings.readonly_database_url if reader else self.settings.database_url
        # The writer's connections are autocommit: its routes open transactions explicitly.
        kwargs = {
            "application_name": f"canonical-api-{which}",
            "connect_timeout": 5,
            "autocommit": not reader,
        }
        return ConnectionPool(
            url,
            min_size=0,
            max_size=self.api.db_pool_max_size,
            open=True,
            timeout=self.api.db_pool_timeout_seconds,
            kwargs=self.connect_kwargs(url, kwargs),
            check=ConnectionPool.check_connection,
            name=f"api-{which}",
        )

    def connect_kwargs(self, url: str, base: dict[str, Any]) -> Any:
        """`base`, or with IAM auth a callable the pool evaluates per new connection (a fresh token each)."""
        if not self.api.db_iam_auth:
            return base
        return iam_auth_kwargs(url, self.client("rds"), base)

    def connect_params(self, url: str, base: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments of one direct connection (outside the pools), token included."""
        kwargs = self.connect_kwargs(url, base)
        params: dict[str, Any] = kwargs() if callable(kwargs) else kwargs
        return params

    @contextmanager
    def connection(self, which: str) -> Iterator[psycopg.Connection]:
        from psycopg_pool import PoolTimeout

        try:
            with self.pool(which).connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise db_unavailable() from exc
        except psycopg.OperationalError as exc:
            raise db_unavailable() from exc

    async def data_version(self) -> int:
        """`ingest.data_version`, read on the event loop: every /analytics request needs it (it is part of the
        cache key), so the cached path runs without a worker thread. Concurrent requests share a read that
        started after they arrived (api/fresh_read.py): never older than a commit a caller has seen."""
        await self._version_pool()
        return await self._version_read()

    @staticmethod
    async def _read_data_version(pool: Any) -> int:
        """One round trip: autocommit, and no check on checkout — a connection that died meanwhile fails
        this read with a 503 and has the pool check its idle ones, so the next read finds live connections."""
        from psycopg_pool import PoolTimeout

        try:
            async with pool.connection() as conn:
                row = await (await conn.execute("SELECT version FROM ingest.data_version")).fetchone()
        except PoolTimeout as exc:
            raise db_unavailable() from exc
        except psycopg.OperationalError as exc:
            with contextlib.suppress(Exception):
                await pool.check()
            raise db_unavailable() from exc
        return int(row[0]) if row else 0

    async def _version_pool(self) -> Any:
        from psycopg_pool import AsyncConnectionPool

        loop = asyncio.get_running_loop()
        if self._async_pool is None or self._async_pool_loop is not loop:
            # An async pool belongs to its event loop. uvicorn and Mangum keep one loop for the process; a
            # client that runs each request in a new loop (Starlette's TestClient outside `with`) gets a
            # new pool, and the old one's connections close when it is collected.
            self._async_pool = AsyncConnectionPool(
                self.settings.database_url,
                min_size=0,
                max_size=4,
                open=False,
                timeout=self.api.db_pool_timeout_seconds,
                name="api-version",
                kwargs=self.connect_kwargs(
                    self.settings.database_url,
                    {"application_name": "canonical-api-version", "connect_timeout": 5, "autocommit": True},
                ),
            )
            self._async_pool_loop = loop
            pool = self._async_pool
            self._version_read = FreshRead(lambda: self._read_data_version(pool))
        await self._async_pool.open()  # a no-op once open
        return self._async_pool

    async def aclose(self) -> None:
        if self._async_pool is not None and self._async_pool_loop is asyncio.get_running_loop():
            await self._async_pool.close()
        self._async_pool = None
        self.close()

    def close(self) -> None:
        for p in self._pools.values():
            p.close()
        self._pools.clear()

    # Auth --------------------------------------------------------------------------------------------
    def api_keys(self) -> dict[str, ApiKey] | None:
        """The configured keys; None when neither API_KEYS nor API_KEYS_SECRET_ARN is set (authentication
        off). Configured but empty means nobody gets in with a key: never open by accident."""
        if self._keys is None:
            raw = self.api.api_keys
            if not raw and self.api.api_keys_secret_arn:
                try:
                    raw = self.client("secretsmanager").get_secret_value(
                        SecretId=self.api.api_keys_secret_arn
                    )["SecretString"]
                except (ClientError, BotoCoreError) as exc:
                    log.warning("API keys secret unreadable: %s", exc)
                    raise ApiProblem(
                        503,
                        "auth_unavailable",
                        "API keys cannot be checked at the moment; retry shortly",
                        title="Authentication unavailable",
                        error_type="ServiceUnavailable",
                        headers={"Retry-After": "5"},
                    ) from None
            if not raw and not self.api.api_keys_secret_arn:
                return None
            try:
                # A configured secret that is empty still means "keys are on": nobody gets in.
                self._keys = parse_api_keys(raw or "[]")
            except (ValueError, TypeError) as exc:  # fail closed, and say why in the log
                log.error("API keys are misconfigured: %s", exc)
                raise ApiProblem(
                    503,
                    "auth_unavailable",
                    "API keys cannot be checked: their configuration is invalid (the server log says why)",
                    title="Authentication unavailable",
                    error_type="ServiceUnavailable",
                    headers={"Retry-After": "30"},
                ) from None
        return self._keys


def db_unavailable() -> ApiProblem:
    return ApiProblem(
        503,
        "database_unavailable",
        "the database is unavailable at the moment; retry shortly",
        title="Database unavailable",
        error_type="DatabaseUnavailable",
        headers={"Retry-After": "5"},
        suggestions=["Retry after a few seconds", "GET /health shows which dependency is down"],
    )
