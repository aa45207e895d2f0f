"""The synchronous-analytics result cache: DynamoDB items `CACHE#<key>` in the jobs table, with an
in-process tier in front of them.

Keys are content addresses — sha256 of the operation, its canonical parameters and the data version — so
an entry can expire but never go stale: new data means a new key. That is what makes a per-process tier
safe with many processes (uvicorn workers, warm Lambda containers): none of them can hold an answer the
others would not give. Both tiers honour the same expiry (the item's `expiresAt`); the memory tier is
bounded in bytes (LRU) and only saves the DynamoDB round trip for the hottest answers.

The cache is an optimisation: DynamoDB errors read as a miss and never fail a request.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from botocore.exceptions import BotoCoreError, ClientError
from cachetools import TLRUCache

CACHE_SK = "CACHE"
CACHE_MAX_ITEM_BYTES = 350_000  # DynamoDB items stop at 400 KB
Tier = Literal["memory", "dynamodb"]


@dataclass(frozen=True)
class _Entry:
    payload: dict[str, Any]
    expires_at: float
    size: int


class ResultCache:
    def __init__(
        self, dynamodb: Callable[[], Any], table: str, *, ttl_seconds: int, memory_bytes: int
    ) -> None:
        self._dynamodb = dynamodb  # a getter: the client is built on first use, once per process
        self._table = table
        self._ttl = ttl_seconds
        self._lock = threading.Lock()  # cachetools caches are not thread-safe; sync routes run in threads
        self._memory: TLRUCache[str, _Entry] | None = None
        if ttl_seconds > 0 and memory_bytes > 0:
            self._memory = TLRUCache(
                maxsize=memory_bytes,
                ttu=lambda _k, entry, _now: entry.expires_at,
                timer=time.time,
                getsizeof=lambda entry: entry.size,
            )

    @property
    def enabled(self) -> bool:
        return self._ttl > 0

    def get(self, key: str) -> tuple[dict[str, Any], Tier] | None:
        """The cached payload and the tier that had it, or None."""
        return self.recall(key) or self.fetch(key)

    def recall(self, key: str) -> tuple[dict[str, Any], Tier] | None:
        """The memory tier alone: never blocks, so an event loop may call it."""
        if not self.enabled or self._memory is None:
            return None
        with self._lock:
            entry = self._memory.get(key)
        return (entry.payload, "memory") if entry is not None else None

    def fetch(self, key: str) -> tuple[dict[str, Any], Tier] | None:
        """The DynamoDB tier (a network call); a hit is remembered in memory."""
        if not self.enabled:
            return None
        try:
            item = (
                self._dynamodb()
                .get_item(
                    TableName=self._table,
                    Key={"PK": {"S": f"CACHE#{key}"}, "SK": {"S": CACHE_SK}},
                )
                .get("Item")
            )
        except (ClientError, BotoCoreError):
            return None
        if not item:
            return None
        try:
            expires_at = float(item["expiresAt"]["N"])
            body = item["payload"]["S"]
            payload = _parse(body)
        except (KeyError, ValueError):
            return None
        if expires_at <= time.time():  # DynamoDB deletes expired items lazily, up to days later
            return None
        self._remember(key, payload, expires_at, len(body))
        return payload, "dynamodb"

    def put(self, key: str, payload: dict[str, Any]) -> None:
        if not self.enabled:
            return
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        if len(body.encode()) > CACHE_MAX_ITEM_BYTES:
            return
        expires_at = int(time.time() + self._ttl)
        try:
            self._dynamodb().put_item(
                TableName=self._table,
                Item={
                    "PK": {"S": f"CACHE#{key}"},
                    "SK": {"S": CACHE_SK},
                    "payload": {"S": body},
                    "operation": {"S": payload["operation"]},
                    "expiresAt": {"N": str(expires_at)},
                },
            )
        except (ClientError, BotoCoreError):
            return  # not shared, so not remembered either: every process answers the same way
        self._remember(key, payload, expires_at, len(body))

    def _remember(self, key: str, payload: dict[str, Any], expires_at: float, size: int) -> None:
        if self._memory is None or size > self._memory.maxsize:
            return
        with self._lock:
            self._memory[key] = _Entry(payload, expires_at, size)


def _parse(body: str) -> Any:
    """The item's JSON: by orjson (several times faster: this runs on every DynamoDB-tier hit), else by the
    json module, which wrote it and also reads what orjson refuses (NaN, integers past 64 bits)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)
