"""Built-in stitchers (docs/design.md#scoring), registered through the same hooks as any plugin.

A stitcher takes patches (n, N, N) complex, positions (n, 2) as (y, x) object pixels of each
patch's centre pixel (N//2, N//2), the canvas shape (H, W) and the probe (N, N), splats with the
bilinear adjoint of `physics.extract` at the exact positions, and returns the object (H, W)
complex64 and the weight map (H, W) float32. Pixels whose weight is below `WEIGHT_FLOOR` of the
maximum are 0 in both (excluded from metrics).
"""

from __future__ import annotations

import numpy as np

from ptycho_core import physics
from ptycho_core.errors import UsageError
from ptycho_core.plugins import load_registry

#: Canvas pixels whose weight is below this fraction of the maximum are set to 0.
WEIGHT_FLOOR = 1e-3


def _check(patches: np.ndarray, positions: np.ndarray, shape) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    patches = np.asarray(patches)
    positions = np.asarray(positions, dtype=np.float64)
    if patches.ndim != 3 or patches.shape[1] != patches.shape[2]:
        raise ValueError(f"patches must have shape (n, N, N), got {patches.shape}")
    if positions.shape != (patches.shape[0], 2):
        raise ValueError(f"positions must have shape ({patches.shape[0]}, 2), got {positions.shape}")
    h, w = (int(v) for v in shape)
    if h < 1 or w < 1:
        raise ValueError(f"canvas shape must be positive, got {tuple(shape)}")
    return patches, positions, (h, w)


def weighted(
    patches: np.ndarray, positions: np.ndarray, shape: tuple[int, int], patch_weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted average of splatted patches: `splat(w * p) / splat(w)` with (N, N) weights `w`.

    Returns (object (H, W) complex64, weights (H, W) float32); pixels with weight below
    `WEIGHT_FLOOR * max` are 0 in both.
    """
    patches, positions, (h, w) = _check(patches, positions, shape)
    wts = np.asarray(patch_weights, dtype=np.float64)
    num = physics.splat(patches.astype(np.complex128) * wts, positions, (h, w))
    den = illumination(positions, (h, w), wts)
    keep = den > 0
    obj = np.where(keep, num / np.where(keep, den, 1.0), 0)
    return obj.astype(np.complex64), den


def illumination(positions: np.ndarray, shape: tuple[int, int], patch_weights: np.ndarray) -> np.ndarray:
    """The weight map (H, W) float32 of (N, N) `patch_weights` splatted at `positions`; pixels below
    `WEIGHT_FLOOR * max` are 0. With |P|^2 it is the probe-weighted stitcher's weights, which also
    score whole objects (iterative generators) on the same region."""
    positions = np.asarray(positions, dtype=np.float64)
    wts = np.asarray(patch_weights, dtype=np.float64)
    den = physics.splat(np.broadcast_to(wts, (len(positions),) + wts.shape), positions, tuple(shape)).real
    top = float(den.max()) if den.size else 0.0
    keep = den >= WEIGHT_FLOOR * top if top > 0 else np.zeros(den.shape, dtype=bool)
    return np.where(keep, den, 0).astype(np.float32)


def probe_weighted(
    patches: np.ndarray, positions: np.ndarray, shape: tuple[int, int], probe: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares stitching: weights |P|^2, object = splat(|P|^2 p) / splat(|P|^2).

    patches (n, N, N) complex, positions (n, 2) (y, x) pixels, shape (H, W), probe (N, N).
    Returns (object (H, W) complex64, weights (H, W) float32).
    """
    return weighted(patches, positions, shape, np.abs(np.asarray(probe)) ** 2)


def mean(
    patches: np.ndarray, positions: np.ndarray, shape: tuple[int, int], probe: np.ndarray, crop: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform weights over the central `crop` x `crop` pixels of each patch (0: N//2).

    The crop is centred on the patch centre pixel (N//2, N//2); the probe is not used.
    Returns (object (H, W) complex64, weights (H, W) float32).
    """
    patches = np.asarray(patches)
    n = patches.shape[-1]
    side = int(crop) or n // 2
    if not 1 <= side <= n:
        raise UsageError(f"mean stitcher: crop must be between 1 and the patch size {n}, got {crop}")
    start = n // 2 - side // 2
    start = min(max(start, 0), n - side)
    wts = np.zeros((n, n))
    wts[start : start + side, start : start + side] = 1.0
    return weighted(patches, positions, shape, wts)


def canvas_for(
    positions: np.ndarray, n: int, object_shape: tuple[int, int] | None = None
) -> tuple[tuple[int, int], tuple[float, float]]:
    """Canvas (H, W) and shift (dy, dx) so that patches at `positions + shift` lie on it.

    With a ground-truth `object_shape`, that shape and no shift. Otherwise the smallest canvas
    covering every N x N patch including its bilinear neighbours; the shift is a whole number of
    pixels (record it: stitched pixel (i, j) is object pixel (i - dy, j - dx)).
    """
    if object_shape is not None:
        return (int(object_shape[0]), int(object_shape[1])), (0.0, 0.0)
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    if pos.size == 0:
        raise ValueError("canvas_for needs at least one position")
    lo = pos.min(axis=0) - n // 2
    shift = -np.floor(lo)
    hi = pos.max(axis=0) + shift + (n - 1 - n // 2)
    size = np.floor(hi).astype(int) + 2
    return (int(size[0]), int(size[1])), (float(shift[0]), float(shift[1]))


def stitch(name_or_spec, patches, positions, shape, probe, registry=None, **options) -> tuple[np.ndarray, np.ndarray]:
    """Stitch with a registered stitcher (`name`, `dist:name` or a StitcherSpec).

    Options are checked against the spec's declared options (text is parsed by type).
    Returns (object (H, W) complex64, weights (H, W) float32).
    """
    spec = name_or_spec
    if isinstance(name_or_spec, str):
        if registry is None:
            registry = load_registry()
        spec = registry.stitcher(name_or_spec)
    values = spec.resolve_options(options)
    obj, weights = spec.load_factory()(patches, positions, shape, probe, **values)
    h, w = (int(v) for v in shape)
    obj = np.asarray(obj)
    weights = np.asarray(weights)
    if obj.shape != (h, w) or weights.shape != (h, w):
        raise ValueError(
            f"stitcher {spec.qualified_name} returned shapes {obj.shape}, {weights.shape}; expected {(h, w)}"
        )
    return obj.astype(np.complex64, copy=False), weights.astype(np.float32, copy=False)
