# Every target that needs Python creates .venv first; `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HASH   := $(shell cat pyproject.toml | sha1sum | cut -c1-12)
# One stamp per extra: `make demo` installs only what the demo needs, `make test` the test tools.
STAMP      := $(VENV)/.installed-test-$(HASH)
DEMO_STAMP := $(VENV)/.installed-demo-$(HASH)
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.DEFAULT_GOAL := help
.PHONY: help install demo test test-unit test-broker chaos bench lint lint-imports typecheck check-deploy clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(PIP) --upgrade pip
	$(PIP) -e '.[test]'
	@rm -f $(VENV)/.installed-test-* && touch $@

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) --upgrade pip
	$(PIP) -e '.[demo]'
	@rm -f $(VENV)/.installed-demo-* && touch $@

install: $(STAMP) ## create .venv and install the package with the test extra (which includes the demo's)

demo: $(DEMO_STAMP) ## the whole pipeline on this machine: embedded broker, sandbox API, sample events, connector, summary
	$(BIN)/optikpi-connector demo

test: $(STAMP) ## lint, type-check, check the import contracts and run the tests (unit, integration, broker, short chaos)
	$(BIN)/ruff check connector tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -m "not slow" -q

test-unit: $(STAMP) ## only the fast deterministic tests
	$(BIN)/python -m pytest -m unit -q

test-broker: $(STAMP) ## only the tests against the embedded Kafka-protocol broker
	$(BIN)/python -m pytest -m "broker and not slow" -q

chaos: $(STAMP) ## the fault-injection suite at full size (tests/broker/chaos); regenerates docs/reliability.md
	$(BIN)/python -m pytest -m slow -q

bench: $(STAMP) ## benchmarks: the sandbox alone (docs/bench-sandbox.md), then the connector beside its references (docs/performance.md)
	$(BIN)/python -m bench.bench_sandbox
	$(BIN)/python -m bench.performance

check-deploy: $(STAMP) ## offline checks of the Dockerfile, docker-compose.yml and the Helm chart
	$(BIN)/python -m pytest tests/deploy -q

lint: $(STAMP) ## ruff
	$(BIN)/ruff check connector tests bench
	$(BIN)/ruff format --check connector tests bench

lint-imports: $(STAMP) ## the import contracts in pyproject.toml (layers, no devtools in production, confluent_kafka only in connector.kafka)
	$(BIN)/lint-imports

typecheck: $(STAMP) ## mypy --strict on the package, the tests and the bench
	$(BIN)/mypy

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
