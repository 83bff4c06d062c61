# Set-up and checks for sessionpool. Every target installs what it needs on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test lint typecheck unit services bench bench-fleet clean sqlalchemy-suite

demo: $(STAMP)
	$(PY) -m sessionpool demo

test: $(STAMP) services lint typecheck unit

# The full stress form (32 threads x 20,000 cycles per configuration, ~2 min) runs here and in
# CI; a bare `pytest` runs its short form.
unit: $(STAMP)
	SESSIONPOOL_STRESS=full $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks tools
	$(VENV)/bin/ruff format --check src tests benchmarks tools

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# SQLAlchemy's own pool tests (pinned sdist, fetched into .venv/sqlalchemy-suite), stock and with
# sessionpool's QueuePool swapped in, printing every per-test difference. `make test` runs the
# same comparison through tests/compat/test_sqlalchemy_suite.py; this target is for reading it.
# SQLALCHEMY_SUITE_ARGS: e.g. `--version 2.1.9` or `--swap probe` (see tools/sqlalchemy_suite).
sqlalchemy-suite: $(STAMP)
	$(PY) tools/sqlalchemy_suite $(SQLALCHEMY_SUITE_ARGS)

# pgbouncer too: a tree whose venv predates it still gets it (the script is a no-op otherwise).
services:
	bash tools/ensure_system_packages.sh
	bash tools/ensure_services.sh

bench: $(BENCH_STAMP)
	$(PY) benchmarks/bench_threaded.py
	$(PY) benchmarks/bench_async.py

# 8 processes straight at PostgreSQL and through a private PgBouncer (about a minute).
bench-fleet: $(STAMP) services
	$(PY) benchmarks/bench_fleet.py

$(STAMP): pyproject.toml
	bash tools/ensure_system_packages.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $@

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
