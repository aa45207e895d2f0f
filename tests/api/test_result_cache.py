"""api.result_cache.ResultCache: two tiers, one expiry, bounded memory, and DynamoDB trouble reads as a miss.

Unit tests: DynamoDB is moto's in-process mock here; the API tests drive the same cache over moto server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from api import result_cache
from api.result_cache import CACHE_MAX_ITEM_BYTES, ResultCache

TABLE = "jobs"


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "PK", "AttributeType": "S"},
                {"AttributeName": "SK", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "PK", "KeyType": "HASH"},
                {"AttributeName": "SK", "KeyType": "RANGE"},
            ],
        )
        yield client


class Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1_000_000.0
        monkeypatch.setattr(result_cache.time, "time", lambda: self.now)


def payload(n: int = 1, pad: int = 0) -> dict[str, Any]:
    return {"operation": "count_analysis", "data": [{"n": n, "pad": "x" * pad}]}


def test_a_put_answer_comes_back_from_memory_then_from_dynamodb_in_a_new_process(ddb: Any) -> None:
    cache = ResultCache(lambda: ddb, TABLE, ttl_seconds=60, memory_bytes=1_000_000)
    assert cache.get("k") is None
    cache.put("k", payload())
    assert cache.get("k") == (payload(), "memory")
    fresh = ResultCache(lambda: ddb, TABLE, ttl_seconds=60, memory_bytes=1_000_000)
    assert fresh.get("k") == (payload(), "dynamodb")
    assert fresh.get("k") == (payload(), "memory")


def test_both_tiers_expire_at_the_items_expiry(ddb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    cache = ResultCache(lambda: ddb, TABLE, ttl_seconds=60, memory_bytes=1_000_000)
    cache.put("k", payload())
    clock.now += 59
    assert cache.get("k") == (payload(), "memory")
    other = ResultCache(lambda: ddb, TABLE, ttl_seconds=60, memory_bytes=1_000_000)
    assert other.get("k") == (payload(), "dynamodb")  # learns the item's expiry, not a fresh 60 s
    clock.now += 2
    assert cache.get("k") is None and other.get("k") is None  # the item is still in DynamoDB, expired


def test_memory_is_bounded_in_bytes_and_evicts_the_least_recently_used(ddb: Any) -> None:
    cache = ResultCache(lambda: ddb, TABLE, ttl_seconds=60, memory_bytes=2500)
    for key in ("a", "b"):
        cache.put(key, payload(pad=1000))
    cache.get("a")  # a is now the most recently used
    cache.put("c", payload(pad=1000))
    assert cache.get("a")[1] == "memory" and cache.get("c")[1] == "memory"
    assert cache.get("b")[1] == "dynamodb"  # evicted from memory, still shared
    cache.put("big", payload(pad=3000))  # larger than the whole memory tier: DynamoDB only
    assert cache.get("big")[1] == "dynamodb"


def test_answers_too_big_for_an_item_are_not_cached(ddb: Any) -> None:
    cache = ResultCache(lambda: ddb, TABLE, ttl_seconds=60, memory_bytes=10_000_000)
    cache.put("k", payload(pad=CACHE_MAX_ITEM_BYTES))
    assert cache.get("k") is None


def test_ttl_zero_turns_the_cache_off(ddb: Any) -> None:
    cache = ResultCache(lambda: ddb, TABLE, ttl_seconds=0, memory_bytes=1_000_000)
    cache.put("k", payload())
    assert cache.get("k") is None and ddb.scan(TableName=TABLE)["Count"] == 0


class Broken:
    def get_item(self, **_: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "GetItem"
        )

    def put_item(self, **_: Any) -> Any:
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "oops"}}, "PutItem")


def test_dynamodb_errors_read_as_a_miss_and_a_failed_put_is_not_remembered() -> None:
    cache = ResultCache(Broken, TABLE, ttl_seconds=60, memory_bytes=1_000_000)
    assert cache.get("k") is None
    cache.put("k", payload())  # does not raise
    assert cache.get("k") is None  # not served from memory either: other processes could not serve it


def test_an_answer_holding_what_orjson_refuses_still_comes_back_from_dynamodb(ddb: Any) -> None:
    odd = {"operation": "custom_complex_query", "data": [{"x": float("nan"), "big": 2**70}]}
    ResultCache(lambda: ddb, TABLE, ttl_seconds=60, memory_bytes=0).put("k", odd)
    got, tier = ResultCache(lambda: ddb, TABLE, ttl_seconds=60, memory_bytes=0).get("k")
    assert tier == "dynamodb"
    assert got["data"][0]["big"] == 2**70 and got["data"][0]["x"] != got["data"][0]["x"]  # NaN
