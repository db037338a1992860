# Churnlab: `make repro` reproduces the pipeline; `make test` checks everything.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.setup-stamp
DATA := data/wa_churn.csv
PYTEST_ARGS ?=

export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export MPLBACKEND := Agg
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help setup repro test test-deps check lint lock bench lab clean-notebooks export

help:
	@echo "make setup   - virtualenv from requirements.lock, editable install, kernel, MLflow store"
	@echo "make repro   - setup, default data when absent, dvc repro"
	@echo "make test    - notebook checks, nbdev-test, pytest (runs the pipeline once in a temp copy)"
	@echo "make bench   - seed-style baseline, network vs tutorial loop, other datasets (QUICK=1: short)"
	@echo "make lab     - JupyterLab with the churnlab kernel"
	@echo "make lock    - re-resolve requirements.lock from pyproject.toml (needs the package registries)"

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name churnlab --display-name churnlab >/dev/null
	touch $@

mlflow.db: $(STAMP)
	$(BIN)/churnlab init

setup: $(STAMP) mlflow.db

# The default data is materialised only when absent (never rewritten), byte-identical everywhere.
$(DATA): | $(STAMP)
	$(PY) -c "from pathlib import Path; from churnlab.data import write_default_data; write_default_data(Path('$(DATA)'))"

repro: setup $(DATA)
	$(BIN)/dvc repro
	$(BIN)/dvc status

# Debian packages some tests need (Chromium, PostgreSQL) arrive with later issues; none yet.
test-deps:
	@true

check: setup
	$(PY) tools/check_notebooks.py

lint: setup
	$(BIN)/ruff check nbs tests bench tools
	$(BIN)/ruff format --check tests bench tools

test: setup test-deps $(DATA) check lint
	$(BIN)/nbdev-test --n-workers 2
	$(BIN)/pytest $(PYTEST_ARGS)

bench: setup $(DATA)
	$(PY) bench/pipeline_overhead.py $(if $(QUICK),--repeats 1,)
	$(PY) bench/seed_style.py $(if $(QUICK),--quick,)
	$(PY) bench/nn.py $(if $(QUICK),--quick,)
	$(if $(QUICK),,$(PY) bench/nn_ablation.py)
	$(if $(QUICK),,$(PY) bench/datasets.py)

lab: setup
	$(BIN)/jupyter lab --allow-root --no-browser --notebook-dir=.

export: setup
	$(BIN)/nbdev-export
	$(BIN)/jupytext --sync nbs/stages/*.ipynb

lock:
	python3 -m venv /tmp/churnlab-lock && /tmp/churnlab-lock/bin/pip install --quiet -e . \
	  $$(python3 -c "import tomllib;print(' '.join(tomllib.load(open('pyproject.toml','rb'))['project']['optional-dependencies']['dev']))") \
	  && /tmp/churnlab-lock/bin/pip freeze --all --exclude-editable | grep -v '^pip==' > requirements.lock
