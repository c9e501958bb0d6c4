"""One prediction per pattern: a per-pattern generator sees each test pattern once at any gridsize;
a joint-channel one gives every test group and its patterns' patches average all their channels."""

import numpy as np
import pytest

from ptycho_core import data, pipeline
from ptycho_core.harness import worker
from ptycho_core.simulate import SimConfig, simulate_pair

TINY = SimConfig(train_objects=1, patch_size=16, object_size=40, step=4)


class Counting:
    """A generator whose patch is a fixed function of the pattern (times `channel_factor(k)` on
    channel k when it is joint); it counts the patterns it is asked to predict."""

    def __init__(self, per_pattern: bool):
        self.per_pattern = per_pattern
        self.predicted = 0

    def predict(self, diffraction, offsets):
        self.predicted += diffraction.shape[0] * diffraction.shape[1]
        value = diffraction.mean(axis=(-2, -1)) * (1 + 0.5j)  # (B, C): each pattern's own number
        if not self.per_pattern:
            value = value * (1 + np.arange(diffraction.shape[1]))  # a joint network: channel matters
        return np.broadcast_to(value[..., None, None], diffraction.shape).astype(np.complex64)


@pytest.fixture(scope="module")
def pair():
    return simulate_pair(TINY)


def test_pack_holds_every_pattern_once_padding_the_last_group():
    positions = np.random.default_rng(0).uniform(0, 30, (10, 2))
    groups = data.pack(positions, 2)
    assert groups.indices.shape == (3, 4)
    assert sorted(set(groups.indices.ravel())) == list(range(10))
    np.testing.assert_array_equal(groups.indices.ravel()[:10], np.arange(10))
    np.testing.assert_array_equal(groups.indices[-1, 2:], [9, 9])
    np.testing.assert_allclose(groups.offsets.mean(axis=1), 0, atol=1e-12)
    assert data.pack(positions, 1).indices.shape == (10, 1)


@pytest.mark.parametrize("gridsize", [1, 2, 3])
def test_a_per_pattern_generator_predicts_each_test_pattern_once(pair, gridsize):
    _, test = pair
    gen = Counting(per_pattern=True)
    groups = pipeline.prediction_groups(test, gridsize, per_pattern=True)
    patches = pipeline.predict_patterns(gen, test, groups, per_pattern=True, batch_size=3)
    c = gridsize * gridsize
    assert test.n <= gen.predicted < test.n + c  # once each, plus the last group's padding
    want = test.diffraction.mean(axis=(-2, -1)) * (1 + 0.5j)
    np.testing.assert_allclose(patches[:, 0, 0], want, rtol=1e-6)
    assert patches.shape == (test.n, 16, 16) and patches.dtype == np.complex64


def test_a_joint_generator_uses_every_channel_of_every_test_group(pair):
    _, test = pair
    gen = Counting(per_pattern=False)
    groups = pipeline.prediction_groups(test, 2, per_pattern=False)
    np.testing.assert_array_equal(groups.indices, data.group(test.positions, 2, train=False).indices)
    patches = pipeline.predict_patterns(gen, test, groups, per_pattern=False)
    assert gen.predicted == 4 * test.n
    own = test.diffraction.mean(axis=(-2, -1)) * (1 + 0.5j)
    factors = [[] for _ in range(test.n)]
    for group in groups.indices:
        for channel, index in enumerate(group):
            factors[index].append(channel + 1)
    want = own * np.array([np.mean(f) for f in factors])
    np.testing.assert_allclose(patches[:, 0, 0], want, rtol=1e-6)
    assert any(len(f) > 1 for f in factors)  # patterns that are neighbours in other groups count too


@pytest.mark.parametrize("per_pattern, factor", [(True, 1), (False, 4)])
def test_the_compare_child_times_one_patch_per_test_pattern(pair, per_pattern, factor):
    train, test = pair
    prepared = pipeline.prepare(train, test, gridsize=2)
    gen = Counting(per_pattern)
    patches, seconds = worker.predict_timed(gen, prepared)
    warm = min(pipeline.PREDICT_BATCH, -(-test.n // 4) if per_pattern else test.n) * 4
    assert gen.predicted - warm < factor * test.n + 4
    assert gen.predicted - warm >= factor * test.n
    assert patches.shape == (test.n, 16, 16) and seconds > 0
