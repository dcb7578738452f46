# Every target builds .venv first, so a fresh clone needs nothing but python3 >= 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/pytest tests --ignore=tests/bench

lint: $(STAMP)
	$(BIN)/ruff check models reconciler handlers tests
	$(BIN)/ruff format --check models reconciler handlers tests
	$(BIN)/mypy models reconciler handlers
	$(BIN)/lint-imports

demo: $(STAMP)
	$(BIN)/stackherd-demo

bench: $(STAMP)
	$(BIN)/python -m tests.bench.sweep_bench
	$(BIN)/python -m tests.bench.rollout_bench

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
