"""The overlap constraint pays off: at the same training cost, gridsize 2 beats gridsize 1 for a
physics-informed generator (issue 9). Tiny and seeded; the default comparison's figures are in
the plugin README and the root README."""

import os

import pytest

if os.environ.get("CI") == "true":
    import torch  # noqa: F401
else:
    pytest.importorskip("torch")
    pytest.importorskip("neuralop")

from ptycho_core.generator import TrainConfig  # noqa: E402
from ptycho_core.pipeline import predict_anchors, prepare, stitch_and_score  # noqa: E402
from ptycho_core.simulate import SimConfig, simulate_pair  # noqa: E402

#: Tiny data of the default data's kind (aberrated probe, two-material phase, several training
#: objects) at N=16.
TINY = SimConfig(patch_size=16, object_size=40, train_objects=2, step=3.0)


def _score(gridsize: int, epochs: int) -> dict:
    import torch
    from ptycho_fno.models import build_fno

    torch.set_num_threads(1)
    train, test = simulate_pair(TINY)
    prepared = prepare(train, test, gridsize, seed=0)
    gen = build_fno(width=16, blocks=2, modes=8, cnn_blocks=1)
    # the same patterns per step (4) and steps per epoch at both gridsizes: the same cost
    config = TrainConfig(epochs=epochs, batch_size=4 // gridsize**2, lr=2e-3, seed=0, device="cpu", patience=0)
    gen.fit(prepared.train, prepared.val, config, lambda event: None)
    patches = predict_anchors(gen, prepared.test, prepared.test_groups)
    return stitch_and_score(patches, prepared.test).metrics


@pytest.fixture(scope="module")
def scores():
    return {g: _score(g, epochs=12) for g in (1, 2)}


def test_gridsize_2_beats_gridsize_1_at_the_same_cost(scores):
    one, two = scores[1], scores[2]
    assert two["amp_ssim"] > one["amp_ssim"] + 0.02, (one["amp_ssim"], two["amp_ssim"])
    assert two["phase_ssim"] > one["phase_ssim"] + 0.02, (one["phase_ssim"], two["phase_ssim"])


def test_no_twin_at_either_gridsize_under_the_aberrated_probe(scores):
    assert scores[1]["twin_share"] < 0.05 and scores[2]["twin_share"] < 0.05
