"""Ingest status endpoints, API keys and scopes, CORS, and the Lambda handler with real API Gateway events."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import httpx
import psycopg
import pytest

from api.auth import hash_key
from resources.ingest.registry import FileObject, register_files
from tests.api.conftest import make_client
from tests.support.ingest import live_loader, q1

pytestmark = pytest.mark.integration


def _register(api, *keys: str) -> None:
    with psycopg.connect(api.stack.pg.writer_url) as conn:
        register_files(conn, [FileObject(k, f"etag-{i}", 100) for i, k in enumerate(keys)], via="listing")
        conn.execute(
            "UPDATE ingest.files SET status = 'loaded', received = 3, inserted = 2, rejected = 1 "
            "WHERE s3_key = 'crm-data/a.json'"
        )
        fid = conn.execute(
            "SELECT file_id, attempt FROM ingest.files WHERE s3_key = 'crm-data/a.json'"
        ).fetchone()
        conn.execute(
            """INSERT INTO ingest.rejected_records (file_id, attempt, record_index, source_id, reasons, record)
                        VALUES (%s, %s, 2, 'X9', '["missing name"]', '{"id": "X9"}')""",
            fid,
        )


def test_ingest_files_filter_page_and_detail(api):
    _register(api, "crm-data/a.json", "erp-data/b.json", "crm-data/c.json", "other/z.json")
    resp = api.get("/ingest/files", params={"limit": 2})
    assert resp.status_code == 200, resp.text
    page1 = resp.json()
    assert [f["key"] for f in page1["data"]] == ["other/z.json", "crm-data/c.json"]
    page2 = api.get("/ingest/files", params={"limit": 2, "cursor": page1["metadata"]["nextCursor"]}).json()
    assert [f["key"] for f in page2["data"]] == ["erp-data/b.json", "crm-data/a.json"]
    assert page2["metadata"]["nextCursor"] is None
    assert {f["key"] for f in api.get("/ingest/files?source=crm").json()["data"]} == {
        "crm-data/a.json",
        "crm-data/c.json",
    }
    assert [f["key"] for f in api.get("/ingest/files?status=skipped").json()["data"]] == ["other/z.json"]
    assert api.get("/ingest/files?since=2999-01-01T00:00:00Z").json()["data"] == []
    assert api.get("/ingest/files?status=bogus").status_code == 422
    # a cursor past PostgreSQL's bigint is a 422 naming the field, not a 500 from the database
    past = api.get("/ingest/files", params={"cursor": 2**70})
    assert past.status_code == 422 and "cursor" in past.text
    detail = api.get("/ingest/files/crm-data/a.json").json()
    assert detail["file"]["counts"]["inserted"] == 2 and detail["file"]["status"] == "loaded"
    assert detail["rejectedSample"] == [
        {"recordIndex": 2, "sourceId": "X9", "reasons": ["missing name"], "record": {"id": "X9"}}
    ]
    assert api.get("/ingest/files/crm-data/none.json").status_code == 404


def test_reprocess(api):
    _register(api, "crm-data/a.json", "crm-data/c.json")
    resp = api.post("/ingest/files/crm-data/a.json/reprocess")
    assert resp.status_code == 202, resp.text
    assert resp.json()["file"]["status"] == "pending" and resp.json()["file"]["attempt"] == 2
    assert api.post("/ingest/files/crm-data/nope.json/reprocess").status_code == 404
    c_id = q1(api.stack.pg.writer_url, "SELECT file_id FROM ingest.files WHERE s3_key = 'crm-data/c.json'")
    with live_loader(api.stack.pg.writer_url, c_id):
        resp = api.post("/ingest/files/crm-data/c.json/reprocess")
        assert resp.status_code == 409 and resp.json()["error"]["code"] == "file_busy"
    # The loader gone, the file is failed for it and may be reprocessed; its history says why.
    resp = api.post("/ingest/files/crm-data/c.json/reprocess")
    assert resp.status_code == 202 and resp.json()["file"]["attemptCause"] == "reprocess"
    [ended] = api.get("/ingest/files/crm-data/c.json").json()["attempts"]
    assert ended["outcome"] == "failed" and ended["failureKind"] == "infrastructure"
    assert ended["reason"] == "its loader ended without finishing; nothing of it landed"


def test_release_applies_only_a_held_snapshot(api):
    _register(api, "crm-data/a.json", "crm-data/h.json")
    url = api.stack.pg.writer_url
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE ingest.files SET status = 'held', reason = 'would retire 50%' WHERE s3_key = 'crm-data/h.json'"
        )
    resp = api.post("/ingest/files/crm-data/h.json/release")
    assert resp.status_code == 202, resp.text
    file = resp.json()["file"]
    assert (file["status"], file["attempt"], file["attemptCause"]) == ("pending", 2, "release")
    assert q1(url, "SELECT retire_released FROM ingest.files WHERE s3_key = 'crm-data/h.json'") is True
    [held] = api.get("/ingest/files/crm-data/h.json").json()["attempts"]
    assert (held["outcome"], held["reason"]) == ("held", "would retire 50%")
    # Pending now, not held: nothing to release; an unknown key is not found.
    resp = api.post("/ingest/files/crm-data/h.json/release")
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "file_not_held"
    assert api.post("/ingest/files/crm-data/nope.json/release").status_code == 404


def test_presigned_upload_lands_in_the_raw_bucket(api):
    resp = api.post("/ingest/uploads", json={"source": "erp", "filename": "accounts.json"})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["key"] == "erp-data/accounts.json"
    assert httpx.put(body["url"], content=b'{"records": []}').status_code == 200
    obj = api.stack.client("s3").get_object(
        Bucket=api.stack.settings.raw_bucket, Key="erp-data/accounts.json"
    )
    assert obj["Body"].read() == b'{"records": []}'
    assert (
        api.post("/ingest/uploads", json={"source": "erp", "filename": "../../etc/passwd"}).status_code == 422
    )
    assert api.post("/ingest/uploads", json={"source": "hr", "filename": "a.json"}).status_code == 422


KEYS = json.dumps(
    [
        {"name": "reader", "sha256": hash_key("r-key"), "scopes": ["read"]},
        {"name": "ops", "sha256": hash_key("o-key"), "scopes": ["read", "jobs"]},
        {"name": "analyst", "sha256": hash_key("s-key"), "scopes": ["read", "sql"]},
    ]
)


def test_api_keys_and_scopes(stack, fake_dagster):
    custom = {"operation": "custom_complex_query", "parameters": {"query": "SELECT 1 AS one"}}
    with make_client(stack, fake_dagster.url, API_KEYS=KEYS) as client:
        resp = client.get("/analytics?operation=simple_demo")
        assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Bearer")
        assert resp.json()["error"]["code"] == "authentication_required"
        assert (
            client.get("/analytics?operation=simple_demo", headers={"X-API-Key": "wrong"}).status_code == 401
        )
        assert (
            client.get("/analytics?operation=simple_demo", headers={"X-API-Key": "r-key"}).status_code == 200
        )
        assert (
            client.get(
                "/analytics?operation=simple_demo", headers={"Authorization": "Bearer r-key"}
            ).status_code
            == 200
        )
        resp = client.post("/analytics", json=custom, headers={"X-API-Key": "r-key"})
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "insufficient_scope"
        assert client.post("/analytics", json=custom, headers={"X-API-Key": "s-key"}).status_code == 200
        assert (
            client.post(
                "/analytics/jobs", json={"operation": "simple_demo"}, headers={"X-API-Key": "r-key"}
            ).status_code
            == 403
        )
        assert (
            client.post(
                "/analytics/jobs", json={"operation": "simple_demo"}, headers={"X-API-Key": "o-key"}
            ).status_code
            == 202
        )
        assert client.post("/analytics/jobs", json=custom, headers={"X-API-Key": "o-key"}).status_code == 403
        assert client.get("/health").status_code == 200  # health needs no key


def test_api_keys_from_secrets_manager(stack, fake_dagster):
    sm = stack.client("secretsmanager")
    arn = sm.create_secret(Name=f"api-keys-{stack.settings.jobs_table}", SecretString=KEYS)["ARN"]
    with make_client(stack, fake_dagster.url, API_KEYS_SECRET_ARN=arn) as client:
        assert client.get("/analytics/operations").status_code == 401
        assert client.get("/analytics/operations", headers={"X-API-Key": "r-key"}).status_code == 200


def test_keys_configured_but_empty_lock_the_api_rather_than_open_it(stack, fake_dagster):
    with make_client(stack, fake_dagster.url, API_KEYS="[]") as client:
        assert client.get("/analytics/operations").status_code == 401
        assert client.get("/analytics/operations", headers={"X-API-Key": "anything"}).status_code == 401


def test_an_unreadable_keys_secret_is_a_503_not_a_500(stack, fake_dagster):
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:no-such-secret-AbCdEf"
    with make_client(stack, fake_dagster.url, API_KEYS_SECRET_ARN=missing) as client:
        resp = client.get("/analytics/operations")
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "auth_unavailable"
        assert resp.headers["retry-after"] == "5"


def test_misconfigured_keys_fail_closed_with_a_503(stack, fake_dagster):
    with make_client(stack, fake_dagster.url, API_KEYS='[{"name": "x"}]') as client:  # neither sha256 nor id
        resp = client.get("/analytics/operations", headers={"X-API-Key": "anything"})
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "auth_unavailable"
        assert "sha256" not in resp.text  # the reason is in the server log, not in the response


def test_an_empty_keys_secret_locks_the_api(stack, fake_dagster):
    sm = stack.client("secretsmanager")
    arn = sm.create_secret(Name=f"api-keys-empty-{stack.settings.jobs_table}", SecretString="[]")["ARN"]
    with make_client(stack, fake_dagster.url, API_KEYS_SECRET_ARN=arn) as client:
        assert client.get("/analytics/operations").status_code == 401


@pytest.mark.parametrize(
    "entries, message",
    [
        ([{"name": "x", "scopes": ["read"]}], "either sha256 or apiGatewayKeyId"),
        ([{"sha256": hash_key("k"), "apiGatewayKeyId": "abc"}], "either sha256 or apiGatewayKeyId"),
        ([{"sha256": "beef"}], "64-character hex digest"),
        ([{"apiGatewayKeyId": "abc", "scopes": ["admin"]}], "unknown scopes"),
    ],
)
def test_malformed_key_entries_are_refused_with_the_reason(entries, message):
    from api.auth import parse_api_keys

    with pytest.raises((ValueError, TypeError), match=message):
        parse_api_keys(json.dumps(entries))


def test_cors_origins_from_settings(stack, fake_dagster):
    with make_client(stack, fake_dagster.url, API_CORS_ORIGINS="https://dash.example") as client:
        resp = client.options(
            "/analytics", headers={"Origin": "https://dash.example", "Access-Control-Request-Method": "POST"}
        )
        assert resp.headers["access-control-allow-origin"] == "https://dash.example"
        resp = client.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in resp.headers


def test_importing_the_lambda_handler_imports_neither_dagster_nor_pandas(stack):
    code = (
        "import sys, api.lambda_handler as h; assert callable(h.handler); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('dagster', 'pandas', 'dagster_graphql')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]),
    )
    assert out.returncode == 0, out.stdout + out.stderr


def _v1(method: str, path: str, query: dict | None = None, body: str | None = None) -> dict:
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": {
            "Host": "abc123.execute-api.us-east-1.amazonaws.com",
            "Content-Type": "application/json",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Port": "443",
        },
        "multiValueHeaders": {
            "Host": ["abc123.execute-api.us-east-1.amazonaws.com"],
            "Content-Type": ["application/json"],
        },
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/prod{path}",
            "stage": "prod",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "curl/8.0"},
            "accountId": "123456789012",
            "apiId": "abc123",
            "protocol": "HTTP/1.1",
        },
        "body": body,
        "isBase64Encoded": False,
    }


def _v2(method: str, path: str, query: str = "", body: str | None = None) -> dict:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {
            "host": "abc123.execute-api.us-east-1.amazonaws.com",
            "content-type": "application/json",
            "x-forwarded-proto": "https",
            "x-forwarded-port": "443",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "curl/8.0",
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "10/Mar/2025:00:03:16 +0000",
            "timeEpoch": 1741565000000,
        },
        "body": base64.b64encode(body.encode()).decode() if body else None,
        "isBase64Encoded": bool(body),
    }


class _Ctx:
    function_name = "api"
    aws_request_id = "req-1"


def test_lambda_handler_serves_api_gateway_v1_and_v2_events(api):
    from api.lambda_handler import make_handler

    handler = make_handler(api.client.app)
    out = handler(_v1("GET", "/analytics", {"operation": "simple_demo"}), _Ctx())
    assert out["statusCode"] == 200, out
    assert json.loads(out["body"])["success"] is True
    hdrs = {k.lower(): v for k, v in (out.get("headers") or {}).items()}
    hdrs.update({k.lower(): v[0] for k, v in (out.get("multiValueHeaders") or {}).items()})
    assert hdrs["x-request-id"] and hdrs["x-cache"] == "MISS"

    out = handler(_v2("POST", "/analytics", body=json.dumps({"operation": "invalid_operation"})), _Ctx())
    assert out["statusCode"] == 404
    assert out["headers"]["content-type"] == "application/problem+json" and not out["isBase64Encoded"]
    assert json.loads(out["body"])["success"] is False

    out = handler(_v2("GET", "/analytics", "operation=count_analysis&group_by=industry"), _Ctx())
    assert out["statusCode"] == 200 and json.loads(out["body"])["metadata"]["parameters"] == {
        "group_by": "industry",
        "include_deleted": False,
        "entity_scope": "source",
    }

    out = handler(_v1("GET", "/nope"), _Ctx())
    assert out["statusCode"] == 404 and json.loads(out["body"])["error"]["code"] == "not_found"


def test_behind_a_rest_api_the_gateway_key_id_carries_the_scopes(stack, fake_dagster):
    """API Gateway checks the key and puts its id in the event; the keys secret gives that id scopes."""
    from api.lambda_handler import make_handler

    keys = json.dumps(
        [
            {"name": "dashboard", "apiGatewayKeyId": "k1a2b3", "scopes": ["read"]},
            {"name": "analyst", "apiGatewayKeyId": "k9z8y7", "scopes": ["read", "sql"]},
        ]
    )
    custom = json.dumps({"operation": "custom_complex_query", "parameters": {"query": "SELECT 1 AS one"}})

    def event(method: str, path: str, key_id: str | None, query: dict | None = None, body: str | None = None):
        e = _v1(method, path, query, body)
        e["headers"]["X-API-Key"] = "the-gateway-key-value"  # what the client sent; the gateway checked it
        if key_id:
            e["requestContext"]["identity"]["apiKeyId"] = key_id
        return e

    with make_client(stack, fake_dagster.url, API_KEYS=keys) as client:
        handler = make_handler(client.app)
        assert handler(event("GET", "/analytics/operations", "k1a2b3"), _Ctx())["statusCode"] == 200
        out = handler(event("POST", "/analytics", "k1a2b3", body=custom), _Ctx())
        assert out["statusCode"] == 403 and json.loads(out["body"])["error"]["code"] == "insufficient_scope"
        assert handler(event("POST", "/analytics", "k9z8y7", body=custom), _Ctx())["statusCode"] == 200
        # a key id the secret does not know, or none at all: the key itself is not a known one either
        assert handler(event("GET", "/analytics/operations", "unknown"), _Ctx())["statusCode"] == 401
        assert handler(event("GET", "/analytics/operations", None), _Ctx())["statusCode"] == 401
        # under uvicorn there is no gateway: the header alone proves nothing
        assert client.get("/analytics/operations", headers={"X-API-Key": "k1a2b3"}).status_code == 401
