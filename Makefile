# Every target creates .venv and installs what it needs first; every pip call uses constraints.txt.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
PIP_INSTALL := $(PIP) install --disable-pip-version-check -q -c constraints.txt
PLUGINS := $(wildcard plugins/*/pyproject.toml)
STAMP := $(VENV)/.installed

.PHONY: install test compare lint bench clean

$(STAMP): pyproject.toml constraints.txt $(PLUGINS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip setuptools wheel
	# The CPU build of torch first: anything depending on torch must not pull a CUDA build.
	$(PIP_INSTALL) torch==2.13.0
	$(PIP_INSTALL) -e . $(foreach p,$(PLUGINS),-e $(dir $(p))) pytest ruff build
	touch $(STAMP)

install: $(STAMP)

test: install
	$(BIN)/python -m pytest -q

compare: install
	$(BIN)/ptycho compare

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python benchmarks/bench_cli.py

clean:
	rm -rf $(VENV) build dist *.egg-info
