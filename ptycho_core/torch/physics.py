"""Torch physics matching the numpy reference `ptycho_core.physics` (docs/design.md#physics).

    extract:  o_i[u, v] = O(y_i + u - N//2, x_i + v - N//2)   bilinear, zero outside O
    forward:  A_i = |fftshift(fft2(P * o_i))| / N              (norm="ortho")
    splat:    the exact adjoint of extract

Extraction is a bilinear gather with the reference's corner arithmetic (equivalent to
`grid_sample(align_corners=True, padding_mode="zeros")` on real and imaginary parts, but exact);
splatting scatters the same weights with `index_add_`. Everything is differentiable with respect
to the complex values (positions are data, not parameters) and runs in float32/complex64
whatever autocast is active. Positions are (y, x) in object pixels, float.
"""

from __future__ import annotations

import torch

#: Canvas pixels whose summed splat weight is below this are 0 in the overlap average.
OVERLAP_WEIGHT_EPS = 1e-6


def _corners(positions: torch.Tensor, n: int):
    """Integer corners and bilinear weights per patch row/column (float64 arithmetic).

    positions (B, C, 2) -> y0, x0 (B, C, n) int64 and wy, wx (B, C, n) float32 fractional parts.
    """
    positions = positions.to(torch.float64)
    u = torch.arange(n, device=positions.device, dtype=torch.float64) - n // 2
    ys = positions[..., 0, None] + u
    xs = positions[..., 1, None] + u
    y0 = torch.floor(ys)
    x0 = torch.floor(xs)
    return y0.long(), x0.long(), (ys - y0).float(), (xs - x0).float()


def _taps(positions: torch.Tensor, n: int, shape: tuple[int, int]):
    """The four bilinear taps: yields (flat index (B, C, n, n), weight (B, C, n, n)) per corner.

    Flat indices address a (B * H * W) canvas; weights are 0 for taps outside it.
    """
    h, w = shape
    bsz = positions.shape[0]
    y0, x0, wy, wx = _corners(positions, n)
    base = (torch.arange(bsz, device=positions.device) * (h * w))[:, None, None, None]
    for dy, fy in ((0, 1 - wy), (1, wy)):
        yi = y0 + dy
        fy = fy * ((yi >= 0) & (yi < h))
        for dx, fx in ((0, 1 - wx), (1, wx)):
            xi = x0 + dx
            fx = fx * ((xi >= 0) & (xi < w))
            weight = fy[..., :, None] * fx[..., None, :]
            index = base + yi.clamp(0, h - 1)[..., :, None] * w + xi.clamp(0, w - 1)[..., None, :]
            yield index, weight


def extract_batch(objects: torch.Tensor, positions: torch.Tensor, n: int) -> torch.Tensor:
    """Cut (B, C, n, n) patches from (B, H, W) objects at positions (B, C, 2) (y, x), bilinear.

    Complex objects give complex64 patches, real ones float32.
    """
    bsz, h, w = objects.shape
    objects = objects.to(torch.complex64 if objects.is_complex() else torch.float32)
    flat = objects.reshape(-1)
    out = None
    for index, weight in _taps(positions.to(objects.device), n, (h, w)):
        term = weight * flat[index]
        out = term if out is None else out + term
    return out


def extract(obj: torch.Tensor, positions: torch.Tensor, n: int) -> torch.Tensor:
    """Cut (n_patterns, n, n) patches from an (H, W) object at positions (n_patterns, 2)."""
    return extract_batch(obj[None], positions[None], n)[0]


def splat_batch(patches: torch.Tensor, positions: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Adjoint of `extract_batch`: scatter (B, C, n, n) patches onto (B, H, W) canvases."""
    bsz, _, n, _ = patches.shape
    h, w = shape
    is_complex = patches.is_complex()
    values = patches.to(torch.complex64) if is_complex else patches.to(torch.float32)
    canvas = torch.zeros(bsz * h * w, 2 if is_complex else 1, dtype=torch.float32, device=patches.device)
    parts = torch.view_as_real(values) if is_complex else values[..., None]
    for index, weight in _taps(positions.to(patches.device), n, (h, w)):
        canvas = canvas.index_add(0, index.reshape(-1), (weight[..., None] * parts).reshape(-1, canvas.shape[1]))
    if is_complex:
        return torch.view_as_complex(canvas).reshape(bsz, h, w)
    return canvas.reshape(bsz, h, w)


def splat(patches: torch.Tensor, positions: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Adjoint of `extract`: scatter (n_patterns, n, n) patches onto an (H, W) canvas."""
    return splat_batch(patches[None], positions[None], shape)[0]


def forward(probe: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
    """Far-field amplitudes |fftshift(fft2(P * o))| / N of patches (..., N, N), float32."""
    return far_field(probe, patches).abs()


def far_field(probe: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
    """The complex far field fftshift(fft2(P * o)) / N of patches (..., N, N), complex64."""
    with torch.autocast(patches.device.type, enabled=False):
        field = torch.fft.fft2(probe.to(torch.complex64) * patches.to(torch.complex64), norm="ortho")
        return torch.fft.fftshift(field, dim=(-2, -1))


def overlap_average(patches: torch.Tensor, offsets: torch.Tensor, m: int) -> torch.Tensor:
    """The overlap constraint: merge the C patches of each group on an (m, m) local canvas.

    patches (B, C, N, N) complex, offsets (B, C, 2) from the group centroid. Patches are splatted
    at `m//2 + offset`, averaged by the summed splat weight (0 where below 1e-6) and re-extracted.
    """
    n = patches.shape[-1]
    with torch.autocast(patches.device.type, enabled=False):
        local = offsets.to(device=patches.device, dtype=torch.float64) + m // 2
        num = splat_batch(patches, local, (m, m))
        ones = torch.ones(patches.shape, dtype=torch.float32, device=patches.device)
        den = splat_batch(ones, local, (m, m))
        valid = den >= OVERLAP_WEIGHT_EPS
        canvas = torch.where(valid, num / den.clamp_min(OVERLAP_WEIGHT_EPS), torch.zeros_like(num))
        return extract_batch(canvas, local, n)
