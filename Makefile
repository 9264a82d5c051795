# The two commands: `make run` (Airflow with the example workflow) and `make test` (the whole suite).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= $(shell command -v python3.11 || command -v python3)

NPM_SERVERS := tests/npm/node_modules/.installed

.PHONY: run test install lint clean

$(VENV)/.installed: requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

install: $(VENV)/.installed

run: install
	@bash examples/run.sh

# Third-party servers the tests start on loopback (tests/npm/package.json): a REST API and an OAuth2 server.
$(NPM_SERVERS): tests/npm/package.json tests/npm/package-lock.json
	cd tests/npm && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Lint, format and types (pyproject.toml). mypy sees plugins/ and dag_factory/ as they install: flowlink_airflow.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@rm -rf .typecheck && mkdir -p .typecheck/flowlink_airflow
	@for f in plugins/*; do ln -s ../../$$f .typecheck/flowlink_airflow/; done
	@ln -s ../../dag_factory .typecheck/flowlink_airflow/dag_factory
	$(BIN)/mypy

test: install lint $(NPM_SERVERS)
	$(BIN)/python -m pytest --reliability-report=docs/reliability.md

clean:
	rm -rf .airflow .pytest_cache .typecheck .mypy_cache .ruff_cache
