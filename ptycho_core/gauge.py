"""Gauge-aware stitching: each patch's complex scalar, and the error common to every patch, estimated
from the overlaps alone (no ground truth), before the probe-weighted stitch.

Why. A generator maps each pattern to its patch on its own, and nothing in one pattern fixes the
patch's global complex scalar: a learned patch comes out as a_i * o_i with its own a_i (on the
default data fno's a_i spread by about +-10 % in magnitude and 0.1 rad in phase). Averaging such
patches blurs the phase and leaves seams. Networks also share systematic errors that do not depend
on the pattern: a pattern e(u) in the patch frame added to every patch, which the stitch
periodises into a grid at the scan step.

Model. Patch i, cut at position r_i (`physics.extract`, operator E_i), is

    p_i = (E_i O + e) / c_i          (c_i complex, e the common pattern, O the object)

Weights w = |P|^2 (the probe-weighted stitcher's): pixels the probe does not light say little.

1. Scalars (a synchronisation problem over the overlap graph). With e = 0, the weighted
   least-squares misfit of scaled patches to the best object,

       J(c) = min_O  sum_i || w^1/2 (c_i p_i - E_i O) ||^2  =  c^H M c,
       M    = diag(sum_u w |p_i|^2) - B^H A^-1 B,   A = sum_i E_i^H w E_i,   B[:, i] = E_i^H (w p_i),

   is a Hermitian positive semi-definite form in c: entry M_ij couples patches i and j through
   their common, probe-weighted support (the overlap graph's weighted connection Laplacian, with
   the object eliminated exactly, so sub-pixel positions are handled without resampling). The
   scalars minimise J(c) / c^H Delta c (Delta = M's first term: scale-free): the eigenvector of
   the generalised problem M c = lambda Delta c with the smallest eigenvalue (`scipy.linalg.eigh`),
   one per connected component of the overlap graph. Patches that are exact multiples of the
   truth give J = 0 at the true c: the scalars come back exactly, to rounding.
2. Gauge. c is fixed up to one complex scalar per component; it is chosen so that the
   Delta-weighted mean of c is 1 (the patches keep their average magnitude and phase). The
   metrics remove one global scalar anyway.
3. Common error (option `common`, on by default). With c fixed, e and O minimise
   sum_i || w^1/2 (c_i p_i - e - E_i O) ||^2 (block coordinate descent: O exactly given e, e is
   then the mean residual in the patch frame, `common_iterations` rounds). A constant e cannot be
   told from the object: e has zero w-weighted mean. The stitched object is the probe-weighted
   stitch of c_i p_i - e.

Cost: one sparse LU of A (canvas pixels under the probe) and one solve per patch; on the default
test data (576 patches of 32 x 32, a 128 x 128 canvas) about a second on one CPU core.
"""

from __future__ import annotations

import numpy as np

from ptycho_core import physics, stitch

#: Patches whose weighted energy is below this fraction of the median are left as they are
#: (scalar 1): an empty patch has no phase to synchronise.
EMPTY_PATCH_FRACTION = 1e-8

#: Right-hand sides per sparse solve (bounds the dense block in memory).
SOLVE_CHUNK = 64


def extract_matrix(positions: np.ndarray, n: int, shape: tuple[int, int]):
    """`physics.extract` as a scipy.sparse CSR matrix (n_patterns * n * n, H * W): row i*n*n + u*n + v
    holds the bilinear weights of patch i's pixel (u, v) on the canvas (zero outside it)."""
    import scipy.sparse as sp

    positions = np.asarray(positions, dtype=np.float64)
    h, w = (int(v) for v in shape)
    y0, x0, wy, wx = physics.bilinear_corners(positions, n)
    rows = np.arange(len(positions) * n * n).reshape(len(positions), n, n)
    data, row_idx, col_idx = [], [], []
    for dy, fy in ((0, 1 - wy), (1, wy)):
        yi = y0 + dy
        for dx, fx in ((0, 1 - wx), (1, wx)):
            xi = x0 + dx
            weight = fy[:, :, None] * fx[:, None, :]
            inside = ((yi >= 0) & (yi < h))[:, :, None] & ((xi >= 0) & (xi < w))[:, None, :] & (weight != 0)
            cols = yi[:, :, None] * w + xi[:, None, :]
            data.append(weight[inside])
            row_idx.append(rows[inside])
            col_idx.append(cols[inside])
    return sp.csr_matrix(
        (np.concatenate(data), (np.concatenate(row_idx), np.concatenate(col_idx))),
        shape=(len(positions) * n * n, h * w),
    )


#: Canvas pixels lit by less than this fraction of the maximum summed weight are left out of the
#: least-squares object (far probe tails: their rows would only make A ill-conditioned).
LIT_FRACTION = 1e-10


def _real_matmul(matrix, values: np.ndarray) -> np.ndarray:
    """A real sparse matrix times a real or complex array, without a complex copy of the matrix."""
    if np.iscomplexobj(values):
        return matrix @ np.ascontiguousarray(values.real) + 1j * (matrix @ np.ascontiguousarray(values.imag))
    return matrix @ values


class Overlaps:
    """The weighted least-squares geometry of patches on a canvas: E (`extract_matrix`), the patch
    weights w, and a sparse LU of A = E^H W E over the canvas pixels the patches light."""

    def __init__(self, positions: np.ndarray, n: int, shape: tuple[int, int], patch_weights: np.ndarray):
        import scipy.sparse as sp
        import scipy.sparse.linalg as spla

        self.n_patches, self.n, self.shape = len(positions), n, (int(shape[0]), int(shape[1]))
        self.w = np.asarray(patch_weights, dtype=np.float64).reshape(-1)
        E = extract_matrix(positions, n, self.shape)
        self.illumination = np.asarray((E.T @ np.tile(self.w, self.n_patches))).ravel()  # splat(w)
        top = self.illumination.max() if self.illumination.size else 0.0
        self.lit = np.flatnonzero(self.illumination > LIT_FRACTION * top)
        self.E = E.tocsc()[:, self.lit].tocsr()  # patch pixels <- lit canvas pixels
        self.EtW = (self.E.T @ sp.diags(np.tile(self.w, self.n_patches))).tocsr()
        self.A = (self.EtW @ self.E).tocsc()
        self._lu = None
        self._spla = spla

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """A^-1 rhs over the lit pixels (a sparse LU, factored on first use)."""
        if self._lu is None:
            self._lu = self._spla.splu(self.A, permc_spec="MMD_AT_PLUS_A")
        rhs = np.asarray(rhs)
        if np.iscomplexobj(rhs):
            return self._lu.solve(np.ascontiguousarray(rhs.real)) + 1j * self._lu.solve(np.ascontiguousarray(rhs.imag))
        return self._lu.solve(rhs)

    def fit_object(self, flat_patches: np.ndarray) -> np.ndarray:
        """The least-squares object over the lit pixels of flat patches (n N^2,):
        argmin_O sum_i ||w^1/2 (p_i - E_i O)||^2 = A^-1 E^H W p."""
        return self.solve(_real_matmul(self.EtW, flat_patches))

    def cut(self, lit_object: np.ndarray) -> np.ndarray:
        """E O: the patches (n N^2,) cut from an object given over the lit pixels."""
        return _real_matmul(self.E, lit_object)


def patch_scalars(patches: np.ndarray, overlaps: Overlaps, refine: int = 20) -> np.ndarray:
    """Per-patch complex scalars c (n,) complex128 such that c_i p_i agree on their overlaps
    (module docstring, steps 1-2), one gauge per connected component of the overlap graph.

    The eigenproblem is first solved with A replaced by its row sums D (the stitcher's own
    normalisation: sparse products only, exact at whole-pixel positions), then refined on the exact
    form by at most `refine` steps of preconditioned inverse iteration (LOBPCG, the first solution's
    matrix as preconditioner), which makes sub-pixel positions exact too.
    """
    import scipy.linalg as sla
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    count, m = overlaps.n_patches, overlaps.n * overlaps.n
    flat = np.asarray(patches, dtype=np.complex128).reshape(count, m)
    energy = (overlaps.w * np.abs(flat) ** 2).sum(axis=1)
    # B[:, i] = E_i^H (w p_i): patch i's weighted splat, one sparse column per patch
    rows, cols = np.arange(count * m), np.repeat(np.arange(count), m)
    b = sp.csc_matrix((flat.ravel(), (rows, cols)), shape=(count * m, count))
    b = (overlaps.EtW.astype(np.complex128) @ b).tocsc()
    d_inv = sp.diags(1.0 / overlaps.illumination[overlaps.lit])
    coupling = (b.conj().T @ d_inv @ b).toarray()
    approx = np.diag(energy) - 0.5 * (coupling + coupling.conj().T)
    c = np.ones(count, dtype=np.complex128)
    live = energy > EMPTY_PATCH_FRACTION * (np.median(energy) if count else 0.0)
    _, labels = connected_components(sp.csr_matrix(np.abs(coupling) > 0), directed=False)
    for label in np.unique(labels[live]):
        idx = np.flatnonzero((labels == label) & live)
        if len(idx) == 1:
            continue
        _, vec = sla.eigh(approx[np.ix_(idx, idx)], np.diag(energy[idx]), subset_by_index=[0, 0])
        vec = vec[:, 0]
        if refine > 0:
            vec = _refine(vec, idx, b, energy, approx, overlaps, refine)
        c[idx] = vec / ((energy[idx] * vec).sum() / energy[idx].sum())
    return c


def _refine(vec, idx, b, energy, approx, overlaps: Overlaps, steps: int) -> np.ndarray:
    """Preconditioned inverse iteration on the exact form M = Delta - B^H A^-1 B, restricted to the
    patches `idx`, from `vec`; the first solution's matrix (shifted) preconditions."""
    import scipy.linalg as sla

    sub = b[:, idx]
    delta = energy[idx]
    shift = 1e-6 * delta.mean()
    factor = sla.cho_factor(approx[np.ix_(idx, idx)] + shift * np.diag(delta / delta.mean()))
    for _ in range(steps):
        m_vec = delta * vec - sub.conj().T @ overlaps.solve(sub @ vec)
        rho = np.vdot(vec, m_vec).real / np.vdot(vec, delta * vec).real
        residual = m_vec - rho * delta * vec
        if np.linalg.norm(residual) <= 1e-13 * np.linalg.norm(delta * vec):
            break
        vec = vec - sla.cho_solve(factor, residual)
        vec = vec / np.sqrt(np.vdot(vec, delta * vec).real)
    return vec


def common_error(scaled: np.ndarray, overlaps: Overlaps, iterations: int) -> np.ndarray:
    """The pattern e (N, N) common to every scaled patch (module docstring, step 3): `iterations`
    rounds of O <- least-squares object of (p - e), e <- mean residual p_i - E_i O, each e with
    zero w-weighted mean."""
    count, m = overlaps.n_patches, overlaps.n * overlaps.n
    flat = np.asarray(scaled, dtype=np.complex128).reshape(count, m)
    e = np.zeros(m, dtype=np.complex128)
    wsum = overlaps.w.sum()
    for _ in range(int(iterations)):
        obj = overlaps.fit_object((flat - e).ravel())
        residual = flat - overlaps.cut(obj).reshape(count, m)
        e = residual.mean(axis=0)
        if wsum > 0:
            e = e - (overlaps.w * e).sum() / wsum
    return e.reshape(overlaps.n, overlaps.n)


def gauge(
    patches: np.ndarray,
    positions: np.ndarray,
    shape: tuple[int, int],
    probe: np.ndarray,
    common: bool = True,
    common_iterations: int = 20,
) -> tuple[np.ndarray, np.ndarray]:
    """Gauge-aware stitcher: estimate each patch's complex scalar (and, with `common`, the error
    common to every patch) from the overlaps, correct the patches, stitch with weights |P|^2.

    patches (n, N, N) complex, positions (n, 2) (y, x) pixels, shape (H, W), probe (N, N).
    Returns (object (H, W) complex64, weights (H, W) float32). Method: this module's docstring.
    """
    corrected = correct(patches, positions, shape, probe, common, common_iterations)
    return stitch.probe_weighted(corrected, positions, shape, probe)


def correct(
    patches: np.ndarray,
    positions: np.ndarray,
    shape: tuple[int, int],
    probe: np.ndarray,
    common: bool = True,
    common_iterations: int = 20,
) -> np.ndarray:
    """The patches (n, N, N) complex64 with their scalars and (with `common`) the common error
    removed: c_i p_i - e."""
    patches, positions, shape = stitch.check_inputs(patches, positions, shape)
    if len(patches) == 0:
        return patches.astype(np.complex64)
    overlaps = Overlaps(positions, patches.shape[-1], shape, np.abs(np.asarray(probe)) ** 2)
    scaled = patches.astype(np.complex128) * patch_scalars(patches, overlaps)[:, None, None]
    if common and common_iterations > 0:
        scaled = scaled - common_error(scaled, overlaps, common_iterations)
    return scaled.astype(np.complex64)
