# rembug: the commands a developer and CI use. See README.md.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup servers lint test bench run stop clean asyncapi measure-memory env-files

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

# a Musrenbang day against the nodes `make run` started (another terminal); DEMO_ARGS
# e.g. "--proposals 40 --residents 200" (python -m deploy.local.demo --help)
.PHONY: demo
demo: setup
	$(BIN)/python -m deploy.local.demo $(DEMO_ARGS)

# the resident memory of a whole kelurahan node started as deployed (deploy/measure_memory.py)
measure-memory: setup servers
	$(BIN)/python -m deploy.measure_memory

# regenerate deploy/env/*.env from shared/data/bekasi_wilayah.csv
env-files: setup
	$(BIN)/python -m deploy.env.make_env

clean:
	rm -rf $(VENV) run
