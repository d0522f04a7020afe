# pretroost: one-command setup, demo and tests. Everything installs from this repo's own files.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# data that only git repositories carry (teacher weights, structures, fixtures); see README
export PRETROOST_SHARED_DATA ?= $(abspath ../shared/data)
# the venv's tools (ninja for the compiled Roost kernels) must be on PATH
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup data demo test lint bench-baseline speed

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# the CPU build of torch; any torch >= 2.3 works (see pyproject)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[teachers,test,serve]'
	# matbench 0.6 pins packages that do not install on Python 3.11: its code is only used by tests
	$(BIN)/pip install -q --no-deps matbench==0.6
	touch $@

data: setup
	$(BIN)/pretroost data fetch

# the main job on a small default: Roost from scratch and from the shipped pretrained encoder on
# matbench_steels (official fold 0), both scores side by side
demo: data
	$(BIN)/pretroost demo --recipe quick --threads 2

test: data
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports
