# One command surface. The README names these targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The spec of `run`/`up`; empty: the commands' default (mlops.core.settings.DEFAULT_SPEC).
SPEC ?=
SPEC_ARG := $(if $(SPEC),--spec $(SPEC))
# The one command-line entry point (tools/cli.py), installed by `make setup`.
MLOPS := $(BIN)/mlops
ROWS ?= 5000

export MLOPS_STATE_DIR ?= $(CURDIR)/.mlops
export PREFECT_HOME ?= $(MLOPS_STATE_DIR)/prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_LOGGING_LEVEL ?= INFO
# While `make up`'s stack runs, its server's API URL is here: `make run` and the prefect CLI use it.
-include $(MLOPS_STATE_DIR)/stack.env
ifdef PREFECT_API_URL
export PREFECT_API_URL
endif

.PHONY: all setup azmlinfsrv-env mlflow-env browser data run up endpoint-up down status test test-unit lint lock lock-check bench clean

all: run

## setup: the virtualenv from the hash-pinned lock file, then this project (editable: `mlops`)
setup: $(VENV)/.installed
$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

## azmlinfsrv-env: Azure ML's inference server in its own venv (tests run score.py under it)
AZ_VENV := .venv-azmlinfsrv
azmlinfsrv-env: $(AZ_VENV)/.installed
$(AZ_VENV)/.installed: requirements-azmlinfsrv.lock
	$(PYTHON) -m venv $(AZ_VENV)
	$(AZ_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r requirements-azmlinfsrv.lock
	touch $@

## mlflow-env: the MLflow UI in its own venv (its server stack stays out of our lock)
MLFLOW_VENV := .venv-mlflow
mlflow-env: $(MLFLOW_VENV)/.installed
$(MLFLOW_VENV)/.installed: requirements-mlflow.lock
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r requirements-mlflow.lock
	touch $@

## node-env: Node tools from package-lock.json (Azurite, the Blob Storage emulator the tests use)
node-env: node_modules/.installed
node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund
	touch $@

## browser: Debian's headless Chromium and its driver, for the browser test of the Prefect UI
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  $(SUDO) apt-get update && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y --no-install-recommends chromium chromium-driver; \
	fi

## data: the sample datasets (deterministic)
data: setup data/generated/churn/.done data/generated/diabetes.parquet
data/generated/churn/.done:
	$(MLOPS) data churn --rows $(ROWS) --partitions 2 --out data/generated/churn
	touch $@
data/generated/diabetes.parquet:
	$(MLOPS) data diabetes --out $@

## run: set up from nothing, train on the embedded default, serve, print a prediction
run: setup data endpoint-up
	mkdir -p "$(PREFECT_HOME)"
	$(MLOPS) train $(SPEC_ARG)
	$(MLOPS) predict $(SPEC_ARG)

## up: the local stack (Prefect server, worker, endpoint, MLflow UI, deployments, first run)
up: setup mlflow-env data
	$(MLOPS) up $(SPEC_ARG)

endpoint-up: setup
	$(MLOPS) endpoint-up

down:
	@if [ -x $(BIN)/python ]; then $(MLOPS) down; fi

status: setup
	$(MLOPS) status

## test: lint, then the whole test suite (CI runs exactly this)
test: setup azmlinfsrv-env mlflow-env node-env browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

## test-unit: the inner loop, without servers, services or larger data
test-unit: setup
	$(BIN)/python -m pytest -q -m "not slow and not service and not azurite"

lint: setup
	$(BIN)/ruff check .

## lock: regenerate the lock files from their .in files (the Azure ML one for linux x86_64) and conda.yml
lock: setup
	$(BIN)/python -m tools.lock
	$(BIN)/python -m mlops.azureml.shipping conda

lock-check: setup
	$(BIN)/python -m pytest -q tests/test_lock.py

bench: setup
	$(BIN)/python -m benchmarks.bench_training --tracking

clean: down
	rm -rf .mlops data/generated

## bench-drift: the drift check against plain scipy and Evidently's full preset
.PHONY: bench-drift
bench-drift: setup
	$(BIN)/python -m benchmarks.bench_drift

## bench-batch: the batch-scoring flow (one process, two Dask workers) against a plain pandas script
.PHONY: bench-batch
bench-batch: setup
	$(BIN)/python -m benchmarks.bench_batch

## bench-trees: the fast path's compiled tree kernel against scikit-learn's tree predictors, one thread
.PHONY: bench-trees
bench-trees: setup
	$(BIN)/python -m benchmarks.bench_trees

## bench-entry-script: our Azure entry script against a sample-style one, both under azmlinfsrv
.PHONY: bench-entry-script
bench-entry-script: setup azmlinfsrv-env
	$(BIN)/python -m benchmarks.bench_entry_script

## bench-rollback: `mlops rollback` to a warm deployment under steady load, against one raw traffic call
.PHONY: bench-rollback
bench-rollback: setup
	$(BIN)/python -m benchmarks.bench_rollback
