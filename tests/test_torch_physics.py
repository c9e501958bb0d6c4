"""Parity of the torch physics with the numpy reference (docs/design.md#physics), and its gradients."""

import os

import numpy as np
import pytest

if os.environ.get("CI") == "true":
    import torch
else:
    torch = pytest.importorskip("torch")

from ptycho_core import physics  # noqa: E402
from ptycho_core.torch import physics as tphysics  # noqa: E402

TOL = 1e-5


def random_complex(rng, shape):
    return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)


def assert_close(got, ref):
    got = got.detach().numpy() if torch.is_tensor(got) else got
    err = np.max(np.abs(got - ref))
    assert err <= TOL * np.max(np.abs(ref)), f"max|a-b| = {err:.3g}, max|ref| = {np.max(np.abs(ref)):.3g}"


@pytest.fixture(params=[1, 2], ids=["gridsize1", "gridsize2"])
def case(request):
    """Random objects (B, H, W), sub-pixel positions (B, C, 2) reaching past the edges, N = 16."""
    g = request.param
    rng = np.random.default_rng(10 + g)
    b, c, n, h, w = 3, g * g, 16, 40, 36
    objects = random_complex(rng, (b, h, w))
    positions = np.stack([rng.uniform(-4, h + 3, (b, c)), rng.uniform(-4, w + 3, (b, c))], axis=-1)
    return objects, positions, n


def test_extract_batch_matches_numpy_reference_at_subpixel_positions(case):
    objects, positions, n = case
    ref = physics.extract_batch(objects, positions, n)
    got = tphysics.extract_batch(torch.from_numpy(objects), torch.from_numpy(positions), n)
    assert got.dtype == torch.complex64 and tuple(got.shape) == ref.shape
    assert_close(got, ref)


def test_splat_batch_matches_numpy_reference(case):
    objects, positions, n = case
    rng = np.random.default_rng(3)
    patches = random_complex(rng, positions.shape[:2] + (n, n))
    ref = physics.splat_batch(patches, positions, objects.shape[1:])
    got = tphysics.splat_batch(torch.from_numpy(patches), torch.from_numpy(positions), objects.shape[1:])
    assert got.dtype == torch.complex64
    assert_close(got, ref)


def test_splat_is_the_exact_adjoint_of_extract(case):
    objects, positions, n = case
    rng = np.random.default_rng(4)
    patches = torch.from_numpy(random_complex(rng, positions.shape[:2] + (n, n))).to(torch.complex128)
    obj = torch.from_numpy(objects).to(torch.complex128)
    pos = torch.from_numpy(positions)
    lhs = torch.vdot(tphysics.extract_batch(obj, pos, n).reshape(-1).to(torch.complex128), patches.reshape(-1))
    rhs = torch.vdot(
        obj.reshape(-1), tphysics.splat_batch(patches, pos, obj.shape[1:]).reshape(-1).to(torch.complex128)
    )
    assert abs(complex(lhs) - complex(rhs)) <= 1e-4 * abs(complex(lhs))


def test_forward_matches_numpy_reference(case):
    objects, positions, n = case
    rng = np.random.default_rng(5)
    probe = random_complex(rng, (n, n))
    patches = physics.extract_batch(objects, positions, n)
    ref = physics.forward(probe, patches)
    got = tphysics.forward(torch.from_numpy(probe), torch.from_numpy(patches))
    assert got.dtype == torch.float32
    assert_close(got, ref)


def test_overlap_average_matches_numpy_reference(case):
    objects, positions, n = case
    rng = np.random.default_rng(6)
    patches = random_complex(rng, positions.shape[:2] + (n, n))
    offsets = positions - positions.mean(axis=1, keepdims=True)
    offsets = offsets / max(1.0, np.abs(offsets).max()) * 3.3  # sub-pixel offsets of a few pixels
    m = physics.canvas_size(offsets, n)
    ref = physics.overlap_average(patches, offsets, m)
    got = tphysics.overlap_average(torch.from_numpy(patches), torch.from_numpy(offsets), m)
    assert got.dtype == torch.complex64
    assert_close(got, ref)


def test_single_extract_and_splat_match_numpy_reference():
    rng = np.random.default_rng(7)
    obj = random_complex(rng, (30, 30))
    positions = rng.uniform(5, 25, (6, 2))
    assert_close(
        tphysics.extract(torch.from_numpy(obj), torch.from_numpy(positions), 8), physics.extract(obj, positions, 8)
    )
    patches = random_complex(rng, (6, 8, 8))
    assert_close(
        tphysics.splat(torch.from_numpy(patches), torch.from_numpy(positions), (30, 30)),
        physics.splat(patches, positions, (30, 30)),
    )


def test_physics_is_differentiable_with_respect_to_patches():
    rng = np.random.default_rng(8)
    n = 8
    patches = torch.from_numpy(random_complex(rng, (2, 4, n, n))).requires_grad_(True)
    offsets = torch.from_numpy(rng.uniform(-2, 2, (2, 4, 2)))
    probe = torch.from_numpy(random_complex(rng, (n, n)))
    amplitude = tphysics.forward(
        probe, tphysics.overlap_average(patches, offsets, physics.canvas_size(offsets.numpy(), n))
    )
    amplitude.square().sum().backward()
    assert patches.grad is not None and torch.isfinite(torch.view_as_real(patches.grad)).all()
    assert patches.grad.abs().sum() > 0


def test_forward_runs_in_float32_under_bf16_autocast():
    rng = np.random.default_rng(9)
    probe = random_complex(rng, (8, 8))
    patches = random_complex(rng, (2, 1, 8, 8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = tphysics.forward(torch.from_numpy(probe), torch.from_numpy(patches))
    assert got.dtype == torch.float32
    assert_close(got, physics.forward(probe, patches))
