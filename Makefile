# actrec-batch: `make demo` and `make test` are the two commands a newcomer needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0
export RAY_USAGE_STATS_ENABLED := 0
export PYTHONUNBUFFERED := 1

.PHONY: install demo test lint bench bench-smoke quality train services browser airflow infra-check clean help

help:
	@echo "make demo   - install, render a synthetic night, run the nightly DAG through Airflow (local store, DuckDB, local Ray), print a summary"
	@echo "make airflow - start Airflow on http://127.0.0.1:8080 (admin/admin) with the DAGs and the demo's data"
	@echo "make test   - install, start PostgreSQL + an S3 server on 127.0.0.1, install headless Chromium, run the whole suite"
	@echo "make lint   - ruff"
	@echo "make infra-check - terraform fmt/init/validate (offline through a provider mirror when there is one) + checkov over infra/terraform"
	@echo "make bench  - speed benchmarks: bench/results.json and BENCHMARKS.md (bench/all.py; median of 3 runs)"
	@echo "make bench-smoke - the same at tiny sizes into .actrec/bench-smoke/ (checks the harness; timings meaningless)"
	@echo "make quality - held-out quality of the shipped model (bench/quality.py, ~10 min), then of a head fitted by actrec train-head against it (bench/train_head.py, ~1 h on 2 cores; footage kept in .actrec/)"
	@echo "make train  - retrain the reference model (~30 min on 2 cores) into .actrec/models/"

install: $(STAMP)

# scripts/install.sh is the one install recipe (the Ray node image and the Airflow requirements use it too).
$(STAMP): pyproject.toml constraints.txt scripts/install.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	PYTHON=$(BIN)/python bash scripts/install.sh dev
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/actrec demo

airflow: $(STAMP)
	@bash scripts/airflow_ui.sh

services: $(STAMP)
	@bash scripts/start_postgres.sh

# Headless Chromium + chromedriver for the UI checks (Debian packages; a no-op once installed).
browser:
	@bash scripts/install_browser.sh

# infra/terraform: formatted, valid, and no failed checkov check (checkov in its own venv, .actrec/checkov-venv).
infra-check:
	@bash scripts/infra_check.sh

test: $(STAMP) services browser infra-check
	@bash scripts/run_tests.sh $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP) services
	$(BIN)/python bench/all.py --profile

bench-smoke: $(STAMP) services
	$(BIN)/python bench/all.py --smoke --results .actrec/bench-smoke

quality: $(STAMP)
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/train_head.py

train: $(STAMP)
	$(BIN)/actrec train --out .actrec/models/reference-v3

clean:
	rm -rf .actrec .pytest_cache
