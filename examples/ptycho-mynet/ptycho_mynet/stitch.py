"""The `gaussian` stitcher: a weighted average of the patches under a Gaussian window.

Like the core's stitchers it splats with the bilinear adjoint of extraction at the exact positions
(`ptycho_core.physics.splat`), and returns the object (H, W) complex64 and the weights (H, W)
float32, pixels with weight below 1e-3 of the maximum set to 0.
"""

from __future__ import annotations


def gaussian(patches, positions, shape, probe, sigma: float = 0.25):
    """Stitch patches (n, N, N) complex at positions (n, 2) (y, x) onto an (H, W) canvas.

    Each patch is weighted by exp(-r^2 / (2 (sigma N)^2)), r the distance in pixels from its centre
    pixel (N//2, N//2); the probe is not used. Returns (object (H, W) complex64, weights (H, W) float32).
    """
    import numpy as np

    from ptycho_core import physics
    from ptycho_core.errors import UsageError

    if not sigma > 0:
        raise UsageError(f"gaussian stitcher: sigma must be positive, got {sigma}")
    patches = np.asarray(patches)
    n = patches.shape[-1]
    yy, xx = np.mgrid[:n, :n] - n // 2
    window = np.exp(-(yy**2 + xx**2) / (2.0 * (sigma * n) ** 2))
    num = physics.splat(patches.astype(np.complex128) * window, positions, shape)
    den = physics.splat(np.broadcast_to(window, patches.shape), positions, shape).real
    keep = den >= 1e-3 * den.max()
    obj = np.where(keep, num / np.where(keep, den, 1.0), 0)
    return obj.astype(np.complex64), np.where(keep, den, 0).astype(np.float32)
