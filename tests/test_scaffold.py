"""`ptycho new-plugin NAME` writes a complete plugin package whose registration is cheap and whose
generator passes the spec and factory checks; the example plugin is still the scaffold's output.

(Installing the generated package and running its own tests happens in
tests/test_third_party_install.py, in a fresh virtual environment.)
"""

from __future__ import annotations

import importlib
import os
import sys
import tomllib
from pathlib import Path

import pytest

from ptycho_cli.scaffold import plugin_names, render_plugin
from ptycho_core.plugins import PluginHost
from ptycho_core.testing import conformance, run_generator_checks

ROOT = Path(__file__).resolve().parents[1]
EXPECTED_FILES = {
    "pyproject.toml",
    "README.md",
    "ptycho_demo/__init__.py",
    "ptycho_demo/plugin.py",
    "ptycho_demo/network.py",
    "tests/test_demo.py",
}


@pytest.fixture
def demo(tmp_path):
    return render_plugin("demo", tmp_path)


def test_new_plugin_writes_a_complete_package(invoke, tmp_path):
    result = invoke("new-plugin", "demo", "--dir", tmp_path)
    assert result.exit_code == 0, result.output
    target = tmp_path / "ptycho-demo"
    assert f"created {target}" in result.output
    files = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
    assert files == EXPECTED_FILES
    for path in target.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "{{" not in text and "}}" not in text, path
            if path.suffix == ".py":
                compile(text, str(path), "exec")


def test_generated_pyproject_declares_the_entry_point_and_dependencies(demo):
    project = tomllib.loads((demo / "pyproject.toml").read_text())["project"]
    assert project["name"] == "ptycho-demo"
    assert project["entry-points"]["ptycho"] == {"ptycho_demo": "ptycho_demo.plugin"}
    names = {dep.split(">")[0].split("=")[0].split("<")[0] for dep in project["dependencies"]}
    assert {"ptycho", "torch", "safetensors"} <= names


def test_generated_plugin_registers_its_generator_without_importing_a_framework(demo):
    found = conformance.registration_imports(module="ptycho_demo.plugin", extra_path=(str(demo),))
    assert found["recorded"]["generator"] == ["demo"]
    assert found["heavy"] == []


def test_generated_generator_spec_and_factory_pass_the_conformance_checks(demo, monkeypatch):
    if os.environ.get("CI") != "true":
        pytest.importorskip("torch")
    monkeypatch.syspath_prepend(str(demo))
    importlib.invalidate_caches()
    for module in [m for m in sys.modules if m.startswith("ptycho_demo")]:
        monkeypatch.delitem(sys.modules, module)
    plugin = importlib.import_module("ptycho_demo.plugin")
    host = PluginHost(load="")
    with host.registered(plugin, "ptycho_demo", distribution="ptycho-demo"):
        spec = host.registry().generator("ptycho-demo:demo")
    assert spec.factory == "ptycho_demo.network:build_demo"
    checks = ("spec_is_complete", "registration_imports_no_framework", "factory_builds")
    results = run_generator_checks(spec, checks=checks, plugin_module="ptycho_demo.plugin", extra_path=(str(demo),))
    assert all(r.status == "passed" for r in results), [str(r) for r in results]


def test_new_plugin_refuses_to_overwrite_a_folder(invoke, one_line_error, demo):
    line = one_line_error(invoke("new-plugin", "demo", "--dir", demo.parent))
    assert "already exists" in line


@pytest.mark.parametrize("name", ["My-Net", "1net", "ptycho_mynet", "class", "my net"])
def test_new_plugin_refuses_names_that_cannot_be_a_package(invoke, one_line_error, tmp_path, name):
    line = one_line_error(invoke("new-plugin", name, "--dir", tmp_path))
    assert "plugin name" in line
    assert not any(tmp_path.iterdir())


def test_derived_names_follow_the_distribution_conventions():
    names = plugin_names("my_net")
    assert (names["dist"], names["package"], names["camel"]) == ("ptycho-my-net", "ptycho_my_net", "MyNet")


def test_example_plugin_is_still_the_scaffold_output_where_unchanged(tmp_path):
    """examples/ptycho-mynet was made by `ptycho new-plugin mynet`; its network and package init are
    unchanged, so scaffold and example cannot drift apart silently."""
    fresh = render_plugin("mynet", tmp_path)
    example = ROOT / "examples" / "ptycho-mynet"
    for rel in ("ptycho_mynet/network.py", "ptycho_mynet/__init__.py"):
        assert (example / rel).read_text() == (fresh / rel).read_text(), rel
