"""The gauge-aware stitcher on known cases: per-patch complex scalars and a common additive pattern,
estimated from the overlaps alone, come back exactly."""

import numpy as np
import pytest

from ptycho_core import gauge, physics, stitch
from ptycho_core.registry import StitcherSpec
from ptycho_core.testing import check_stitcher

N = 16


def _case(seed=0, size=56, step=4.0, jitter=0.5):
    """A random complex object, a jittered raster scan at sub-pixel positions, a disk probe."""
    from ptycho_core.simulate import disk_probe

    rng = np.random.default_rng(seed)
    obj = rng.uniform(0.5, 1.0, (size, size)) * np.exp(1j * rng.uniform(-1, 1, (size, size)))
    axis = np.arange(N // 2, size - N // 2, step, dtype=np.float64)
    pos = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    pos = pos + rng.uniform(-jitter, jitter, pos.shape)
    return rng, obj, pos, disk_probe(N, N / 4)


def _scalars(rng, count):
    return rng.uniform(0.6, 1.4, count) * np.exp(1j * rng.uniform(-np.pi, np.pi, count))


def _relative_error_up_to_one_scalar(got, want):
    """||g got - want|| / ||want|| with the best complex g (the one scalar the metrics remove)."""
    g = np.vdot(got, want) / np.vdot(got, got)
    return float(np.linalg.norm(g * got - want) / np.linalg.norm(want))


def _common_pattern(rng, probe, size=0.1):
    """A random complex pattern on the pixels where the common error is estimated, with zero
    |P|^2-weighted mean (a constant belongs to the object)."""
    w = np.abs(probe) ** 2
    where = w >= gauge.COMMON_FLOOR * w.max()
    pattern = np.where(where, size * (rng.standard_normal(w.shape) + 1j * rng.standard_normal(w.shape)), 0)
    return pattern - where * (w * pattern).sum() / (w * where).sum()


@pytest.mark.parametrize("jitter", [0.0, 0.5])
@pytest.mark.parametrize("common", [False, True])
def test_random_patch_scalars_come_back_exactly(jitter, common):
    rng, obj, pos, probe = _case(jitter=jitter)
    truth = physics.extract(obj, pos, N).astype(np.complex128)
    a = _scalars(rng, len(pos))
    c, e = gauge.estimate(truth * a[:, None, None], pos, obj.shape, np.abs(probe) ** 2, common=common)
    ratio = c * a  # one global scalar when c undoes every a_i
    np.testing.assert_allclose(ratio / ratio.mean(), 1.0, atol=1e-7)
    assert np.abs(e).max() < 1e-4  # 0 (on an exact lattice, patterns periodic in the step are the object's)
    # the stitched object is the probe-weighted stitch of the true patches, up to one scalar
    got, weights = gauge.gauge((truth * a[:, None, None]).astype(np.complex64), pos, obj.shape, probe, common)
    want, want_weights = stitch.probe_weighted(truth, pos, obj.shape, probe)
    np.testing.assert_array_equal(weights, want_weights)
    assert _relative_error_up_to_one_scalar(got, want) < 1e-6


def test_a_known_common_pattern_is_removed():
    rng, obj, pos, probe = _case(seed=2, jitter=1.0)
    truth = physics.extract(obj, pos, N).astype(np.complex128)
    common = _common_pattern(rng, probe)
    a = _scalars(rng, len(pos))
    patches = (truth + common) / a[:, None, None]  # c_i p_i = E_i O + e with c_i = a_i
    c, e = gauge.estimate(patches, pos, obj.shape, np.abs(probe) ** 2)
    g = (c / a).mean()
    np.testing.assert_allclose(c / a / g, 1.0, atol=1e-7)
    np.testing.assert_allclose(e / g, common, atol=1e-7)
    want, _ = stitch.probe_weighted(truth, pos, obj.shape, probe)
    plain, _ = stitch.probe_weighted(truth + common, pos, obj.shape, probe)
    got, _ = gauge.gauge(patches.astype(np.complex64), pos, obj.shape, probe)
    assert _relative_error_up_to_one_scalar(plain, want) > 0.01  # the pattern shows when left in
    assert _relative_error_up_to_one_scalar(got, want) < 1e-6


def test_the_gauge_keeps_the_patches_mean_scalar():
    rng, obj, pos, probe = _case(seed=1)
    patches = physics.extract(obj, pos, N) * (1.2 * np.exp(0.3j) * (1 + 0.05 * _scalars(rng, len(pos))))[:, None, None]
    w = np.abs(probe) ** 2
    c, _ = gauge.estimate(patches, pos, obj.shape, w)
    energy = (w * np.abs(patches) ** 2).sum(axis=(1, 2))
    assert abs((energy * c).sum() / energy.sum() - 1) < 1e-9  # the Delta-weighted mean of c is 1


def test_each_separate_part_of_the_scan_gets_its_own_gauge():
    rng, obj, pos, probe = _case(seed=3, size=80, jitter=0.0)
    pos = pos[(pos[:, 1] < 30) | (pos[:, 1] > 50)]  # two halves that do not overlap
    a = _scalars(rng, len(pos))
    c, _ = gauge.estimate(physics.extract(obj, pos, N) * a[:, None, None], pos, obj.shape, np.abs(probe) ** 2)
    for half in (pos[:, 1] < 30, pos[:, 1] > 50):
        ratio = (c * a)[half]
        np.testing.assert_allclose(ratio / ratio.mean(), 1.0, atol=1e-7)


def test_an_empty_patch_is_left_alone():
    _, obj, pos, probe = _case(seed=4, jitter=0.0)
    patches = physics.extract(obj, pos, N)
    patches[5] = 0
    obj_hat, _ = gauge.gauge(patches, pos, obj.shape, probe)
    assert np.isfinite(obj_hat).all()


def test_gauge_is_registered_and_passes_the_stitcher_checks():
    from ptycho_core.plugins import load_registry

    spec = load_registry().stitcher("gauge")
    assert isinstance(spec, StitcherSpec) and spec.available
    assert set(spec.options) == {"common", "prior"}
    check_stitcher("gauge")


def test_stitching_by_name_takes_the_gauge_options_as_text():
    rng, obj, pos, probe = _case(seed=5)
    patches = physics.extract(obj, pos, N) * _scalars(rng, len(pos))[:, None, None]
    got, _ = stitch.stitch("gauge", patches, pos, obj.shape, probe, common="false")
    want, _ = stitch.probe_weighted(physics.extract(obj, pos, N), pos, obj.shape, probe)
    assert _relative_error_up_to_one_scalar(got, want) < 1e-6


def test_a_prior_pulls_the_scalars_towards_one_and_still_corrects_each_patch():
    rng, obj, pos, probe = _case(seed=6)
    truth = physics.extract(obj, pos, N)
    a = 1 + 0.1 * (rng.standard_normal(len(pos)) + 1j * rng.standard_normal(len(pos)))
    w = np.abs(probe) ** 2
    c, _ = gauge.estimate(truth * a[:, None, None], pos, obj.shape, w, common=False, prior=0.05)
    ratio = c * a  # the patch-to-patch scatter shrinks from 12 % to 2 % (mean), not to 0
    assert np.abs(ratio / ratio.mean() - 1).mean() < 0.25 * np.abs(a / a.mean() - 1).mean()
    kept, _ = gauge.estimate(truth * a[:, None, None], pos, obj.shape, w, common=False, prior=1e8)
    np.testing.assert_allclose(kept, 1.0, atol=1e-6)  # an overwhelming prior leaves the patches alone
