"""What users read about a generator comes from its spec (`summary`, `description`), and the specs
say what the code does: the README's table repeats each summary word for word, and every layer a
description names is one the built network really runs (and every normalisation or activation it
runs is named). Networks are traced with a torch function mode on one tiny forward pass."""

from __future__ import annotations

import os
import re

import pytest
from conftest import ROOT

from ptycho_core.plugins import PluginHost

FIRST_PARTY = ("fno", "hybrid", "stable_hybrid", "baseline", "pinn_tf", "lsqml", "epie", "rpie", "dm")

#: Words a description may use for a building block -> the torch function that block calls. A
#: description names a block only if the network runs it; normalisations and hidden activations
#: (`MUST_NAME`) it runs must be named.
BLOCKS = {
    r"batch ?norm": "batch_norm",
    r"group ?norm": "group_norm",
    r"instance ?norm": "instance_norm",
    r"layer ?norm": "layer_norm",
    r"gelu": "gelu",
    r"\brelu": "relu",
    r"silu": "silu",
    r"softplus": "softplus",
    r"tanh": "tanh",
    r"max-?pool": "max_pool2d",
    r"transposed conv": "conv_transpose2d",
    r"spectral": "bmm",  # the spectral convolution's per-mode channel mixing (ptycho_fno.blocks.spectral_dft)
}
MUST_NAME = {"batch_norm", "group_norm", "instance_norm", "layer_norm", "gelu", "relu", "silu"}


@pytest.fixture(scope="module")
def registry():
    registry = PluginHost(load=",".join(f"ptycho-{p}" for p in ("fno", "baseline", "pinn-tf", "ptychi"))).registry()
    missing = [name for name in FIRST_PARTY if name not in {s.name for s in registry.generators()}]
    assert not missing, f"first-party generators not installed: {missing} ({registry.problems})"
    return registry


def _readme_rows() -> dict[str, list[str]]:
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 4:
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_readme_table_repeats_each_generators_plugin_framework_and_summary(registry):
    rows = _readme_rows()
    assert sorted(rows) == sorted(FIRST_PARTY)
    for name, (plugin, framework, summary) in rows.items():
        spec = registry.generator(name)
        assert plugin.strip("`") == spec.factory.split(".")[0], name
        assert (framework, summary) == (spec.framework, spec.summary), name


def _torch_calls(spec) -> set[str]:
    """Names of the torch functions one forward pass of the generator's network calls."""
    torch = pytest.importorskip("torch") if os.environ.get("CI") != "true" else __import__("torch")
    from torch.overrides import TorchFunctionMode

    class Recorder(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.names: set[str] = set()

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.names.add(getattr(func, "__name__", ""))
            return func(*args, **(kwargs or {}))

    torch.manual_seed(0)
    network = spec.load_factory()(**spec.resolve_options({})).build(1, 16)
    with torch.no_grad(), Recorder() as recorder:
        network(torch.rand(2, 1, 16, 16))
    return recorder.names


@pytest.mark.parametrize("name", ["fno", "hybrid", "stable_hybrid", "baseline"])
def test_description_names_exactly_the_blocks_the_network_runs(registry, name):
    # `ptycho describe stable_hybrid` once described GroupNorm where the code used InstanceNorm.
    spec = registry.generator(name)
    calls = _torch_calls(spec)
    text = spec.description.lower()
    for pattern, function in BLOCKS.items():
        described, used = bool(re.search(pattern, text)), function in calls
        if described or function in MUST_NAME:
            assert described == used, f"{name}: {pattern!r} described {described}, {function} called {used}"


def test_description_names_only_declared_options(registry):
    for name in FIRST_PARTY:
        spec = registry.generator(name)
        named = set(re.findall(r"`(\w+)`", spec.description))
        assert named <= set(spec.options), f"{name}: description names undeclared options {named - set(spec.options)}"
