"""The TensorFlow physics matches the numpy reference (docs/design.md#physics) to 1e-5 of max|ref|."""

import os

import numpy as np
import pytest

from ptycho_core import physics as ref

if os.environ.get("CI") == "true":
    from ptycho_pinn_tf import physics as tfp
else:
    tfp = pytest.importorskip("ptycho_pinn_tf.physics")

RTOL = 1e-5


def assert_matches(got, expected):
    got = np.asarray(got)
    scale = float(np.abs(expected).max())
    assert got.shape == expected.shape
    assert float(np.abs(got - expected).max()) <= RTOL * scale


def random_complex(rng, shape):
    return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.mark.parametrize("channels", [1, 4])
def test_extract_matches_numpy_at_subpixel_positions_including_outside_the_object(rng, channels):
    objects = random_complex(rng, (3, 40, 44))
    positions = rng.uniform(-6.0, 50.0, size=(3, channels, 2))  # some patches cross the edges
    positions[0, 0] = (123.456789, 17.25)  # far outside in y: all zeros
    got = tfp.extract_batch(objects, positions, 16).numpy()
    assert got.dtype == np.complex64
    assert_matches(got, ref.extract_batch(objects, positions, 16))
    assert not got[0, 0].any()


def test_extract_keeps_float64_accuracy_for_large_positions(rng):
    objects = random_complex(rng, (1, 600, 600))
    positions = rng.uniform(300.0, 580.0, size=(1, 4, 2)) + 1e-4
    assert_matches(tfp.extract_batch(objects, positions, 16).numpy(), ref.extract_batch(objects, positions, 16))


@pytest.mark.parametrize("channels", [1, 4])
def test_splat_matches_numpy(rng, channels):
    patches = random_complex(rng, (2, channels, 16, 16))
    positions = rng.uniform(-4.0, 36.0, size=(2, channels, 2))
    got = tfp.splat_batch(patches, positions, (32, 30)).numpy()
    assert got.dtype == np.complex64
    assert_matches(got, ref.splat_batch(patches, positions, (32, 30)))


def test_splat_is_the_exact_adjoint_of_extract(rng):
    objects = random_complex(rng, (2, 36, 36))
    patches = random_complex(rng, (2, 4, 16, 16))
    positions = rng.uniform(-3.0, 38.0, size=(2, 4, 2))
    lhs = np.vdot(tfp.extract_batch(objects, positions, 16).numpy(), patches)
    rhs = np.vdot(objects, tfp.splat_batch(patches, positions, (36, 36)).numpy())
    assert abs(lhs - rhs) <= 1e-4 * abs(lhs)


@pytest.mark.parametrize("channels", [1, 4])
def test_forward_matches_numpy_and_conserves_energy(rng, channels):
    probe = random_complex(rng, (16, 16))
    patches = random_complex(rng, (3, channels, 16, 16))
    got = tfp.forward(probe, patches).numpy()
    assert got.dtype == np.float32
    assert_matches(got, ref.forward(probe, patches))
    energy = (np.abs(probe * patches) ** 2).sum(axis=(-2, -1))
    np.testing.assert_allclose((got.astype(np.float64) ** 2).sum(axis=(-2, -1)), energy, rtol=1e-4)


@pytest.mark.parametrize("channels", [1, 4])
def test_overlap_average_matches_numpy(rng, channels):
    patches = random_complex(rng, (3, channels, 16, 16))
    offsets = rng.uniform(-3.5, 3.5, size=(3, channels, 2))
    m = ref.canvas_size(offsets, 16)
    got = tfp.overlap_average(patches, offsets, m).numpy()
    assert got.dtype == np.complex64
    assert_matches(got, ref.overlap_average(patches, offsets, m))


def _grouped_truth(obj, positions, offsets):
    b, c, _ = positions.shape
    return ref.extract(obj, positions.reshape(-1, 2), 16).reshape(b, c, 16, 16)


def test_overlap_constraint_is_exact_at_integer_offsets(pinn_pair):
    """Patches cut from one object at integer positions are a fixed point of the overlap average."""
    from ptycho_core import data

    train = pinn_pair[0]
    groups = data.group(np.round(train.positions), 2, train=True, seed=0)
    centres = np.round(groups.positions.mean(axis=1, keepdims=True))
    offsets = groups.positions - centres
    patches = _grouped_truth(train.object, groups.positions, offsets)
    got = tfp.overlap_average(patches, offsets, ref.canvas_size(offsets, 16)).numpy()
    assert_matches(got, patches)


def test_overlap_constraint_is_close_at_subpixel_offsets(pinn_pair):
    """At sub-pixel offsets bilinear smoothing makes it approximate: within 3e-2 (relative L2) on a
    smooth object."""
    from ptycho_core import data
    from ptycho_core.simulate import SimConfig, simulate_pair

    train = simulate_pair(SimConfig(object="grf", train_objects=1, patch_size=16, object_size=48, step=4))[0]
    groups = data.group(train.positions, 2, train=True, seed=0)
    assert np.abs(groups.offsets - np.round(groups.offsets)).max() > 0.1
    patches = _grouped_truth(train.object, groups.positions, groups.offsets)
    got = tfp.overlap_average(patches, groups.offsets, ref.canvas_size(groups.offsets, 16)).numpy()
    assert np.linalg.norm(got - patches) / np.linalg.norm(patches) <= 3e-2


def test_overlap_average_merges_the_group_into_one_region(rng):
    """Inconsistent patches come out consistent: two patches at the same offset become equal."""
    patches = random_complex(rng, (1, 2, 16, 16))
    offsets = np.zeros((1, 2, 2))
    got = tfp.overlap_average(patches, offsets, ref.canvas_size(offsets, 16)).numpy()
    np.testing.assert_allclose(got[0, 0], got[0, 1], atol=1e-6)
    np.testing.assert_allclose(got[0, 0], patches[0].mean(axis=0), atol=1e-5)


def _numpy_losses(pred, measured, scale, mask):
    p, m = pred * scale, measured * scale
    valid = np.broadcast_to(mask, p.shape) if mask is not None else np.ones(p.shape, bool)
    poisson = (p**2 - m**2 * np.log(p**2 + 1e-6))[valid].mean()
    mae = np.abs(p - m)[valid].mean()
    return poisson, mae


@pytest.mark.parametrize("mask_kind", ["none", "shared", "per_pattern"])
def test_losses_match_the_numpy_formulas_in_normalised_units(rng, mask_kind):
    probe = random_complex(rng, (16, 16))
    patches = random_complex(rng, (4, 4, 16, 16))
    measured = np.abs(rng.normal(size=(4, 4, 16, 16))).astype(np.float32) * 30
    scale = 0.05
    mask = {"none": None, "shared": rng.random((16, 16)) > 0.2, "per_pattern": rng.random((4, 4, 16, 16)) > 0.2}[
        mask_kind
    ]
    pred = ref.forward(probe, patches)
    want_poisson, want_mae = _numpy_losses(pred.astype(np.float64), measured.astype(np.float64), scale, mask)
    got_poisson = float(tfp.physics_loss("poisson", patches, probe, measured, scale, mask))
    got_mae = float(tfp.physics_loss("mae", patches, probe, measured, scale, mask))
    assert got_poisson == pytest.approx(want_poisson, rel=1e-5, abs=1e-6)
    assert got_mae == pytest.approx(want_mae, rel=1e-5)


def test_physics_loss_applies_the_overlap_constraint_when_given_a_canvas(rng):
    probe = random_complex(rng, (16, 16))
    patches = random_complex(rng, (2, 4, 16, 16))
    offsets = rng.uniform(-2.0, 2.0, size=(2, 4, 2))
    m = ref.canvas_size(offsets, 16)
    measured = ref.forward(probe, ref.overlap_average(patches, offsets, m))
    merged = float(tfp.physics_loss("mae", patches, probe, measured, 1.0, None, offsets, m))
    plain = float(tfp.physics_loss("mae", patches, probe, measured, 1.0))
    assert merged <= 1e-4 * float(np.abs(measured).mean())
    assert plain > 100 * merged
