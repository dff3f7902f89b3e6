# Everything a developer or CI needs, from a clean clone, in its own virtual environment.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The suite runs on SQLite and then on this PostgreSQL (it creates and drops its own database).
# When nothing answers there, tools/with_postgres.py starts a throwaway server from the
# installed PostgreSQL programs, or says loudly that the PostgreSQL half did not run (fails in CI).
POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
# A selection or options for pytest, e.g. PYTEST_ARGS='tests/test_health.py -x'.
PYTEST_ARGS ?=

.PHONY: demo serve test lint test-sqlite test-postgres openapi bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/.installed  ## set up, load the Warsaw demo, print keys, serve on :8000
	DISPATCH_AUTO_DISPATCH=true $(BIN)/dispatch demo

serve: $(BIN)/.installed
	$(BIN)/dispatch serve

test: lint test-sqlite test-postgres  ## lint, then the whole suite on SQLite and on PostgreSQL

lint: $(BIN)/.installed  ## ruff (lint and format check), mypy (strict, on src and tools)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/mypy

test-sqlite: $(BIN)/.installed
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-postgres: $(BIN)/.installed
	$(BIN)/python tools/with_postgres.py '$(POSTGRES_URL)' -- $(BIN)/python -m pytest -q $(PYTEST_ARGS)

openapi: $(BIN)/.installed  ## regenerate the committed spec
	$(BIN)/dispatch openapi

bench: $(BIN)/.installed
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) data .pytest_cache
