# The front door. `make demo` and `make test` are the README's two set-up commands; each
# creates the project's own virtual environment (.venv) on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo
DEMO_ATHLETES ?= 2000
DEMO_SEED ?= 20261126

.PHONY: demo test lint bench venv clean browser

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "hamrisk needs Python >= 3.11, found " + sys.version.split()[0]'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	@bash scripts/demo.sh "$(DEMO_DIR)" "$(DEMO_ATHLETES)" "$(DEMO_SEED)"

test: $(STAMP) browser
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

# Headless Chromium from Debian for the report's browser test (we run as root in CI).
browser:
	@test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(DEMO_DIR) mlruns.db mlartifacts .pytest_cache .ruff_cache .hypothesis
