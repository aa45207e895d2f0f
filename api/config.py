"""REST-only settings, read from the environment (the platform-wide ones are in resources.settings).

Dagster-free. Every field can be set by the environment variable named in its alias.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from resources.clients.results_store import RESPONSE_BODY, InlineBudget


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    # API keys: JSON list of {"name", "sha256" (hex digest of the key), "scopes": [read, jobs, sql]}, or an
    # object {"<sha256>": {"name", "scopes"}}. API_KEYS_SECRET_ARN names a Secrets Manager secret holding
    # the same JSON (read once per process). With neither set, authentication is off: every caller has every
    # scope (the local default, `make dev`). With keys configured, a caller without a key gets
    # API_ANONYMOUS_SCOPES (default: none → 401).
    api_keys: str | None = Field(default=None, alias="API_KEYS")
    api_keys_secret_arn: str | None = Field(default=None, alias="API_KEYS_SECRET_ARN")
    api_anonymous_scopes: str = Field(default="", alias="API_ANONYMOUS_SCOPES")
    # Comma-separated origins allowed by CORS; "*" (any, the old API's answer) unless configured; empty: no
    # CORS headers.
    cors_origins: str = Field(default="*", alias="API_CORS_ORIGINS")
    max_body_bytes: int = Field(default=1_048_576, alias="API_MAX_BODY_BYTES", ge=1)

    # Synchronous analytics: time budget (API Gateway stops at 29 s), row cap, inline limits (the response
    # body's budget, resources.clients.results_store.RESPONSE_BODY, unless configured).
    sync_timeout_seconds: float = Field(default=20.0, alias="API_SYNC_TIMEOUT_SECONDS", gt=0, le=300)
    sync_max_rows: int = Field(default=100_000, alias="API_SYNC_MAX_ROWS", ge=1, le=1_000_000)
    inline_max_rows: int = Field(default=RESPONSE_BODY.max_rows, alias="API_INLINE_MAX_ROWS", ge=0)
    inline_max_bytes: int = Field(default=RESPONSE_BODY.max_bytes, alias="API_INLINE_MAX_BYTES", ge=0)
    presign_seconds: int = Field(default=3600, alias="API_PRESIGN_SECONDS", ge=60, le=7 * 24 * 3600)
    # GET /download/{key}: JSON results up to this size come back in the response; larger ones (and CSV)
    # redirect to a presigned URL (a Lambda response stops at 6 MB).
    download_inline_max_bytes: int = Field(
        default=5 * 1024 * 1024, alias="API_DOWNLOAD_INLINE_MAX_BYTES", ge=0
    )

    # Result cache in the jobs table (items CACHE#<hash>); 0 disables it.
    cache_ttl_seconds: int = Field(default=3600, alias="API_CACHE_TTL_SECONDS", ge=0)
    # Bytes of results each process also keeps in memory in front of DynamoDB (LRU); 0 turns that tier off.
    memory_cache_bytes: int = Field(default=64 * 1024 * 1024, alias="API_MEMORY_CACHE_BYTES", ge=0)
    # Dagster: where analytics_job lives.
    dagster_location: str = Field(default="canonical_pipeline", alias="DAGSTER_LOCATION_NAME")
    dagster_repository: str = Field(default="__repository__", alias="DAGSTER_REPOSITORY_NAME")
    dagster_timeout_seconds: float = Field(default=10.0, alias="DAGSTER_TIMEOUT_SECONDS", gt=0)
    # DELETE /analytics/jobs/{id} on a run that is still starting: how long to keep asking Dagster.
    cancel_wait_seconds: float = Field(default=5.0, alias="API_CANCEL_WAIT_SECONDS", ge=0, le=20)
    db_pool_timeout_seconds: float = Field(default=5.0, alias="API_DB_POOL_TIMEOUT_SECONDS", gt=0)
    # On AWS: connect through RDS Proxy with IAM auth tokens instead of passwords (resources/clients/db_iam.py).
    db_iam_auth: bool = Field(default=False, alias="DATABASE_IAM_AUTH")
    db_pool_max_size: int = Field(default=8, alias="API_DB_POOL_MAX_SIZE", ge=1)
    health_timeout_seconds: float = Field(default=3.0, alias="API_HEALTH_TIMEOUT_SECONDS", gt=0)

    def inline_budget(self) -> InlineBudget:
        """How large a synchronous answer may be and still travel in the response body."""
        return InlineBudget(max_rows=self.inline_max_rows, max_bytes=self.inline_max_bytes)

    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]
