"""Built-in stitchers, the canvas sizing and stitching through the registry."""

import numpy as np
import pytest

from ptycho_core import physics, stitch
from ptycho_core.errors import UsageError
from ptycho_core.hookspecs import hookimpl
from ptycho_core.registry import Option, StitcherSpec

N = 16


def _scan(rng, step=4, size=56, jitter=0.0):
    axis = np.arange(N // 2, size - N // 2, step, dtype=np.float64)
    pos = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    return pos + rng.uniform(-jitter, jitter, pos.shape)


def _object(rng, size=56):
    return (rng.uniform(0.5, 1.0, (size, size)) * np.exp(1j * rng.uniform(-1, 1, (size, size)))).astype(np.complex64)


def _disk_probe():
    from ptycho_core.simulate import disk_probe

    return disk_probe(N, N / 4)


@pytest.mark.parametrize("stitcher", [stitch.probe_weighted, stitch.mean])
def test_stitching_true_patches_at_integer_positions_recovers_the_object(stitcher):
    rng = np.random.default_rng(0)
    obj, pos = _object(rng), _scan(rng)
    obj_hat, weights = stitcher(physics.extract(obj, pos, N), pos, obj.shape, _disk_probe())
    assert obj_hat.dtype == np.complex64 and weights.dtype == np.float32
    assert obj_hat.shape == weights.shape == obj.shape
    covered = weights > 0
    assert covered.sum() > 0.5 * obj.size
    np.testing.assert_allclose(obj_hat[covered], obj[covered], atol=1e-5)
    assert np.all(obj_hat[~covered] == 0)


def test_probe_weighted_is_the_probe_intensity_weighted_average():
    probe = _disk_probe()
    pos = np.array([[20.0, 20.0], [20.0, 20.0]])
    patches = np.stack([np.full((N, N), 1.0 + 0j), np.full((N, N), 3.0 + 0j)])
    obj, weights = stitch.probe_weighted(patches, pos, (40, 40), probe)
    inside = weights > 0
    np.testing.assert_allclose(obj[inside], 2.0, atol=1e-6)
    # The weight map is the splatted |P|^2 of both patterns.
    np.testing.assert_allclose(weights[12:28, 12:28], 2 * np.abs(probe) ** 2 * (np.abs(probe) ** 2 >= 1e-3), atol=1e-6)


def test_low_weight_pixels_are_zero_in_object_and_weights():
    probe = np.full((N, N), 1e-3, np.complex64)
    probe[N // 2, N // 2] = 1.0  # |P|^2 = 1e-6 everywhere but the centre: below 1e-3 of the max
    pos = np.array([[20.0, 20.0]])
    obj, weights = stitch.probe_weighted(np.ones((1, N, N), np.complex64), pos, (40, 40), probe)
    assert np.count_nonzero(weights) == 1 and np.count_nonzero(obj) == 1 and obj[20, 20] == 1


def test_mean_uses_a_central_crop_of_half_the_patch_by_default():
    pos = np.array([[20.0, 20.0]])
    _, weights = stitch.mean(np.ones((1, N, N), np.complex64), pos, (40, 40), _disk_probe())
    ys, xs = np.nonzero(weights)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (16, 23, 16, 23)  # 8 x 8 around pixel (20, 20)
    _, weights = stitch.mean(np.ones((1, N, N), np.complex64), pos, (40, 40), _disk_probe(), crop=N)
    assert np.count_nonzero(weights) == N * N
    with pytest.raises(UsageError, match="crop"):
        stitch.mean(np.ones((1, N, N), np.complex64), pos, (40, 40), _disk_probe(), crop=N + 2)


def test_subpixel_positions_of_a_smooth_object_stitch_closely():
    from ptycho_core.simulate import grf_object

    rng = np.random.default_rng(1)
    obj = ((0.5 + grf_object(56, rng)) * np.exp(1j * grf_object(56, rng))).astype(np.complex64)
    pos = _scan(rng, jitter=0.5)
    obj_hat, weights = stitch.probe_weighted(physics.extract(obj, pos, N), pos, obj.shape, _disk_probe())
    inner = np.zeros(obj.shape, bool)
    inner[12:44, 12:44] = True
    assert np.abs(obj_hat - obj)[inner].max() < 0.02


def test_canvas_for_covers_every_patch_and_records_the_shift():
    rng = np.random.default_rng(2)
    pos = rng.uniform(-30.0, 50.0, size=(20, 2))
    (h, w), (dy, dx) = stitch.canvas_for(pos, N)
    assert dy == np.floor(dy) and dx == np.floor(dx)
    shifted = pos + (dy, dx)
    ones = np.ones((20, N, N))
    mass = physics.splat(ones, shifted, (h, w))
    assert mass.sum() == pytest.approx(ones.sum())  # nothing falls off the canvas
    assert mass[0].any() and mass[:, 0].any()  # and it is no larger than needed at the start
    assert mass[-2:].any() and mass[:, -2:].any()
    assert stitch.canvas_for(pos, N, object_shape=(64, 70)) == ((64, 70), (0.0, 0.0))


def test_stitch_resolves_built_ins_through_the_registry(core_host):
    rng = np.random.default_rng(3)
    obj, pos = _object(rng), _scan(rng)
    patches = physics.extract(obj, pos, N)
    reg = core_host.registry()
    direct = stitch.mean(patches, pos, obj.shape, _disk_probe(), crop=6)
    via = stitch.stitch("mean", patches, pos, obj.shape, _disk_probe(), registry=reg, crop="6")
    np.testing.assert_array_equal(direct[0], via[0])
    via_spec = stitch.stitch(reg.stitcher("ptycho:probe_weighted"), patches, pos, obj.shape, _disk_probe())
    np.testing.assert_array_equal(via_spec[0], stitch.probe_weighted(patches, pos, obj.shape, _disk_probe())[0])
    with pytest.raises(UsageError, match="unknown option"):
        stitch.stitch("mean", patches, pos, obj.shape, _disk_probe(), registry=reg, width=3)
    with pytest.raises(UsageError, match="unknown stitcher"):
        stitch.stitch("median", patches, pos, obj.shape, _disk_probe(), registry=reg)


def first_patch_only(patches, positions, shape, probe, scale=1.0):
    """A third-party stitcher for the test below: splats only the first patch, times `scale`."""
    out = physics.splat(patches[:1] * scale, positions[:1], shape)
    return out, (np.abs(out) > 0).astype(np.float32)


class _StitcherPlugin:
    @hookimpl
    def ptycho_register_stitchers(self, register):
        register(
            StitcherSpec(
                name="first",
                summary="test",
                factory=f"{__name__}:first_patch_only",
                options={"scale": Option("float", 1.0, "factor")},
            )
        )


def test_a_plugin_stitcher_is_found_and_gets_typed_options(core_host):
    patches = np.ones((2, N, N), np.complex64)
    pos = np.array([[10.0, 10.0], [20.0, 20.0]])
    with core_host.registered(_StitcherPlugin(), "first-stitcher"):
        obj, weights = stitch.stitch("first", patches, pos, (32, 32), None, registry=core_host.registry(), scale="2")
    assert obj.dtype == np.complex64 and obj[10, 10] == 2 and obj[20, 20] == 0
