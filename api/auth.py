"""Who is calling and what they may do: API keys (hashed), API Gateway key ids, scopes. Dagster-free."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from api.problems import ApiProblem

SCOPES = ("read", "jobs", "sql", "steward")


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
            raise ValueError(
                f"API_KEYS entry {i}: unknown scopes {sorted(unknown)}; valid: {', '.join(SCOPES)}"
            )
        keys[GATEWAY_PREFIX + gateway_id if gateway_id else digest] = ApiKey(
            name=str(e.get("name") or f"key-{i}"), scopes=scopes
        )
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


# Set on the events api/lambda_handler.py builds from a direct invocation, never on one API Gateway sends (a
# client cannot add top-level keys to a gateway event).
DIRECT_INVOKE_MARK = "canonicalDirectInvoke"


def direct_invocation(request: Request) -> bool:
    """A request the Lambda handler built from a direct invocation: IAM let the invoker in."""
    event = request.scope.get("aws.event")
    return isinstance(event, dict) and event.get(DIRECT_INVOKE_MARK) is True


def require(principal: Principal, scope: str) -> None:
    if scope in principal.scopes:
        return
    if not principal.authenticated:
        raise ApiProblem(
            401,
            "authentication_required",
            f"this request needs an API key with the {scope!r} scope",
            title="Authentication required",
            error_type="AuthenticationError",
            headers={"WWW-Authenticate": 'Bearer realm="api"'},
            suggestions=["Send an API key in the X-API-Key header"],
        )
    raise ApiProblem(
        403,
        "insufficient_scope",
        f"the API key {principal.name!r} lacks the {scope!r} scope",
        title="Forbidden",
        error_type="AuthorizationError",
        suggestions=[f"Use a key with the {scope!r} scope"],
    )
