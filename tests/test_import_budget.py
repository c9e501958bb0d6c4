"""Listing never imports numpy or a framework (docs/design.md#layers), checked in a fresh process."""

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("numpy", "torch", "tensorflow", "keras", "jax", "scipy", "skimage", "matplotlib", "rich", "sqlalchemy")

PROBE = """
import json, sys
from ptycho_cli.main import main
code = 0
try:
    main({args!r})
except SystemExit as exc:
    code = exc.code or 0
heavy = {heavy!r}
loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
print("@@" + json.dumps({{"code": code, "loaded": loaded}}))
"""


def _loaded_after(args, load_plugins):
    env = dict(os.environ)
    env.pop("PTYCHO_STRICT_PLUGINS", None)
    if load_plugins is None:
        env.pop("PTYCHO_LOAD_PLUGINS", None)
    else:
        env["PTYCHO_LOAD_PLUGINS"] = load_plugins
    code = PROBE.format(args=list(args), heavy=HEAVY)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    marker = [line for line in proc.stdout.splitlines() if line.startswith("@@")]
    assert marker, proc.stdout + proc.stderr
    result = json.loads(marker[-1][2:])
    assert result["code"] == 0, f"ptycho {' '.join(args)} failed: {proc.stdout}{proc.stderr}"
    return result["loaded"]


COMMANDS = [
    ["list-generators"],
    ["list-generators", "--json"],
    ["list-stitchers"],
    ["list-loaders"],
    ["plugins", "--json"],
    ["describe", "probe_weighted"],
    ["--help"],
    ["results", "--help"],
    ["results", "leaderboard", "--help"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a))
def test_listing_with_core_plugins_only_imports_no_numerical_library(args):
    assert _loaded_after(args, load_plugins="") == []


@pytest.mark.parametrize("args", [["list-generators"], ["plugins"], ["describe", "mean"]], ids=lambda a: " ".join(a))
def test_listing_with_every_installed_plugin_imports_no_numerical_library(args):
    # Every installed plugin's registration must stay cheap too (first-party plugins included).
    assert _loaded_after(args, load_plugins=None) == []
