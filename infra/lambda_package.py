"""Build the API Lambda package: dist/lambda.zip (and the unzipped folder dist/lambda/).

From the locked dependencies (uv.lock, dependency group `lambda`: the REST app's imports, never
dagster), installed as binary wheels for the Lambda runtime's platform (Linux x86_64, CPython 3.12,
glibc 2.28+) without Docker, plus the project's `api/` and the dagster-free modules of `resources/`.
Fails if the zip would exceed Lambda's 50 MB direct-upload limit.

    python infra/lambda_package.py [--python-version 3.12] [--out dist]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_ZIP_BYTES = 50 * 1024 * 1024
PLATFORM = "x86_64-manylinux_2_28"
# Modules of resources/ the API never imports: the Dagster resources (they import dagster), the
# schema migrations (run by the db-setup task, never by the API) and the entity-resolution engine (pandas,
# DuckDB and Splink, none of which the Lambda carries; it runs in the pipeline).
EXCLUDED_RESOURCES = {"dagster_resources.py", "schema", "resolution"}
# Fixed timestamp: the same inputs give the same zip (CDK's asset hash stays put).
ZIP_DATE = (2020, 1, 1, 0, 0, 0)


def _uv() -> str:
    found = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    if not Path(found).exists():
        sys.exit("uv not found: run `make install` first")
    return found


def build(out: Path, python_version: str) -> Path:
    uv = _uv()
    folder = out / "lambda"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        reqs = Path(tmp) / "requirements.txt"
        subprocess.run(
            [
                uv,
                "export",
                "--frozen",
                "--only-group",
                "lambda",
                "--no-emit-project",
                "--no-hashes",
                "--format",
                "requirements-txt",
                "-o",
                str(reqs),
            ],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(folder),
                "--python-platform",
                PLATFORM,
                "--python-version",
                python_version,
                "--only-binary",
                ":all:",
                "-r",
                str(reqs),
            ],
            check=True,
            cwd=ROOT,
        )
    shutil.copytree(ROOT / "api", folder / "api", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(
        ROOT / "resources",
        folder / "resources",
        ignore=shutil.ignore_patterns("__pycache__", *EXCLUDED_RESOURCES),
    )
    # The Lambda runtime ships its own boto3 but an older one; ours is pinned with the rest. Byte-code
    # caches are rebuilt by the runtime; tests and type stubs are dead weight.
    for junk in list(folder.rglob("__pycache__")) + list(folder.glob("*/tests")):
        shutil.rmtree(junk, ignore_errors=True)

    zip_path = out / "lambda.zip"
    zip_path.unlink(missing_ok=True)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(str(path.relative_to(folder)), ZIP_DATE)
            info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes(), compresslevel=9)
    size = zip_path.stat().st_size
    print(
        f"{zip_path}: {size / 1e6:.1f} MB zipped "
        f"({sum(p.stat().st_size for p in folder.rglob('*') if p.is_file()) / 1e6:.1f} MB unzipped), "
        f"handler api.lambda_handler.handler, python{python_version} x86_64"
    )
    if size > MAX_ZIP_BYTES:
        sys.exit(f"{zip_path} is {size / 1e6:.1f} MB: over Lambda's 50 MB direct-upload limit")
    return zip_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python-version", default="3.12", help="the Lambda runtime's Python (default 3.12)")
    ap.add_argument("--out", type=Path, default=ROOT / "dist")
    args = ap.parse_args()
    build(args.out, args.python_version)


if __name__ == "__main__":
    main()
