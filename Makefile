# The two commands: `make demo` runs the whole mesh locally, `make test` runs every check.
# Both create or refresh .venv and fetch Kafka's jars (once) from Maven Central.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The exact versions CI and contributors install: pyproject.toml's ranges with every extra,
# resolved by `make lock`; tests/unit/test_lock.py fails when the two drift apart.
LOCK := requirements/dev.lock

.PHONY: help install lock kafka browser valgrind vendor datahub-tools lint format reference docs test test-fast demo bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(LOCK)
	@echo ">> creating/refreshing $(VENV) with $(PYTHON) from $(LOCK)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar off -r $(LOCK)
	$(BIN)/python -m pip install --progress-bar off --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)  ## create .venv: the locked dependencies, then mesh-stream itself (editable)

# Keeps every locked version pyproject.toml still allows; `make lock UPGRADE=1` takes the newest.
lock: install  ## re-resolve requirements/dev.lock from the ranges and extras of pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --all-extras --python $(BIN)/python $(if $(UPGRADE),--upgrade) \
		--custom-compile-command 'make lock' --output-file $(LOCK)

kafka: install  ## fetch Apache Kafka's jars from Maven Central into the cache (once)
	$(BIN)/mesh broker fetch

# The portal's browser tests drive Debian's chromium with Playwright (which never downloads a
# browser) and inject axe-core from tools/vendor/node_modules. Each step runs only when needed.
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
NODE_ASSETS := tools/vendor/node_modules

browser:  ## Debian's chromium and chromium-driver, and axe-core for the browser tests (when missing)
	@if [ ! -x $(CHROMIUM) ]; then \
		if ! command -v apt-get >/dev/null 2>&1; then \
			echo "make browser: $(CHROMIUM) is missing and apt-get is not available; install Debian's chromium and chromium-driver packages"; exit 1; \
		fi; \
		echo ">> installing Debian's chromium and chromium-driver with apt-get"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver || exit 1; \
	fi
	@if [ ! -d $(NODE_ASSETS) ] || [ tools/vendor/package-lock.json -nt $(NODE_ASSETS) ]; then \
		if ! command -v npm >/dev/null 2>&1; then \
			echo "make browser: npm is not available; install Node.js and npm (Debian: apt-get install npm) to fetch tools/vendor's packages"; exit 1; \
		fi; \
		echo ">> npm ci --prefix tools/vendor"; \
		npm ci --prefix tools/vendor && touch $(NODE_ASSETS) || exit 1; \
	fi

# `mesh bench --instructions` and its unit test count instructions with valgrind (callgrind).
# After `browser`: two apt-get runs at once (make -j) would fight over dpkg's lock.
valgrind: | browser  ## Debian's valgrind, for mesh bench --instructions (when missing)
	@if ! command -v valgrind >/dev/null 2>&1; then \
		if ! command -v apt-get >/dev/null 2>&1; then \
			echo "make valgrind: valgrind is missing and apt-get is not available; install valgrind"; exit 1; \
		fi; \
		echo ">> installing Debian's valgrind with apt-get"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq valgrind || exit 1; \
	fi

vendor:  ## refresh the portal's vendored browser assets from tools/vendor (npm ci, then copy)
	npm ci --prefix tools/vendor && $(BIN)/python tools/vendor_assets.py

# mesh export asyncapi's documents are checked by the official AsyncAPI 3.0.0 JSON Schema
# (@asyncapi/specs, with ajv) and @asyncapi/parser: tools/asyncapi/validate.mjs, pinned by its
# package-lock.json. npm ci runs when node_modules is missing or older than the lock.
ASYNCAPI_TOOLS := tools/asyncapi/node_modules

asyncapi-tools:  ## the AsyncAPI validators the export tests run (npm ci in tools/asyncapi)
	@if [ ! -d $(ASYNCAPI_TOOLS) ] || [ tools/asyncapi/package-lock.json -nt $(ASYNCAPI_TOOLS) ]; then \
		if ! command -v npm >/dev/null 2>&1; then \
			echo "make asyncapi-tools: npm is not available; install Node.js and npm (Debian: apt-get install npm)"; exit 1; \
		fi; \
		echo ">> npm ci --prefix tools/asyncapi"; \
		npm ci --prefix tools/asyncapi --ignore-scripts --no-audit --no-fund && touch $(ASYNCAPI_TOOLS) || exit 1; \
	fi

# mesh export datahub's files are checked by DataHub's own CLI (`datahub check metadata-file`):
# acryl-datahub and its dependencies, hash-pinned in tools/datahub/requirements.txt (compiled
# from requirements.in), in their own virtualenv, apart from our lock: about 100 s and 150 MB.
DATAHUB_TOOLS := .tools/datahub

datahub-tools:  ## the DataHub CLI the export tests run (.tools/datahub, from tools/datahub/requirements.txt)
	@if [ ! -x $(DATAHUB_TOOLS)/bin/datahub ] || [ tools/datahub/requirements.txt -nt $(DATAHUB_TOOLS)/bin/datahub ]; then \
		echo ">> installing acryl-datahub into $(DATAHUB_TOOLS)"; \
		$(PYTHON) -m venv $(DATAHUB_TOOLS) && \
		$(DATAHUB_TOOLS)/bin/python -m pip install --quiet --progress-bar off --require-hashes -r tools/datahub/requirements.txt && \
		touch $(DATAHUB_TOOLS)/bin/datahub || exit 1; \
	fi

# mesh export odcs's contracts are checked by datacontract-cli (`datacontract lint`) and the
# ODCS v3 JSON Schema the open-data-contract-standard package ships, both pinned with hashes in
# tools/datacontract/requirements.txt, in their own virtualenv (apart from our lock): about
# 70 s and 130 MB, once. tools/datacontract/check_odcs.py runs both checks.
ODCS_TOOLS := .tools/datacontract

odcs-tools:  ## datacontract-cli and the ODCS v3 JSON Schema the export tests run (.tools/datacontract)
	@if [ ! -x $(ODCS_TOOLS)/bin/datacontract ] || [ tools/datacontract/requirements.txt -nt $(ODCS_TOOLS)/bin/datacontract ]; then \
		echo ">> installing datacontract-cli into $(ODCS_TOOLS)"; \
		$(PYTHON) -m venv $(ODCS_TOOLS) && \
		$(ODCS_TOOLS)/bin/python -m pip install --quiet --progress-bar off --require-hashes -r tools/datacontract/requirements.txt && \
		touch $(ODCS_TOOLS)/bin/datacontract || exit 1; \
	fi

# Every outside tool the tests run, each installed only when missing; fetched side by side
# (they are downloads, not CPU), so a fresh machine waits for the slowest one only.
tools: install  ## Chromium and axe-core, valgrind, the AsyncAPI validators, datacontract-cli, DataHub's CLI
	$(MAKE) --no-print-directory -j 4 browser valgrind asyncapi-tools odcs-tools datahub-tools

lint: install  ## ruff check, ruff format --check, mypy, import layering
	$(BIN)/ruff check mesh_stream tests domains tools benchmarks
	$(BIN)/ruff format --check mesh_stream tests domains tools benchmarks
	$(BIN)/mypy mesh_stream
	$(BIN)/pytest -q --no-header tests/unit/test_layering.py

format: install  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix mesh_stream tests domains tools
	$(BIN)/ruff format mesh_stream tests domains tools

reference: install  ## regenerate the docs' reference pages (settings, CLI, ...) from the code
	$(BIN)/python tools/gen_reference.py

docs: install  ## build the docs site into site/ (mkdocs --strict, offline)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The suite runs on TEST_WORKERS pytest-xdist workers, whole files to one worker (tests in a
# file share fixtures), the longest files first (tests/conftest.py LONGEST_FIRST, so the workers
# finish together); each worker starts its own broker. TEST_WORKERS=0 runs it in-process.
TEST_WORKERS ?= 3

test: kafka tools lint docs  ## everything CI runs: lint, type check, governance policies, all tests
	$(BIN)/mesh lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-fast: install  ## unit tests only (no broker)
	$(BIN)/pytest -m "not integration"

demo: kafka  ## install, then run the whole mesh locally (`mesh up`)
	$(BIN)/mesh up

bench: kafka  ## benchmarks against a real broker, as ratios to raw confluent-kafka
	$(BIN)/mesh bench

clean:  ## remove the virtualenv and caches (not the Kafka jar cache)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
