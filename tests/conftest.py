"""Shared fixtures for the core tests: a hermetic plugin host, a CLI runner, tiny data.

Tests that list plugins use `core_host` (built-ins only, no entry points) unless discovery is
what they test. Data are tiny (N = 16) and seeded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Where the PtychoPINN raw sample is: `../shared/data/` beside the checkout (as in CI), or an override.
SAMPLE_CANDIDATES = (
    os.environ.get("PTYCHO_SAMPLE_NPZ", ""),
    str(ROOT.parent / "shared" / "data" / "ptychopinn_raw_sample.npz"),
)


@pytest.fixture(autouse=True, scope="session")
def _results_db(tmp_path_factory):
    """Whatever the tests run records into a throwaway results database, never the user's: PTYCHO_DB
    for this process and its children, XDG_DATA_HOME for the default location (and fresh venvs)."""
    base = tmp_path_factory.mktemp("results-db")
    patch = pytest.MonkeyPatch()
    patch.setenv("PTYCHO_DB", str(base / "session.db"))
    patch.setenv("XDG_DATA_HOME", str(base / "xdg-data"))
    yield base / "session.db"
    patch.undo()


@pytest.fixture(autouse=True)
def _no_strict_plugins(monkeypatch):
    """The outer environment's strict mode must not leak into tests."""
    monkeypatch.delenv("PTYCHO_STRICT_PLUGINS", raising=False)


def _data_file(candidates, message: str) -> Path:
    """The first existing file among `candidates`; skipped when none, except under CI=true (failed)."""
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def sample_npz() -> Path:
    """The real PtychoPINN raw sample file (skipped when absent, except under CI=true)."""
    return _data_file(
        SAMPLE_CANDIDATES,
        "ptychopinn_raw_sample.npz not found in ../shared/data beside the checkout (or set PTYCHO_SAMPLE_NPZ)",
    )


@pytest.fixture
def core_host():
    """A plugin host with the built-in plugin only: no entry points, whatever is installed."""
    from ptycho_core.plugins import PluginHost

    return PluginHost(load="")


@pytest.fixture
def invoke(core_host):
    """Run the CLI in-process: `invoke("list-generators", "--json", host=None)` -> click Result."""
    from click.testing import CliRunner

    from ptycho_cli.main import State, cli

    def run(*args, host=None):
        return CliRunner().invoke(cli, [str(a) for a in args], obj=State(host=host or core_host))

    return run


@pytest.fixture(scope="session")
def tiny_pair():
    """(train, test) simulated datasets: N = 16, 48 x 48 objects, step 3 -> 100 patterns each."""
    from ptycho_core.simulate import SimConfig, simulate_pair

    return simulate_pair(SimConfig(train_objects=1, patch_size=16, object_size=48, step=3.0, nphotons=1e4))


def _one_line_error(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    return lines[0]


@pytest.fixture
def one_line_error():
    """`one_line_error(result)`: assert a CLI result is a user error (exit 2, one line, no
    traceback) and return that line."""
    return _one_line_error


#: The dummy generators of `dummy_comparison`: two that score, one that fails in fit.
DUMMY_COMPARED = ["dummy_intensity", "dummy_supervised", "dummy_raising"]


@pytest.fixture(scope="session")
def dummy_comparison(tmp_path_factory):
    """A real comparison folder from the numpy dummies (tiny, two children at a time, ~5 s), and
    the SQLite file that `compare.run` recorded it in: (folder, result, db path)."""
    from ptycho_core import compare
    from ptycho_core.plugins import PluginHost
    from ptycho_core.simulate import SimConfig
    from ptycho_core.testing import dummies

    base = tmp_path_factory.mktemp("dummy-comparison")
    host = PluginHost(load="")
    host.register(dummies, "ptycho-dummies")
    sim = SimConfig(train_objects=1, patch_size=16, object_size=48, step=4)
    db = base / "recorded.db"
    result = compare.run(
        DUMMY_COMPARED, host=host, out=base / "cmp", simulate=sim, epochs=1, jobs=2, db=str(db), gridsize=2
    )
    return base / "cmp", result, db


#: The Siemens star (tike 0.26.0's measured test scan), made by `make star` (part of `make install`).
STAR_CANDIDATES = (
    os.environ.get("PTYCHO_STAR_NPZ", ""),
    str(ROOT / "external" / "siemens-star" / "siemens-star-small.npz"),
)


@pytest.fixture(scope="session")
def siemens_star() -> Path:
    """The raw Siemens star file from tike's sdist (skipped when absent, except under CI=true)."""
    return _data_file(
        STAR_CANDIDATES,
        "external/siemens-star/siemens-star-small.npz not found: run `make star` (or set PTYCHO_STAR_NPZ)",
    )
