"""What the routes depend on: settings, database, AWS clients, Dagster client, the caller's scopes.

One `AppState` per app (built by `create_app`, kept on `app.state.ctx`): clients are built once and
reused (boto3 clients are thread-safe; sessions are not, so each client comes from its own session).
Dagster-free.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.config import ApiSettings
from api.dagster_client import DagsterClient
from api.problems import ApiProblem
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


def parse_api_keys(raw: str) -> dict[str, ApiKey]:
    """API_KEYS JSON → {sha256 hex: ApiKey}. Accepts a list of {name, sha256, scopes} or {sha256: {...}}."""
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
        digest = str(e.get("sha256", "")).lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"API_KEYS entry {i}: sha256 must be a 64-character hex digest")
        scopes = frozenset(e.get("scopes") or ["read"])
        unknown = scopes - set(SCOPES)
        if unknown:
            raise ValueError(f"API_KEYS entry {i}: unknown scopes {sorted(unknown)}; valid: {', '.join(SCOPES)}")
        keys[digest] = ApiKey(name=str(e.get("name") or f"key-{i}"), scopes=scopes)
    return keys


@dataclass
class AppState:
    settings: Settings
    api: ApiSettings
    _clients: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _keys: dict[str, ApiKey] | None = None
    _pools: dict[str, Any] = field(default_factory=dict)

    # AWS ---------------------------------------------------------------------------------------------
    def client(self, service: str) -> Any:
        c = self._clients.get(service)
        if c is None:
            with self._lock:
                c = self._clients.get(service)
                if c is None:
                    c = self._clients[service] = aws_client(service, self.settings)
        return c

    @property
    def jobs(self) -> JobsStore:
        return JobsStore(self.client("dynamodb"), self.settings.jobs_table)

    @property
    def dagster(self) -> DagsterClient:
        return DagsterClient(self.settings.dagster_url, location=self.api.dagster_location,
                             repository=self.api.dagster_repository, timeout=self.api.dagster_timeout_seconds)

    # PostgreSQL --------------------------------------------------------------------------------------
    def pool(self, which: str) -> Any:
        """A small connection pool for the reader (analytics) or writer (ingest registry, data version)."""
        p = self._pools.get(which)
        if p is None:
            from psycopg_pool import ConnectionPool

            with self._lock:
                p = self._pools.get(which)
                if p is None:
                    url = self.settings.readonly_database_url if which == "reader" else self.settings.database_url
                    p = ConnectionPool(url, min_size=0, max_size=self.api.db_pool_max_size, open=True,
                                       timeout=self.api.db_pool_timeout_seconds,
                                       kwargs={"application_name": f"canonical-api-{which}", "connect_timeout": 5},
                                       check=ConnectionPool.check_connection, name=f"api-{which}")
                    self._pools[which] = p
        return p

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

    def close(self) -> None:
        for p in self._pools.values():
            p.close()
        self._pools.clear()

    # Auth --------------------------------------------------------------------------------------------
    def api_keys(self) -> dict[str, ApiKey]:
        if self._keys is None:
            raw = self.api.api_keys
            if not raw and self.api.api_keys_secret_arn:
                raw = self.client("secretsmanager").get_secret_value(
                    SecretId=self.api.api_keys_secret_arn)["SecretString"]
            self._keys = parse_api_keys(raw) if raw else {}
        return self._keys


def db_unavailable() -> ApiProblem:
    return ApiProblem(503, "database_unavailable", "the database is unavailable at the moment; retry shortly",
                      title="Database unavailable", error_type="DatabaseUnavailable", headers={"Retry-After": "5"},
                      suggestions=["Retry after a few seconds", "GET /health shows which dependency is down"])


def get_state(request: Request) -> AppState:
    return request.app.state.ctx


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key (scopes: read, jobs, sql)")
_bearer = HTTPBearer(auto_error=False, description="The same API key as a bearer token")


def get_principal(
    state: Annotated[AppState, Depends(get_state)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    keys = state.api_keys()
    if not keys:  # authentication off: the documented local default
        return Principal("anonymous", frozenset(SCOPES), authenticated=False)
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

    def _check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        require(principal, name)
        return principal

    return Depends(_check)


State = Annotated[AppState, Depends(get_state)]
ReadScope = Annotated[Principal, scope("read")]
JobsScope = Annotated[Principal, scope("jobs")]
