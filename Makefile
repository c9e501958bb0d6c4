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
	# torch.compile (the torch engine setting compile=on, tested) builds C++ kernels: g++ from Debian if missing.
	command -v g++ >/dev/null || (apt-get update -q && apt-get install -y -q g++)
	$(PIP_INSTALL) --upgrade pip setuptools wheel
	# The CPU build of torch first: anything depending on torch must not pull a CUDA build.
	$(PIP_INSTALL) torch==2.13.0
	# torchvision for pty-chi (plugins/ptycho_ptychi), after torch so that it keeps the CPU build. PyPI has
	# no torchvision sdist to build against the CPU torch; the wheel's C++ ops do not load beside it
	# (they link libtorch_cuda) and ptycho_ptychi/_torchvision.py makes the Python part import.
	$(PIP_INSTALL) torchvision==0.28.0
	$(PIP_INSTALL) -e '.[postgres,dask]' $(foreach p,$(PLUGINS),-e $(dir $(p))) pytest ruff build playwright
	# Test dependency: Ptychodus's own file plugins and forward model (tests/test_io_ptychodus.py).
	# They import only h5py, numpy, scipy, scikit-image and pydantic (pinned above); --no-deps keeps
	# out the 79 packages its GUI, agent and workflow parts declare (LLM SDKs, mcp, mlflow, fastapi).
	$(PIP_INSTALL) --no-deps ptychodus==1.7.0
	touch $(STAMP)

# Wheels of ptycho's dependencies (with torch, safetensors, pytest, h5py, and neuraloperator for
# ptycho-fno: docs/install.md installs core + baseline + fno offline), so that tests can build
# a fresh virtual environment offline: pip install --no-index --find-links wheelhouse ...
# (tests/test_third_party_install.py). Nothing is downloaded at test time.
WHEELHOUSE := wheelhouse
.PHONY: wheelhouse
$(WHEELHOUSE)/.filled: Makefile pyproject.toml constraints.txt examples/ptycho-mynet/pyproject.toml plugins/ptycho_fno/pyproject.toml | $(STAMP)
	$(PIP) download --disable-pip-version-check -q -c constraints.txt --only-binary :all: --no-build-isolation \
		-d $(WHEELHOUSE) '.[torch,test]' h5py neuraloperator
	touch $@

wheelhouse: $(WHEELHOUSE)/.filled

# Debian packages the tests use: a PostgreSQL server (tests/test_results_store.py starts one on a
# loopback port) and Chromium with a font (the HTML pages are checked in a headless browser).
# Installed with apt-get when missing and running as root (CI); otherwise a hint is printed.
DEBIAN_PACKAGES := postgresql chromium fonts-dejavu-core
.PHONY: debian-packages
debian-packages:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v chromium >/dev/null \
		&& test -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(DEBIAN_PACKAGES); \
	else echo "note: the PostgreSQL and browser tests need: sudo apt-get install --no-install-recommends $(DEBIAN_PACKAGES)"; fi

install: $(STAMP) wheelhouse

test: install debian-packages
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
