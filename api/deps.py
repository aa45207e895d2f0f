"""What the routes depend on (FastAPI dependencies): the app state and the caller's scopes. Dagster-free."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.auth import GATEWAY_PREFIX, SCOPES, Principal, direct_invocation, gateway_key_id, hash_key, require
from api.problems import ApiProblem
from api.state import AppState


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.app_state
    return state


_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key (scopes: read, jobs, sql, steward)"
)
_bearer = HTTPBearer(auto_error=False, description="The same API key as a bearer token")


async def get_principal(
    request: Request,
    state: Annotated[AppState, Depends(get_state)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if direct_invocation(request):
        return Principal("lambda-invoke", frozenset(SCOPES), authenticated=True)
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
            raise ApiProblem(
                401,
                "invalid_api_key",
                "the API key is not valid",
                title="Authentication required",
                error_type="AuthenticationError",
                headers={"WWW-Authenticate": 'Bearer realm="api"'},
                suggestions=["Send a valid key in the X-API-Key header"],
            )
        return Principal(found.name, found.scopes, authenticated=True)
    anonymous = frozenset(s.strip() for s in state.api.api_anonymous_scopes.split(",") if s.strip())
    return Principal("anonymous", anonymous, authenticated=False)


def scope(name: str) -> Any:
    """Dependency: the caller must hold `name` (use the aliases below in signatures)."""

    async def _check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        require(principal, name)
        return principal

    return Depends(_check)


State = Annotated[AppState, Depends(get_state)]
ReadScope = Annotated[Principal, scope("read")]
JobsScope = Annotated[Principal, scope("jobs")]
StewardScope = Annotated[Principal, scope("steward")]
