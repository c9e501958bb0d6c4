"""`baseline` honours the generator contract (the ptycho_core.testing conformance kit): complete spec,
registration without torch, predict shapes and dtype for C=1 and C=4, save/load reproduces the
predictions, a short supervised fit lowers the loss, the same seed gives the same result."""

import os

import pytest

if os.environ.get("CI") != "true":
    pytest.importorskip("torch")

from ptycho_core.testing import GeneratorConformance  # noqa: E402


class TestBaselineConformance(GeneratorConformance):
    generator = "ptycho-baseline:baseline"
    options = {"scale": 0.25}  # 8, 16, 32 filters: the same architecture, fast on 2 CPU cores
