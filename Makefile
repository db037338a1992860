# Churnlab: `make repro` reproduces the pipeline; `make test` checks everything.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.setup-stamp
DATA := data/wa_churn.csv
PYTEST_ARGS ?=
# pytest workers (pytest-xdist), one per core; tests sharing a costly fixture stay on one worker (tests/conftest.py)
PYTEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest -n $(PYTEST_WORKERS)

export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export MPLBACKEND := Agg
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help setup repro serve test test-fast test-deps test-scale check lint lock bench bench-features bench-scale docs lab tune up down clean-notebooks export

help:
	@echo "make setup   - virtualenv from requirements.lock, editable install, kernel, MLflow store"
	@echo "make repro   - setup, default data when absent, dvc repro"
	@echo "make serve   - the model service on PORT (default 8000): the registry's champion, else artifacts/model"
	@echo "make test    - notebook checks, nbdev-test, pytest (runs the pipeline once in a temp copy)"
	@echo "make test-fast - the edit loop: notebook checks, lint, nbdev-test, pytest without pipeline runs (< 3 min)"
	@echo "make bench   - seed-style baseline, network vs tutorial loop, tuning, service load, drift monitoring (QUICK=1: short)"
	@echo "make bench-features - the CV ablations (feature blocks, network options, families, selection policies by nested CV) and the pipeline on 7 datasets against library defaults and AutoGluon"
	@echo "make bench-scale - dvc repro on 10k, 100k and 1M synthetic customers: time, memory, growth, AUC vs oracle"
	@echo "make docs    - the docs site in _docs/ (after make repro), offline; README.md from nbs/index.ipynb"
	@echo "make lab     - JupyterLab with the churnlab kernel"
	@echo "make tune    - one more tuning worker on the configured study (N=trials, default 10)"
	@echo "make up     - local stand-ins for the shared services (PostgreSQL, S3, MLflow server); then: source .standins/env.sh"
	@echo "make down   - stop the stand-ins and delete their data"
	@echo "make test-scale - only the scaling walk-through test (README 'Past one machine' against the stand-ins)"
	@echo "make lock    - re-resolve requirements.lock from pyproject.toml (needs the package registries)"

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name churnlab --display-name churnlab >/dev/null
	touch $@

mlflow.db: $(STAMP)
	$(BIN)/churnlab init

# Notebook-aware git: nbdime diffs and merges notebooks (see .gitattributes); the pre-commit hook
# cleans notebooks and lints. Only in a git checkout.
GIT_HOOK := $(if $(wildcard .git),.git/hooks/pre-commit)
.git/hooks/pre-commit: .pre-commit-config.yaml | $(STAMP)
	git config diff.jupyternotebook.command "$(CURDIR)/$(BIN)/git-nbdiffdriver diff"
	git config merge.jupyternotebook.driver "$(CURDIR)/$(BIN)/git-nbmergedriver merge %O %A %B %L %P"
	git config merge.jupyternotebook.name "notebook merge driver (nbdime)"
	$(BIN)/pre-commit install >/dev/null

setup: $(STAMP) mlflow.db $(GIT_HOOK)

# The default data is materialised only when absent (never rewritten), byte-identical everywhere.
$(DATA): | $(STAMP)
	$(PY) -c "from pathlib import Path; from churnlab.data import write_default_data; write_default_data(Path('$(DATA)'))"

repro: setup $(DATA)
	$(BIN)/dvc repro
	$(BIN)/dvc status

# The service over the registry's champion (artifacts/model/ when none); PORT=8000 by default.
serve: setup
	$(BIN)/churnlab serve --port $(or $(PORT),8000)

# Local stand-ins for shared services, on loopback (tools/standins.py): PostgreSQL (Debian's package,
# run unprivileged), moto's S3 server, an MLflow server on both. `source .standins/env.sh` switches
# the project onto them; `make down` stops them and deletes their data.
up: setup test-deps
	$(PY) tools/standins.py up

down:
	$(if $(wildcard $(PY)),$(PY),python3) tools/standins.py down

# Debian packages the tests need: Chromium (and a font) for the docs browser test, PostgreSQL for
# the shared Optuna study and the stand-ins (`make up`), curl for the README's walk-through, libgomp1 (OpenMP)
# for LightGBM. Installed when running as root with apt; otherwise the tests that need
# them skip, naming this command.
TEST_DEBS := chromium fonts-dejavu-core postgresql curl libgomp1
test-deps:
	@missing=$$(for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "test-deps: missing $$missing; install with: sudo apt-get install $$missing (or those tests skip)"; fi

check: setup
	$(PY) tools/check_notebooks.py

lint: setup
	$(BIN)/ruff check nbs tests bench tools
	$(BIN)/ruff format --check tests bench tools

test: setup test-deps $(DATA) check lint
	$(BIN)/nbdev-test --n-workers 2
	$(PYTEST) $(PYTEST_ARGS)

# The edit loop: notebook checks, lint, the notebooks' own tests and every pytest test that needs no
# pipeline run or project copy (conftest marks those `slow`). Under 3 minutes on 2 cores.
test-fast: setup $(DATA) check lint
	$(BIN)/nbdev-test --n-workers 2
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

# The README's scaling walk-through, run against the stand-ins in a temporary copy (part of `make test`).
test-scale: setup test-deps $(DATA)
	$(BIN)/pytest tests/test_scale.py $(PYTEST_ARGS)

# One more tuning worker on the configured study (parallel, unseeded): make tune N=20
tune: setup
	$(BIN)/churnlab tune --n-trials $(or $(N),10)

# The benchmarks serve and monitor the pipeline's own model, so the pipeline is reproduced first (a no-op
# when up to date); bench/run_all.py times each script and prints where the time went (QUICK=1: short).
bench: repro
	$(PY) bench/run_all.py $(if $(QUICK),--quick,)

# The CV studies that choose defaults (not part of `make bench`; about 80 min, extrapolated from each
# script's measured time): the feature-block ablation on Telco, the network's options on Telco and
# mlc_churn, the families' CV and the selection policies' nested CV on six datasets, then the pipeline
# on seven datasets with only the `data` section changed, against library defaults and AutoGluon.
bench-features: setup $(DATA)
	$(PY) bench/ablation.py
	$(PY) bench/nn_ablation.py
	$(PY) bench/families.py
	$(PY) bench/rules.py
	$(PY) bench/datasets.py

# Size (not part of `make bench`, ~35 min): the same `dvc repro` on 10k, 100k and 1M synthetic customers,
# per-stage time, memory and growth exponent, AUC against the oracle; writes the README's table (QUICK=1: 10k, 30k).
bench-scale: setup $(DATA)
	$(PY) bench/scale.py $(if $(QUICK),--quick,--json bench/results/scale.json && $(PY) tools/bench_tables.py)

# The docs site, offline, into _docs/ (after `make repro`); also renders README.md from nbs/index.ipynb.
docs: setup
	$(PY) tools/build_docs.py

lab: setup
	$(BIN)/jupyter lab --allow-root --no-browser --notebook-dir=.

export: setup
	$(BIN)/nbdev-export
	$(BIN)/jupytext --sync nbs/stages/*.ipynb

lock:
	python3 -m venv /tmp/churnlab-lock && /tmp/churnlab-lock/bin/pip install --quiet -e ".[serve,pipeline,dev]" \
	  && /tmp/churnlab-lock/bin/pip freeze --all --exclude-editable | grep -v '^pip==' > requirements.lock
