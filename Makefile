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
	# torch.compile (TrainConfig compile=on, tested) builds C++ kernels: g++ from Debian if missing.
	command -v g++ >/dev/null || (apt-get update -q && apt-get install -y -q g++)
	$(PIP_INSTALL) --upgrade pip setuptools wheel
	# The CPU build of torch first: anything depending on torch must not pull a CUDA build.
	$(PIP_INSTALL) torch==2.13.0
	$(PIP_INSTALL) -e . $(foreach p,$(PLUGINS),-e $(dir $(p))) pytest ruff build
	touch $(STAMP)

# Wheels of ptycho's dependencies (with torch, safetensors, pytest, h5py), so that tests can build
# a fresh virtual environment offline: pip install --no-index --find-links wheelhouse ...
# (tests/test_third_party_install.py). Nothing is downloaded at test time.
WHEELHOUSE := wheelhouse
.PHONY: wheelhouse
$(WHEELHOUSE)/.filled: pyproject.toml constraints.txt examples/ptycho-mynet/pyproject.toml | $(STAMP)
	$(PIP) download --disable-pip-version-check -q -c constraints.txt --only-binary :all: --no-build-isolation \
		-d $(WHEELHOUSE) '.[torch,test]' h5py
	touch $@

wheelhouse: $(WHEELHOUSE)/.filled

install: $(STAMP) wheelhouse

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
