# canonical-pipeline. Quick start: `make dev` (the platform, locally) and `make test`.
# Each target installs what it needs: uv into .tools/ when it is not on PATH, then the locked
# dependencies into .venv/.

SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
RUN := $(UV) run --frozen --no-sync

.PHONY: install dev test lambda-package test-unit lint bench bench-ingest bench-analytics bench-api bench-latency bench-resolution drill drill-faults screenshots clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-groups
	@touch $@

install: $(VENV)/.synced

dev: install ## The whole platform locally: PostgreSQL, moto, Dagster UI + daemon, samples ingested
	$(RUN) pipeline dev

test: install lambda-package ## Unit + integration tests (starts its own PostgreSQL and moto server)
	$(RUN) pytest -n 2 --dist loadgroup

lambda-package: install ## The API Lambda zip (dist/lambda.zip) from the locked deps, Linux x86_64, no Docker
	$(RUN) python infra/lambda_package.py

test-unit: install
	$(RUN) pytest -m "not integration"

lint: install ## ruff's rules, ruff's format, mypy (strict on resources/ and api/)
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

bench: bench-ingest bench-analytics bench-api bench-latency ## Every benchmark; figures go in README.md

bench-ingest: install ## Ingest at 1,000,000 records vs per-record upsert and dlt (bench/results.md)
	$(RUN) python -m bench.ingest_bench

bench-analytics: install ## Each catalogue operation at 100k and 1M entities (bench/analytics_results.md)
	$(RUN) python -m bench.analytics_bench

bench-api: install ## The REST API under uvicorn: latency at a fixed offered rate, throughput with 50 clients, cached vs uncached (bench/api_results.md)
	$(RUN) python -m bench.api_bench

bench-latency: install ## Upload → queryable for small files on the real local platform (bench/latency_results.md)
	$(RUN) python -m bench.latency_bench

bench-resolution: install ## Entity resolution: accuracy on labelled companies and FEBRL, 1M entities vs Splink alone, a 10k delta (bench/resolution_results.md)
	$(RUN) python -m bench.resolution_bench

drill: install ## Ordering drill on the real local platform: 8 × 100,000 and 40 × 5,000 ids (bench/drill_results.md)
	$(RUN) python -m bench.drill --files 8 --ids 100000
	$(RUN) python -m bench.drill --files 40 --ids 5000 --batch-files 10

drill-faults: install ## Fault drill on the real local platform: worker, PostgreSQL, daemon and whole-stack kills mid-load, a redelivery (bench/drill_faults_results.md)
	$(RUN) python -m bench.drill_faults

screenshots: install ## README pictures of the Dagster UI (docs/img/) from a running `make dev`; needs Debian's chromium
	$(RUN) python docs/screenshots.py

clean:
	rm -rf $(VENV) .tools .local .pytest_cache
