# Everything runs inside a local virtual environment in .venv so a fresh machine needs only python3.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck check soak bench clean heroku-cli

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# `make run PORT=5100 HOST=0.0.0.0 DATA_DIR=/srv/sk`: set on the command line only (`:=` keeps
# an inherited HOST, which some shells export as the machine's name, from changing the address).
HOST := 127.0.0.1
PORT := 5000
DATA_DIR := ./data

## Start the server on its embedded default (SQLite under ./data).
run: $(STAMP)
	@echo "securekey is installed in $(BIN): in another terminal run . $(BIN)/activate (or call $(BIN)/securekey)."
	$(BIN)/securekey server --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

lint: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)

typecheck: $(STAMP)
	$(BIN)/mypy

## Install everything and run the whole suite: lint, types, tests (PostgreSQL and the real
## Heroku CLI included; without npm it says that the Heroku CLI test is skipped).
test: $(STAMP) lint typecheck heroku-cli
	$(BIN)/pytest $(PYTEST_ARGS)

## The real Heroku CLI for tests/e2e/test_heroku_cli.py, cached in .cache/ (offline once there).
heroku-cli:
	@scripts/install-heroku-cli.sh --if-possible

check: test

## The fault tests at full size (issue 11): long outages, thousands of rotations, many kills.
soak: $(STAMP)
	SECUREKEY_SOAK=1 $(BIN)/pytest tests/faults tests/e2e/test_consumers_outage.py tests/e2e/test_two_services.py tests/client/test_run_restarts.py -p no:cacheprovider -s $(PYTEST_ARGS)

## Every benchmark (bench/*.py) with its anchors, then docs/benchmarks.md and docs/img/bench-*.png
## from that run (~15 minutes on 2 cores; needs wrk; installs the Heroku CLI anchor like make test). `make bench BENCH_ARGS=--smoke`: seconds.
bench: $(STAMP) heroku-cli
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache bench/results
