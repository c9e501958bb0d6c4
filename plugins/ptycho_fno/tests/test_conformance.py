"""The three generators honour the generator contract (ptycho_core.testing conformance kit):
spec, cheap registration, predict shapes and dtype for C=1 and C=4, save/load reproduces the
predictions, a short fit lowers the loss, the same seed gives the same weights."""

import os

import pytest

if os.environ.get("CI") != "true":
    pytest.importorskip("torch")
    pytest.importorskip("neuralop")

from ptycho_core.testing import GeneratorConformance  # noqa: E402

#: Tiny networks: the architecture is the same, the suite stays fast on 2 CPU cores.
TINY_FNO = {"width": 8, "blocks": 2, "modes": 4, "cnn_blocks": 1}
TINY_UNO = {"width": 8, "levels": 2, "modes": 4, "max_hidden_channels": 16}


class TestFnoConformance(GeneratorConformance):
    generator = "ptycho-fno:fno"
    options = TINY_FNO


class TestHybridConformance(GeneratorConformance):
    generator = "ptycho-fno:hybrid"
    options = TINY_UNO


class TestStableHybridConformance(GeneratorConformance):
    generator = "ptycho-fno:stable_hybrid"
    options = TINY_UNO
