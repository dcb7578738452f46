# Every target builds .venv first, so a fresh clone needs nothing but python3 >= 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov pins boto3 below the project's, so it lives in a virtualenv of its own, installed from pyproject's
# [project.optional-dependencies] iac list.
IAC_VENV := .venv-iac
IAC_STAMP := $(IAC_VENV)/.installed

.PHONY: install test lint lint-infra package demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(IAC_STAMP): pyproject.toml
	$(PYTHON) -m venv $(IAC_VENV)
	$(IAC_VENV)/bin/pip install --quiet --upgrade pip
	$(PYTHON) -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["iac"]))' > $(IAC_VENV)/requirements.txt
	$(IAC_VENV)/bin/pip install --quiet -r $(IAC_VENV)/requirements.txt
	touch $(IAC_STAMP)

test: $(STAMP)
	$(BIN)/pytest tests --ignore=tests/bench

lint: $(STAMP)
	$(BIN)/ruff check models reconciler handlers tests
	$(BIN)/ruff format --check models reconciler handlers tests
	$(BIN)/mypy models reconciler handlers
	$(BIN)/lint-imports
	$(MAKE) --no-print-directory lint-infra

# cfn-lint over the raw templates (it transforms the SAM one itself); checkov without reaching its SaaS.
lint-infra: $(STAMP) $(IAC_STAMP)
	$(BIN)/ruff check infra
	$(BIN)/ruff format --check infra
	$(BIN)/mypy infra/package_lambda.py
	$(BIN)/cfn-lint infra/sam/*.yaml
	$(IAC_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation --directory infra/sam

# The Lambda artifact (the template's CodeUri): application packages only; `sam build` installs requirements.txt.
package: $(STAMP)
	$(BIN)/python infra/package_lambda.py --out build/lambda --zip build/stackherd-lambda.zip

demo: $(STAMP)
	$(BIN)/stackherd-demo

bench: $(STAMP)
	$(BIN)/python -m tests.bench.sweep_bench
	$(BIN)/python -m tests.bench.rollout_bench

clean:
	rm -rf $(VENV) $(IAC_VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
