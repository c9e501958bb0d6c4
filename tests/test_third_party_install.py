"""A third-party plugin installed the way its users install it, into a fresh virtual environment.

How the environment is built (offline, no path tricks): wheels of the core (`ptycho`), of the
first-party `ptycho-baseline`, of the example plugin `examples/ptycho-mynet` and of a plugin whose
import fails are built from copies of their sources with the main environment's pip
(`pip wheel --no-deps --no-build-isolation`). A new venv (plain `python -m venv` from the base
interpreter: nothing inherited, no `.pth` files, no editable installs of ours) then gets them with
`pip install --no-index --find-links wheelhouse --find-links dist`, the third-party dependencies
(numpy, torch, safetensors, h5py, pytest, setuptools, ...) coming from the `wheelhouse/` folder
that `make install` fills (`make wheelhouse`). pip runs with `PIP_CONFIG_FILE=/dev/null` and no
index: nothing is downloaded at test time. Commands run outside the working tree, so the sources
cannot leak in through the current directory.

The checks: the plugin appears in `ptycho list-generators` with its distribution and version;
`ptycho compare` runs it beside the first-party `baseline`; it passes its own conformance tests;
after `pip uninstall` it is gone; a plugin whose import fails is reported by `ptycho plugins` while
the CLI keeps working; and the runnable blocks of docs/writing-a-plugin.md work as pasted, which
scaffolds a plugin with `ptycho new-plugin` (templates from the installed core wheel), installs it
and runs its own tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WHEELHOUSE = ROOT / "wheelhouse"
CONSTRAINTS = ROOT / "constraints.txt"
EXAMPLE = ROOT / "examples" / "ptycho-mynet"
BASELINE = ROOT / "plugins" / "ptycho_baseline"
FNO = ROOT / "plugins" / "ptycho_fno"
GUIDE = ROOT / "docs" / "writing-a-plugin.md"
INSTALL_DOC = ROOT / "docs" / "install.md"

pytestmark = pytest.mark.slow

BROKEN_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "ptycho-broken"
version = "0.0.1"
dependencies = ["ptycho"]

[project.entry-points.ptycho]
ptycho_broken = "ptycho_broken.plugin"

[tool.setuptools]
packages = ["ptycho_broken"]
"""
BROKEN_PLUGIN = 'raise ImportError("ptycho-broken needs libfoo, which is not installed")\n'
SOURCE_IGNORE = shutil.ignore_patterns(
    "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", ".venv", ".git"
)


def _clean_env(**extra) -> dict:
    """The environment for pip and the venv's commands: no outer plugin settings, no pip config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PTYCHO_", "PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.update(extra)
    return env


def _run(args, *, check=True, timeout=300, cwd=None, **env) -> subprocess.CompletedProcess:
    """Run a command; in the venv's folder unless told otherwise, so the working tree (the current
    directory, which `python -c` and `python -m` put first on sys.path) cannot leak in."""
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=_clean_env(**env), cwd=cwd
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def _build_wheels(sources: list[Path], dist: Path) -> None:
    """Wheels of local projects, built with the main environment's pip and setuptools (offline)."""
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", dist, *sources])


def _copy_checkout(dst: Path) -> Path:
    """The parts of a checkout that docs/install.md installs from (the wheelhouse linked, not copied)."""
    dst.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "constraints.txt"):
        shutil.copy2(ROOT / name, dst / name)
    for name in ("ptycho_core", "cli"):
        shutil.copytree(ROOT / name, dst / name, ignore=SOURCE_IGNORE)
    for plugin in (BASELINE, FNO):
        shutil.copytree(plugin, dst / "plugins" / plugin.name, ignore=SOURCE_IGNORE)
    (dst / "wheelhouse").symlink_to(WHEELHOUSE, target_is_directory=True)
    return dst


def doc_blocks(path: Path = GUIDE) -> list[tuple[str, str, bool]]:
    """(language, code, runnable) of every fenced block of a doc, in order."""
    text = path.read_text()
    return [(m[2], m[3], bool(m[1])) for m in re.finditer(r"(<!-- runnable -->\n)?```(\w*)\n(.*?)```", text, re.S)]


def doc_script(path: Path) -> str:
    """The runnable blocks of a doc as one bash script (Python blocks through `python -`)."""
    script = ["set -eux -o pipefail"]
    for language, code, runnable in doc_blocks(path):
        if runnable and language == "bash":
            script.append(code)
        elif runnable and language == "python":
            script.append(f"python - <<'PTYCHO_GUIDE_PY'\n{code}PTYCHO_GUIDE_PY")
    return "\n".join(script) + "\n"


def _venv_home(tmp: Path) -> Path:
    """A new folder for the venv (about 1.2 GB in 30,000 files, mostly torch): on tmpfs when there is
    room, because unpacking and deleting that many files is I/O-bound on slow disks (deleting took
    over a minute here); otherwise under pytest's temporary folder. Removed after the tests."""
    shm = Path("/dev/shm")
    try:
        if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 4 * 2**30:
            return Path(tempfile.mkdtemp(prefix="ptycho-venv-", dir=shm))
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix="ptycho-venv-", dir=tmp))


class Venv:
    """A fresh virtual environment and helpers to run its `ptycho`, `pip` and `pytest`."""

    def __init__(self, path: Path, dist: Path):
        self.path, self.dist = path, dist
        self.bin = path / "bin"

    def pip(self, *args, check=True):
        return _run([self.bin / "python", "-m", "pip", *args], check=check, cwd=self.path.parent)

    def install(self, *requirements):
        return self.pip(
            "install", "-q", "--no-compile", "--no-index", "--find-links", WHEELHOUSE, "--find-links", self.dist,
            "-c", CONSTRAINTS, *requirements,
        )  # fmt: skip

    def installed(self, dist_name: str) -> bool:
        return self.pip("show", "-q", dist_name, check=False).returncode == 0

    def ptycho(self, *args, check=True, **env):
        return _run([self.bin / "ptycho", *args], check=check, cwd=self.path.parent, **env)

    def ptycho_json(self, *args):
        return json.loads(self.ptycho(*args, "--json").stdout)

    def pytest(self, tests: Path, cwd_copy: Path):
        shutil.copytree(tests, cwd_copy, ignore=SOURCE_IGNORE)
        return _run(
            [self.bin / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd_copy],
            check=False,
            cwd=cwd_copy.parent,
        )

    def python(self, code: str):
        return _run([self.bin / "python", "-c", code], cwd=self.path.parent)


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    if not (WHEELHOUSE / ".filled").is_file():
        message = f"{WHEELHOUSE} is not filled: run `make wheelhouse` (part of `make install`)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    tmp = tmp_path_factory.mktemp("third-party")
    dist = tmp / "dist"
    broken = tmp / "src" / "ptycho-broken"
    (broken / "ptycho_broken").mkdir(parents=True)
    (broken / "pyproject.toml").write_text(BROKEN_PYPROJECT)
    (broken / "ptycho_broken" / "__init__.py").write_text("")
    (broken / "ptycho_broken" / "plugin.py").write_text(BROKEN_PLUGIN)
    _build_wheels([shutil.copytree(EXAMPLE, tmp / "src" / "ptycho-mynet", ignore=SOURCE_IGNORE), broken], dist)
    checkout = _copy_checkout(tmp / "checkout")
    home = _venv_home(tmp)
    try:
        env = Venv(home / "ptycho-env", dist)
        # docs/install.md as written: the venv in ~/ptycho-env, torch first, then core, baseline, fno
        # and pytest together; then core and baseline again from a copy of the sources.
        (tmp / "install.sh").write_text(doc_script(INSTALL_DOC))
        path = f"{Path(getattr(sys, '_base_executable', sys.executable)).parent}{os.pathsep}{os.environ['PATH']}"
        proc = _run(["bash", tmp / "install.sh"], check=False, timeout=600, cwd=checkout, HOME=str(home), PATH=path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "baseline" in proc.stdout and "ptycho-baseline" in proc.stdout, proc.stdout
        assert "stable_hybrid" in proc.stdout and "ptycho-fno" in proc.stdout, proc.stdout
        assert env.installed("pytest") and env.installed("neuraloperator")
        # what the guide says: installing from a folder leaves setuptools' folders in it
        assert list(checkout.glob("*.egg-info")) and list((home / "ptycho-src").glob("*.egg-info")), proc.stdout
        yield env
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def mynet(venv) -> Venv:
    """The venv with ptycho-mynet installed from its wheel (reinstalled if a test removed it)."""
    if not venv.installed("ptycho-mynet"):
        venv.install("ptycho-mynet")
    return venv


def _by_name(entries: list[dict]) -> dict:
    return {e["name"]: e for e in entries}


def test_installed_plugin_is_listed_with_its_distribution_and_version(mynet):
    where = mynet.python("import ptycho_core, ptycho_mynet; print(ptycho_core.__file__, ptycho_mynet.__file__)")
    assert all(Path(p).is_relative_to(mynet.path) for p in where.stdout.split()), where.stdout  # no path tricks
    generators = _by_name(mynet.ptycho_json("list-generators"))
    assert generators["mynet"]["plugin"] == "ptycho-mynet"
    assert generators["mynet"]["version"] == "0.1.0"
    assert generators["mynet"]["status"] == "available"
    assert generators["baseline"]["plugin"] == "ptycho-baseline"
    assert _by_name(mynet.ptycho_json("list-loaders"))["mynet_h5"]["plugin"] == "ptycho-mynet"
    assert _by_name(mynet.ptycho_json("list-stitchers"))["gaussian"]["plugin"] == "ptycho-mynet"
    plugins = {p["distribution"]: p for p in mynet.ptycho_json("plugins")}
    assert plugins["ptycho-mynet"]["version"] == "0.1.0"
    assert not plugins["ptycho-mynet"].get("problems") and not plugins["ptycho-mynet"].get("error")


def test_installed_plugin_runs_in_compare_beside_a_first_party_generator(mynet, tmp_path):
    train, test, out = tmp_path / "train.npz", tmp_path / "test.npz", tmp_path / "cmp"
    mynet.ptycho("simulate", "--out", train, "--test-out", test, "--patch-size", "16", "--object-size", "48")
    proc = mynet.ptycho(
        "compare", "--generators", "mynet,baseline", "--data", train, "--test-data", test,
        "--epochs", "1", "--batch-size", "16", "-o", "mynet.width=8", "-o", "baseline.scale=0.25",
        "--stitcher", "gaussian", "--out", out, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = {r["generator"]: r for r in json.loads((out / "metrics.json").read_text())["runs"]}
    assert runs["mynet"]["status"] == "ok" and runs["baseline"]["status"] == "ok", runs
    assert runs["mynet"]["plugin"] == "ptycho-mynet" and runs["baseline"]["plugin"] == "ptycho-baseline"
    assert (out / "report.html").is_file()


def test_installed_plugin_passes_its_own_conformance_tests(mynet, tmp_path):
    proc = mynet.pytest(EXAMPLE / "tests", tmp_path / "tests")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "20 passed" in proc.stdout, (
        proc.stdout
    )  # 9 generator (per_pattern declared truthfully too), 7 loader (a lying header too), 3 stitcher checks, 1 test


def test_uninstalled_plugin_is_gone(mynet):
    mynet.pip("uninstall", "-y", "-q", "ptycho-mynet")
    assert "mynet" not in _by_name(mynet.ptycho_json("list-generators"))
    assert "mynet_h5" not in _by_name(mynet.ptycho_json("list-loaders"))
    assert "ptycho-mynet" not in {p["distribution"] for p in mynet.ptycho_json("plugins")}
    proc = mynet.ptycho("describe", "mynet", check=False)
    assert proc.returncode == 2 and "unknown" in proc.stderr and "'mynet'" in proc.stderr


def test_plugin_whose_import_fails_is_reported_while_the_cli_keeps_working(venv):
    venv.install("ptycho-broken")
    try:
        assert "baseline" in _by_name(venv.ptycho_json("list-generators"))
        plugins = {p["distribution"]: p for p in venv.ptycho_json("plugins")}
        report = json.dumps(plugins["ptycho-broken"])
        assert "ptycho-broken needs libfoo" in report, report
        table = venv.ptycho("plugins").stdout
        assert "ptycho-broken" in table and "libfoo" in table
        strict = venv.ptycho("list-generators", check=False, PTYCHO_STRICT_PLUGINS="1")
        assert strict.returncode == 2 and "libfoo" in strict.stderr
        assert "Traceback" not in strict.stderr
    finally:
        venv.pip("uninstall", "-y", "-q", "ptycho-broken")


def guide_blocks() -> list[tuple[str, str, bool]]:
    """(language, code, runnable) of every fenced block of the plugin author guide, in order."""
    return doc_blocks(GUIDE)


@pytest.mark.parametrize(("doc", "runnable_blocks"), [(GUIDE, 6), (INSTALL_DOC, 2)])
def test_doc_python_blocks_compile_and_toml_blocks_parse(doc, runnable_blocks):
    blocks = doc_blocks(doc)
    assert sum(runnable for _, _, runnable in blocks) >= runnable_blocks
    for language, code, _ in blocks:
        if language == "python":
            compile(code, str(doc), "exec")
        elif language == "toml":
            tomllib.loads(code)
        else:
            assert language in ("bash", ""), language


def test_plugin_guide_shows_the_scaffold_and_hooks_as_they_are(tmp_path):
    """The guide's copies of the scaffold's files and of the hook specs cannot drift from them."""
    from ptycho_cli.scaffold import render_plugin

    scaffold = render_plugin("tinynet", tmp_path)
    copies = {
        'name="tinynet",': scaffold / "ptycho_tinynet" / "plugin.py",
        "class TinynetNet": scaffold / "ptycho_tinynet" / "network.py",
        'name = "ptycho-tinynet"': scaffold / "pyproject.toml",
        "@hookspec": ROOT / "ptycho_core" / "hookspecs.py",
    }
    for marker, source in copies.items():
        found = [code for _, code, _ in guide_blocks() if marker in code]
        assert len(found) == 1, marker
        assert found[0] in source.read_text(), f"the guide's copy of {source.name} differs from it"


def test_plugin_guide_walkthrough_runs_as_written(venv, tmp_path):
    """Scaffold, editable install, listing, the scaffold's own tests, check_generator, discovery
    debugging, a wheel, uninstall: the guide's runnable blocks, pasted in order into one shell."""
    (tmp_path / "guide.sh").write_text(doc_script(GUIDE))
    path = f"{venv.bin}{os.pathsep}{os.environ.get('PATH', '')}"
    proc = _run(
        ["bash", tmp_path / "guide.sh"], check=False, timeout=600, cwd=tmp_path, PATH=path,
        VIRTUAL_ENV=str(venv.path), PIP_FIND_LINKS=f"{WHEELHOUSE} {venv.dist}", PIP_CONSTRAINT=str(CONSTRAINTS),
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "ptycho-tinynet" in proc.stdout  # listed with its distribution
    assert "10 passed" in proc.stdout, output[-3000:]  # the scaffold's own tests
    assert "passed  factory_builds" in proc.stdout  # check_generator
    assert not venv.installed("ptycho-tinynet")
