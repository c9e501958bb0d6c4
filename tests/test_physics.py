"""The numpy reference physics (docs/design.md#physics) against known answers."""

import numpy as np
import pytest

from ptycho_core import physics

N = 16


def _random_complex(rng, shape):
    return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex128)


def _smooth_object(rng, size=64):
    from ptycho_core.simulate import grf_object

    return ((0.5 + grf_object(size, rng)) * np.exp(1j * grf_object(size, rng))).astype(np.complex64)


def test_forward_conserves_energy_parseval():
    rng = np.random.default_rng(0)
    probe = _random_complex(rng, (N, N)).astype(np.complex64)
    patches = _random_complex(rng, (5, N, N)).astype(np.complex64)
    amp = physics.forward(probe, patches)
    assert amp.dtype == np.float32 and amp.shape == (5, N, N)
    np.testing.assert_allclose(
        (amp.astype(np.float64) ** 2).sum(axis=(1, 2)), (np.abs(probe * patches) ** 2).sum(axis=(1, 2)), rtol=1e-5
    )


def test_constant_object_and_flat_probe_give_one_central_peak():
    value = 0.6 - 0.8j  # |value| = 1
    patches = np.full((1, N, N), value, dtype=np.complex64)
    amp = physics.forward(np.ones((N, N), np.complex64), patches)[0]
    expected = np.zeros((N, N), np.float32)
    expected[N // 2, N // 2] = abs(value) * N  # fft2 of a constant is N^2 * value at DC; ortho -> / N
    np.testing.assert_allclose(amp, expected, atol=1e-5)


def test_delta_probe_gives_a_flat_pattern_of_the_centre_pixel():
    rng = np.random.default_rng(1)
    obj = _random_complex(rng, (40, 40)).astype(np.complex64)
    probe = np.zeros((N, N), np.complex64)
    probe[N // 2, N // 2] = 1.0
    positions = np.array([[20.0, 21.0], [15.0, 25.0]])
    amp = physics.forward(probe, physics.extract(obj, positions, N))
    for i, (y, x) in enumerate(positions.astype(int)):
        np.testing.assert_allclose(amp[i], np.full((N, N), abs(obj[y, x]) / N), rtol=1e-5)


def test_extract_at_integer_positions_copies_pixels_with_the_centre_convention():
    rng = np.random.default_rng(2)
    obj = _random_complex(rng, (40, 40)).astype(np.complex64)
    patch = physics.extract(obj, np.array([[20.0, 17.0]]), N)[0]
    np.testing.assert_array_equal(patch, obj[20 - N // 2 : 20 + N - N // 2, 17 - N // 2 : 17 + N - N // 2])
    assert patch[N // 2, N // 2] == obj[20, 17]


def test_subpixel_positions_interpolate_linearly():
    yy, xx = np.mgrid[:40, :40].astype(np.float64)
    obj = (0.3 * yy - 0.2 * xx + 1j * (0.1 * xx + 2.0)).astype(np.complex128)  # bilinear is exact on planes
    positions = np.array([[20.25, 19.5], [18.7, 22.1]])
    patches = physics.extract(obj, positions, N)
    u = np.arange(N) - N // 2
    for i, (y, x) in enumerate(positions):
        ys, xs = np.meshgrid(y + u, x + u, indexing="ij")
        np.testing.assert_allclose(patches[i], 0.3 * ys - 0.2 * xs + 1j * (0.1 * xs + 2.0), atol=1e-9)
    # Halfway between two pixels is their mean.
    half = physics.extract(obj, np.array([[20.5, 20.0]]), N)[0]
    np.testing.assert_allclose(half[N // 2, N // 2], 0.5 * (obj[20, 20] + obj[21, 20]), atol=1e-12)


def test_extract_is_zero_outside_the_object():
    obj = np.ones((20, 20), np.complex64)
    patch = physics.extract(obj, np.array([[0.0, 0.0]]), N)[0]
    assert patch[: N // 2].sum() == 0 and patch[:, : N // 2].sum() == 0
    assert np.all(patch[N // 2 :, N // 2 :] == 1)


def test_splat_is_the_adjoint_of_extract():
    rng = np.random.default_rng(3)
    obj = _random_complex(rng, (30, 34))
    patches = _random_complex(rng, (7, N, N))
    positions = rng.uniform(-4, 38, size=(7, 2))  # sub-pixel, some partly outside the object
    lhs = np.vdot(physics.extract(obj, positions, N), patches)
    rhs = np.vdot(obj, physics.splat(patches, positions, obj.shape))
    assert abs(lhs - rhs) <= 1e-10 * abs(lhs)


def test_splat_batch_is_the_adjoint_of_extract_batch():
    rng = np.random.default_rng(4)
    objs = _random_complex(rng, (2, 24, 24))
    patches = _random_complex(rng, (2, 3, N, N))
    positions = rng.uniform(2, 22, size=(2, 3, 2))
    lhs = np.vdot(physics.extract_batch(objs, positions, N), patches)
    rhs = np.vdot(objs, physics.splat_batch(patches, positions, (24, 24)))
    assert abs(lhs - rhs) <= 1e-10 * abs(lhs)


def _group(obj, positions):
    offsets = positions - positions.mean(axis=1, keepdims=True)
    patches = physics.extract_batch(np.stack([obj] * len(positions)), positions, N)
    return patches, offsets


def test_overlap_average_is_exact_at_integer_offsets():
    rng = np.random.default_rng(5)
    obj = _random_complex(rng, (64, 64)).astype(np.complex64)
    # Integer offsets from the centroid (32, 32): [-2, -3], [-2, 1], [2, -1], [2, 3].
    positions = np.array([[[30.0, 29.0], [30.0, 33.0], [34.0, 31.0], [34.0, 35.0]]])
    patches, offsets = _group(obj, positions)
    assert np.all(offsets == np.round(offsets))
    avg = physics.overlap_average(patches, offsets, physics.canvas_size(offsets, N))
    np.testing.assert_allclose(avg, patches, atol=1e-5)


def test_overlap_average_is_within_a_few_percent_at_subpixel_offsets():
    rng = np.random.default_rng(6)
    obj = _smooth_object(rng)
    positions = 32 + rng.uniform(-3, 3, size=(3, 4, 2))
    patches, offsets = _group(obj, positions)
    avg = physics.overlap_average(patches, offsets, physics.canvas_size(offsets, N))
    assert np.linalg.norm(avg - patches) / np.linalg.norm(patches) < 0.02
    assert np.abs(avg - patches).max() / np.abs(patches).max() < 0.05


def test_canvas_size_covers_the_largest_offset():
    offsets = np.array([[[-2.5, 0.0], [2.5, 1.0]]])
    assert physics.canvas_size(offsets, N) == N + 2 * 3 + 2


def test_poisson_is_seeded_and_returns_sqrt_counts():
    amp = np.full((3, N, N), 4.0)
    a = physics.poisson(amp, np.random.default_rng(7))
    b = physics.poisson(amp, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32
    counts = a.astype(np.float64) ** 2
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-3)  # integer counts
    assert abs(counts.mean() - 16.0) < 1.0


def test_amplitude_scale_recovers_the_object_amplitude_and_rms_respects_the_mask():
    rng = np.random.default_rng(8)
    probe = _random_complex(rng, (N, N)).astype(np.complex64)
    patches = np.full((4, N, N), 2.5 * np.exp(0.3j), dtype=np.complex64)
    amp = physics.forward(probe, patches)
    assert physics.amplitude_scale(amp, probe) == pytest.approx(2.5, rel=1e-5)
    mask = np.zeros((N, N), bool)
    mask[:4] = True
    expected = np.sqrt((amp[:, :4].astype(np.float64) ** 2).mean())
    assert physics.rms_amplitude(amp, mask) == pytest.approx(expected)


def test_forward_model_reproduces_the_ptychopinn_sample(sample_npz):
    from ptycho_core.io.npz import load_npz

    ds = load_npz(sample_npz)
    model = physics.forward(ds.probe, physics.extract(ds.object, ds.positions, ds.patch_size)).astype(np.float64)
    data = ds.diffraction.astype(np.float64)
    scale = (model * data).sum() / (model**2).sum()
    assert scale == pytest.approx(1.0, abs=0.02)
    assert np.linalg.norm(scale * model - data) / np.linalg.norm(data) < 0.01
