# rembug: the commands a developer and CI use. See README.md.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup servers lint test bench run stop clean asyncapi

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

servers:
	bash deploy/local/ensure-servers.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup servers lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup servers
	$(BIN)/python -m bench $(if $(ONLY),--only $(ONLY))

asyncapi: setup
	$(BIN)/python -m shared.asyncapi

run: setup servers
	$(BIN)/python -m deploy.local.node

clean:
	rm -rf $(VENV) run
