"""What the routes depend on: settings, database, AWS clients, Dagster client, the caller's scopes.

One `AppState` per app (built by `create_app`, kept on `app.state.ctx`): clients are built once and
reused (boto3 clients are thread-safe; sessions are not, so each client comes from its own session).
Dagster-free.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import psycopg
from botocore.exceptions import BotoCoreError, ClientError
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.config import ApiSettings
from api.dagster_client import DagsterClient
from api.problems import ApiProblem
from api.result_cache import ResultCache
from resources.aws import aws_client
from resources.jobs_store import JobsStore
from resources.settings import Settings

log = logging.getLogger("api")
SCOPES = ("read", "jobs", "sql")


@dataclass(frozen=True)
class ApiKey:
    name: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]
    authenticated: bool


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


GATEWAY_PREFIX = "apigw:"


def parse_api_keys(raw: str) -> dict[str, ApiKey]:
    """API_KEYS JSON → {lookup id: ApiKey}. A list of {name, scopes} entries, each naming its key either by
    `sha256` (hex digest of the key) or by `apiGatewayKeyId` (the id of an API Gateway API key: behind a
    REST API that requires keys, the gateway has checked the key and tells the function its id); or an
    object {sha256: {name, scopes}}."""
    data = json.loads(raw)
    entries: list[dict[str, Any]]
    if isinstance(data, dict):
        entries = [{**(v or {}), "sha256": k} for k, v in data.items()]
    elif isinstance(data, list):
        entries = data
    else:
        raise TypeError("API_KEYS must be a JSON list or object")
    keys: dict[str, ApiKey] = {}
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise TypeError(f"API_KEYS entry {i}: expected an object")
        gateway_id = str(e.get("apiGatewayKeyId") or "").strip()
        digest = str(e.get("sha256") or "").lower()
        if bool(gateway_id) == bool(digest):
            raise ValueError(f"API_KEYS entry {i}: give either sha256 or apiGatewayKeyId")
        if digest and (len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest)):
            raise ValueError(f"API_KEYS entry {i}: sha256 must be a 64-character hex digest")
        scopes = frozenset(e.get("scopes") or ["read"])
        unknown = scopes - set(SCOPES)
        if unknown:
            raise ValueError(f"API_KEYS entry {i}: unknown scopes {sorted(unknown)}; valid: {', '.join(SCOPES)}")
        keys[GATEWAY_PREFIX + gateway_id if gateway_id else digest] = ApiKey(
            name=str(e.get("name") or f"key-{i}"), scopes=scopes)
    return keys


def gateway_key_id(request: Request) -> str | None:
    """The API Gateway API key id of a REST API (v1) request, set by the gateway (never by the caller) and
    handed over by Mangum in the ASGI scope; None elsewhere (uvicorn, HTTP APIs)."""
    event = request.scope.get("aws.event")
    if not isinstance(event, dict):
        return None
    identity = (event.get("requestContext") or {}).get("identity") or {}
    key_id = identity.get("apiKeyId")
    return str(key_id) if key_id else None


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
    result_cache: ResultCache = field(init=False)

    def __post_init__(self) -> None:
        self.result_cache = ResultCache(lambda: self.client("dynamodb"), self.settings.jobs_table,
                                        ttl_seconds=self.api.cache_ttl_seconds,
                                        memory_bytes=self.api.memory_cache_bytes)

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
        return self._once(self._clients, service, lambda: aws_client(service, self.settings))

    @property
    def jobs(self) -> JobsStore:
        return JobsStore(self.client("dynamodb"), self.settings.jobs_table)

    @property
    def dagster(self) -> DagsterClient:
        return DagsterClient(self.settings.dagster_url, location=self.api.dagster_location,
                             repository=self.api.dagster_repository, timeout=self.api.dagster_timeout_seconds)

    # PostgreSQL --------------------------------------------------------------------------------------
    def pool(self, which: str) -> Any:
        """A small connection pool for the reader (analytics queries) or the writer (ingest registry)."""
        return self._once(self._pools, which, lambda: self._new_pool(which))

    def _new_pool(self, which: str) -> Any:
        from psycopg_pool import ConnectionPool

        reader = which == "reader"
        url = self.settings.readonly_database_url if reader else self.settings.database_url
        # The writer's connections are autocommit: its routes open transactions explicitly.
        return ConnectionPool(url, min_size=0, max_size=self.api.db_pool_max_size, open=True,
                              timeout=self.api.db_pool_timeout_seconds,
                              kwargs={"application_name": f"canonical-api-{which}", "connect_timeout": 5,
                                      "autocommit": not reader},
                              check=ConnectionPool.check_connection, name=f"api-{which}")

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
        cache key), so the cached path runs without a worker thread. One round trip: autocommit, and no
        check on checkout — a connection that died meanwhile fails this request with a 503 and has the
        pool check its idle ones, so the next request finds live connections."""
        from psycopg_pool import PoolTimeout

        pool = await self._version_pool()
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
                self.settings.database_url, min_size=0, max_size=4, open=False,
                timeout=self.api.db_pool_timeout_seconds, name="api-version",
                kwargs={"application_name": "canonical-api-version", "connect_timeout": 5, "autocommit": True})
            self._async_pool_loop = loop
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
                        SecretId=self.api.api_keys_secret_arn)["SecretString"]
                except (ClientError, BotoCoreError) as exc:
                    log.warning("API keys secret unreadable: %s", exc)
                    raise ApiProblem(503, "auth_unavailable", "API keys cannot be checked at the moment; retry "
                                     "shortly", title="Authentication unavailable", error_type="ServiceUnavailable",
                                     headers={"Retry-After": "5"}) from None
            if not raw and not self.api.api_keys_secret_arn:
                return None
            try:
                # A configured secret that is empty still means "keys are on": nobody gets in.
                self._keys = parse_api_keys(raw or "[]")
            except (ValueError, TypeError) as exc:  # fail closed, and say why in the log
                log.error("API keys are misconfigured: %s", exc)
                raise ApiProblem(503, "auth_unavailable", "API keys cannot be checked: their configuration is "
                                 "invalid (the server log says why)", title="Authentication unavailable",
                                 error_type="ServiceUnavailable", headers={"Retry-After": "30"}) from None
        return self._keys


def db_unavailable() -> ApiProblem:
    return ApiProblem(503, "database_unavailable", "the database is unavailable at the moment; retry shortly",
                      title="Database unavailable", error_type="DatabaseUnavailable", headers={"Retry-After": "5"},
                      suggestions=["Retry after a few seconds", "GET /health shows which dependency is down"])


async def get_state(request: Request) -> AppState:
    return request.app.state.ctx


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key (scopes: read, jobs, sql)")
_bearer = HTTPBearer(auto_error=False, description="The same API key as a bearer token")


async def get_principal(
    request: Request,
    state: Annotated[AppState, Depends(get_state)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    keys = state.api_keys()
    if keys is None:  # authentication off: the documented local default
        return Principal("anonymous", frozenset(SCOPES), authenticated=False)
    gateway_id = gateway_key_id(request)
    if gateway_id and (by_gateway := keys.get(GATEWAY_PREFIX + gateway_id)) is not None:
        return Principal(by_gateway.name, by_gateway.scopes, authenticated=True)
    presented = api_key or (bearer.credentials if bearer else None)
    if presented:
        found = keys.get(hash_key(presented))
        if found is None:
            raise ApiProblem(401, "invalid_api_key", "the API key is not valid", title="Authentication required",
                             error_type="AuthenticationError", headers={"WWW-Authenticate": 'Bearer realm="api"'},
                             suggestions=["Send a valid key in the X-API-Key header"])
        return Principal(found.name, found.scopes, authenticated=True)
    anonymous = frozenset(s.strip() for s in state.api.api_anonymous_scopes.split(",") if s.strip())
    return Principal("anonymous", anonymous, authenticated=False)


def require(principal: Principal, scope: str) -> None:
    if scope in principal.scopes:
        return
    if not principal.authenticated:
        raise ApiProblem(401, "authentication_required", f"this request needs an API key with the {scope!r} scope",
                         title="Authentication required", error_type="AuthenticationError",
                         headers={"WWW-Authenticate": 'Bearer realm="api"'},
                         suggestions=["Send an API key in the X-API-Key header"])
    raise ApiProblem(403, "insufficient_scope", f"the API key {principal.name!r} lacks the {scope!r} scope",
                     title="Forbidden", error_type="AuthorizationError",
                     suggestions=[f"Use a key with the {scope!r} scope"])


def scope(name: str) -> Any:
    """Dependency: the caller must hold `name` (use the aliases below in signatures)."""

    async def _check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        require(principal, name)
        return principal

    return Depends(_check)


State = Annotated[AppState, Depends(get_state)]
ReadScope = Annotated[Principal, scope("read")]
JobsScope = Annotated[Principal, scope("jobs")]
