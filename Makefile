# Two commands on a fresh machine: `make run` and `make test`. Everything else is set up on the way.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
NODE_DIR := deploy/better-auth
NODE_STAMP := $(NODE_DIR)/node_modules/.installed

.PHONY: install run test lint typecheck pytest system-deps node-deps audit audit-strict bench clean

$(PY):
	python3 -m venv $(VENV)

$(STAMP): requirements.lock pyproject.toml | $(PY)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

system-deps:
	./scripts/system-deps.sh

$(NODE_STAMP): $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

node-deps:
	@if [ -f $(NODE_DIR)/package-lock.json ] && command -v npm >/dev/null; then $(MAKE) --no-print-directory $(NODE_STAMP); fi

run: install node-deps
	$(VENV)/bin/taskgate up

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy --strict gateway task_service taskgate taskgate_assertion examples

# The contract and security suites run a second time with the example policy file loaded instead of the built-in
# default policy (tests/support/policy.py): the file must change nothing.
pytest: install
	$(VENV)/bin/pytest
	TASKGATE_TEST_POLICY_FILE=deploy/policy.example.yaml $(VENV)/bin/pytest -q tests/contract tests/security

# Fails on any reported vulnerability in the locked set. Where the vulnerability service cannot be reached
# (these build machines), pip-audit says so for each package; `make audit-strict` treats that as a failure too.
audit: install
	$(VENV)/bin/pip-audit --progress-spinner off --no-deps --disable-pip -r requirements.lock

audit-strict: install
	$(VENV)/bin/pip-audit --strict --progress-spinner off --no-deps --disable-pip -r requirements.lock

test: system-deps install node-deps lint typecheck audit pytest

# `make bench BENCH_ARGS="--only service"` runs only the task service suite (bench/run.py --help).
BENCH_ARGS ?=
bench: install
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data .taskgate .mypy_cache .ruff_cache .pytest_cache test-artifacts
