"""Numpy reference physics (docs/design.md#physics). Torch and TF implementations match this.

Conventions:
    extract:  o_i[u, v] = O(y_i + u - N//2, x_i + v - N//2)   bilinear, zero outside O
    forward:  A_i = |fftshift(fft2(P * o_i))| / N              (norm="ortho")
    splat:    the exact adjoint of extract
    simulate: counts ~ Poisson(A_i^2), stored amplitude sqrt(counts)

Positions are (y, x) in object pixels, float; patches are complex64 (..., N, N).
"""

from __future__ import annotations

import math

import numpy as np

#: Canvas pixels whose summed splat weight is below this are 0 in the overlap average.
OVERLAP_WEIGHT_EPS = 1e-6


def _corners(positions: np.ndarray, n: int):
    """Integer top-left indices and bilinear weights for each patch row/column.

    positions (..., 2) -> y0, x0 (..., n) int64 and wy, wx (..., n) float64 fractional parts.
    """
    u = np.arange(n) - n // 2
    ys = positions[..., 0, None] + u
    xs = positions[..., 1, None] + u
    y0 = np.floor(ys)
    x0 = np.floor(xs)
    return y0.astype(np.int64), x0.astype(np.int64), ys - y0, xs - x0


def extract_batch(objects: np.ndarray, positions: np.ndarray, n: int) -> np.ndarray:
    """Cut (B, C, n, n) patches from (B, H, W) objects at positions (B, C, 2)."""
    objects = np.asarray(objects)
    positions = np.asarray(positions, dtype=np.float64)
    bsz, h, w = objects.shape
    y0, x0, wy, wx = _corners(positions, n)
    out_dtype = np.result_type(objects.dtype, np.float32)
    out = np.zeros(positions.shape[:2] + (n, n), dtype=np.complex128 if np.iscomplexobj(objects) else np.float64)
    b = np.arange(bsz)[:, None, None, None]
    for dy, fy in ((0, 1 - wy), (1, wy)):
        yi = y0 + dy
        vy = (yi >= 0) & (yi < h)
        for dx, fx in ((0, 1 - wx), (1, wx)):
            xi = x0 + dx
            vx = (xi >= 0) & (xi < w)
            weight = (fy * vy)[..., :, None] * (fx * vx)[..., None, :]
            vals = objects[b, np.clip(yi, 0, h - 1)[..., :, None], np.clip(xi, 0, w - 1)[..., None, :]]
            out += weight * vals
    return out.astype(out_dtype, copy=False)


def extract(obj: np.ndarray, positions: np.ndarray, n: int) -> np.ndarray:
    """Cut (n_patterns, n, n) patches from an (H, W) object at positions (n_patterns, 2)."""
    return extract_batch(np.asarray(obj)[None], np.asarray(positions)[None], n)[0]


def splat_batch(patches: np.ndarray, positions: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Adjoint of `extract_batch`: scatter (B, C, n, n) patches onto (B, H, W) canvases."""
    patches = np.asarray(patches)
    positions = np.asarray(positions, dtype=np.float64)
    bsz, _, n, _ = patches.shape
    h, w = shape
    y0, x0, wy, wx = _corners(positions, n)
    size = bsz * h * w
    base = (np.arange(bsz) * h * w)[:, None, None, None]
    complex_in = np.iscomplexobj(patches)
    real = np.zeros(size)
    imag = np.zeros(size) if complex_in else None
    for dy, fy in ((0, 1 - wy), (1, wy)):
        yi = y0 + dy
        vy = (yi >= 0) & (yi < h)
        for dx, fx in ((0, 1 - wx), (1, wx)):
            xi = x0 + dx
            vx = (xi >= 0) & (xi < w)
            weight = (fy * vy)[..., :, None] * (fx * vx)[..., None, :]
            idx = base + np.clip(yi, 0, h - 1)[..., :, None] * w + np.clip(xi, 0, w - 1)[..., None, :]
            vals = weight * patches
            real += np.bincount(idx.ravel(), weights=vals.real.ravel(), minlength=size)
            if complex_in:
                imag += np.bincount(idx.ravel(), weights=vals.imag.ravel(), minlength=size)
    out = real if not complex_in else real + 1j * imag
    return out.reshape(bsz, h, w).astype(np.result_type(patches.dtype, np.float32), copy=False)


def splat(patches: np.ndarray, positions: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Adjoint of `extract`: scatter (n_patterns, n, n) patches onto an (H, W) canvas."""
    return splat_batch(np.asarray(patches)[None], np.asarray(positions)[None], shape)[0]


def forward(probe: np.ndarray, patches: np.ndarray) -> np.ndarray:
    """Far-field amplitudes |fftshift(fft2(P * o))| / N of patches (..., N, N), float32."""
    field = np.fft.fft2(probe * patches, norm="ortho")
    return np.abs(np.fft.fftshift(field, axes=(-2, -1))).astype(np.float32)


def canvas_size(offsets: np.ndarray, n: int) -> int:
    """Side M = n + 2*ceil(max|offset|) + 2 of the overlap-constraint canvas."""
    reach = float(np.max(np.abs(offsets))) if np.size(offsets) else 0.0
    return int(n + 2 * math.ceil(reach) + 2)


def overlap_average(patches: np.ndarray, offsets: np.ndarray, m: int) -> np.ndarray:
    """The overlap constraint: merge the C patches of each group on an (m, m) local canvas.

    patches (B, C, N, N) complex, offsets (B, C, 2) from the group centroid. Patches are splatted
    at `m//2 + offset`, averaged by the summed splat weight (0 where below 1e-6) and re-extracted.
    """
    patches = np.asarray(patches)
    n = patches.shape[-1]
    local = np.asarray(offsets, dtype=np.float64) + m // 2
    num = splat_batch(patches, local, (m, m))
    den = splat_batch(np.ones(patches.shape, dtype=np.float32), local, (m, m)).real
    canvas = np.where(den >= OVERLAP_WEIGHT_EPS, num / np.maximum(den, OVERLAP_WEIGHT_EPS), 0)
    return extract_batch(canvas, local, n).astype(patches.dtype, copy=False)


def poisson(amplitude: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noisy amplitudes sqrt(Poisson(A^2)), float32."""
    counts = rng.poisson(np.asarray(amplitude, dtype=np.float64) ** 2)
    return np.sqrt(counts).astype(np.float32)


def rms_amplitude(diffraction: np.ndarray, mask: np.ndarray | None = None) -> float:
    """r = sqrt(mean A^2) over valid pixels: the loss normalisation and 1 / input_scale."""
    a2 = np.asarray(diffraction, dtype=np.float64) ** 2
    if mask is not None:
        m = np.broadcast_to(mask, a2.shape)
        return float(np.sqrt(a2[m].mean()))
    return float(np.sqrt(a2.mean()))


def amplitude_scale(diffraction: np.ndarray, probe: np.ndarray) -> float:
    """s0 = sqrt(mean_i sum A_i^2 / sum |P|^2): the rms object amplitude the data imply."""
    a = np.asarray(diffraction, dtype=np.float64).reshape(-1, *np.shape(diffraction)[-2:])
    per_pattern = (a**2).sum(axis=(-2, -1)).mean()
    return float(np.sqrt(per_pattern / (np.abs(probe) ** 2).sum()))
