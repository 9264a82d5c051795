# The two commands: `make run` (Airflow with the example workflow) and `make test` (the whole suite).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= $(shell command -v python3.11 || command -v python3)

NPM_SERVERS := tests/npm/node_modules/.installed

.PHONY: run test install clean

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

test: install $(NPM_SERVERS)
	$(BIN)/python -m pytest --reliability-report=docs/reliability.md

clean:
	rm -rf .airflow .pytest_cache
