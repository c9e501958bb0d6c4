"""Gauge-aware stitching: each patch's complex scalar, and the error common to every patch, estimated
from the overlaps alone (no ground truth), before the probe-weighted stitch.

Why. A generator maps each pattern to its patch on its own, and nothing in one pattern fixes the
patch's global complex scalar: a learned patch comes out as a_i * o_i with its own a_i (on the
default data fno's a_i spread by about +-10 % in magnitude and 0.1 rad in phase). Averaging such
patches blurs the phase and leaves seams. Networks also share systematic errors that do not depend
on the pattern: a pattern e(u) in the patch frame added to every patch, which the stitch
periodises into a grid at the scan step.

Model. Patch i, cut at position r_i (`physics.extract`, operator E_i), is

    c_i p_i = E_i O + e          (c_i complex, e the common pattern, O the object)

Weights w = |P|^2 (the probe-weighted stitcher's): pixels the probe does not light say little.

1. Scalars and common error together (a synchronisation problem over the overlap graph). The
   weighted least-squares misfit of the scaled patches to the best object and common pattern,

       J(c) = min_{O, e}  sum_i || w^1/2 (c_i p_i - E_i O - e) ||^2  =  c^H M c,
       M    = Delta - [B; F]^H H^-1 [B; F],    Delta = diag(sum_u w |p_i|^2),
       H    = [[A, G], [G^T, n W]],  A = sum_i E_i^H W E_i,  G = sum_i E_i^H W,
       B[:, i] = E_i^H (w p_i),  F[:, i] = w p_i,

   is a Hermitian positive semi-definite form in c: M_ij couples patches i and j through their
   common, probe-weighted support (the overlap graph's weighted connection Laplacian), with the
   object and the common pattern eliminated exactly, so sub-pixel positions need no resampling.
   The scalars minimise J(c) / c^H Delta c (scale-free): the eigenvector of M c = lambda Delta c
   with the smallest eigenvalue, one per connected component of the overlap graph. It is found in
   two steps: a dense eigensolver (`scipy.linalg.eigh`) on the form with A replaced by its row
   sums D (sparse products only; exact at whole-pixel positions), then LOBPCG on the exact form,
   preconditioned by the first. Patches that are exact multiples of the truth plus one common
   pattern give J = 0 at the true c: scalars and pattern come back exactly, to rounding.
   Without the common error (option `common=false`) e is left out (F and G drop).
2. Gauge. c is fixed up to one complex scalar per component; it is chosen so that the
   Delta-weighted mean of c is 1 (the patches keep their average magnitude and phase). The
   metrics remove one global scalar anyway.
3. Common error. e = the e-part of H^-1 [B c; F c], estimated on the patch pixels lit above
   `COMMON_FLOOR` of the maximum weight (0 elsewhere). A constant e cannot be told from the object,
   nor, on a scan on an exact lattice, a pattern periodic in the scan step: a tiny ridge on e's
   block picks the least e there (jittered scans, such as the default simulation's, determine it).
4. The stitched object is the probe-weighted stitch of c_i p_i - e, with its weights.

Cost: one sparse LU of A (the canvas pixels under the probe), one solve per pixel of e, a few tens
of LOBPCG steps (two solves each); on the default test data (576 patches of 32 x 32 on a 128 x 128
canvas) a few seconds on one CPU core.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.sparse.csgraph import connected_components

from ptycho_core import physics, stitch

#: Patches whose weighted energy is below this fraction of the median are left as they are
#: (scalar 1): an empty patch has no phase to synchronise.
EMPTY_PATCH_FRACTION = 1e-8

#: Residual (relative to the mean patch energy) at which the scalars' refinement stops early.
REFINE_TOLERANCE = 1e-10


def extract_matrix(positions: np.ndarray, n: int, shape: tuple[int, int]):
    """`physics.extract` as a scipy.sparse CSR matrix (n_patterns * n * n, H * W): row i*n*n + u*n + v
    holds the bilinear weights of patch i's pixel (u, v) on the canvas (zero outside it)."""
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

#: The common error is estimated on the patch pixels whose weight is at least this fraction of the
#: maximum (on the default probe 353 of 1024 pixels holding 95 % of |P|^2); it is 0 elsewhere.
COMMON_FLOOR = 1e-2

#: Ridge (relative to the mean diagonal) on the common error's Schur complement: a constant pattern
#: is the object's, and a scan on an exact lattice cannot tell patterns periodic in its step either.
COMMON_RIDGE = 1e-9

#: Right-hand sides per block of sparse solves (bounds the dense block in memory).
SOLVE_CHUNK = 64

#: LOBPCG (or conjugate-gradient) steps on the exact form (it stops earlier at `REFINE_TOLERANCE`).
REFINE_STEPS = 30

#: Default weight of the prior that pulls each scalar towards 1 (relative to the patch energies
#: Delta). 0: the pure synchronisation (exact on exact data). Overlaps fix the scalars'
#: patch-to-patch differences well and a slow drift of phase or magnitude across a large scan
#: poorly; a prior > 0 keeps the network's own scalars for the latter.
PRIOR = 0.0


def _real_matmul(matrix, values: np.ndarray) -> np.ndarray:
    """A real sparse matrix times a real or complex array, without a complex copy of the matrix."""
    if np.iscomplexobj(values):
        return matrix @ np.ascontiguousarray(values.real) + 1j * (matrix @ np.ascontiguousarray(values.imag))
    return matrix @ values


class Overlaps:
    """The weighted least-squares geometry of n patches on a canvas (module docstring).

    E (`extract_matrix`, restricted to the canvas pixels the patches light), the patch weights w,
    A = E^H W E (a sparse LU, factored on first use); with `common`, the patch pixels U where the
    common error e is estimated, G = sum_i E_i^H W restricted to U, and the Schur complement
    S = n W_U - G^T A^-1 G of the joint (object, e) normal equations.
    """

    def __init__(self, positions, n: int, shape, patch_weights, common: bool = False):
        self.n_patches, self.n, self.shape = len(positions), n, (int(shape[0]), int(shape[1]))
        self.w = np.asarray(patch_weights, dtype=np.float64).reshape(-1)
        E = extract_matrix(positions, n, self.shape)
        self.illumination = np.asarray(E.T @ np.tile(self.w, self.n_patches)).ravel()  # splat(w)
        top = self.illumination.max() if self.illumination.size else 0.0
        self.lit = np.flatnonzero(self.illumination > LIT_FRACTION * top)
        self.E = E.tocsc()[:, self.lit].tocsr()  # patch pixels <- lit canvas pixels
        self.EtW = (self.E.T @ sp.diags(np.tile(self.w, self.n_patches))).tocsr()
        self.A = (self.EtW @ self.E).tocsc()
        wmax = self.w.max() if self.w.size else 0.0
        self.U = np.flatnonzero(self.w >= COMMON_FLOOR * wmax) if common and wmax > 0 else np.zeros(0, int)
        m = n * n
        tile = sp.csc_matrix(
            (
                np.ones(self.n_patches * len(self.U)),
                (
                    np.add.outer(np.arange(self.n_patches) * m, self.U).ravel(),
                    np.tile(np.arange(len(self.U)), self.n_patches),
                ),
            ),
            shape=(self.n_patches * m, len(self.U)),
        )
        self.G = (self.EtW @ tile).tocsc()  # (lit, U): e's splat onto the canvas
        self._lu = None
        self._schur = None

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """A^-1 rhs over the lit pixels."""
        if self._lu is None:
            self._lu = spla.splu(self.A, permc_spec="MMD_AT_PLUS_A")
        rhs = np.asarray(rhs)
        if np.iscomplexobj(rhs):
            return self._lu.solve(np.ascontiguousarray(rhs.real)) + 1j * self._lu.solve(np.ascontiguousarray(rhs.imag))
        return self._lu.solve(np.ascontiguousarray(rhs))

    def _schur_factor(self):
        if self._schur is None:
            k = len(self.U)
            schur = np.diag(self.n_patches * self.w[self.U])
            for start in range(0, k, SOLVE_CHUNK):
                block = self.G[:, start : start + SOLVE_CHUNK].toarray()
                schur[:, start : start + SOLVE_CHUNK] -= self.G.T @ self.solve(block)
            schur = 0.5 * (schur + schur.T)
            ridge = COMMON_RIDGE * np.trace(schur) / max(k, 1)
            self._schur = sla.cho_factor(schur + ridge * np.eye(k))
        return self._schur

    def fit(self, rhs_object: np.ndarray, rhs_common: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(O over the lit pixels, e over U) solving the joint normal equations
        [[A, G], [G^T, n W_U]] [O; e] = [rhs_object; rhs_common] by block elimination (e = 0 and
        O = A^-1 rhs_object without a common error). Columns of 2-D right-hand sides are solved at once."""
        t = self.solve(rhs_object)
        if not len(self.U):
            return t, np.zeros((0,) + np.shape(rhs_object)[1:], dtype=t.dtype)
        e = sla.cho_solve(self._schur_factor(), rhs_common - _real_matmul(self.G.T, t))
        return t - self.solve(_real_matmul(self.G, e)), e


def _components(coupling: np.ndarray, live: np.ndarray) -> list[np.ndarray]:
    """Indices of the live patches in each connected component of the overlap graph."""
    _, labels = connected_components(sp.csr_matrix(np.abs(coupling) > 0), directed=False)
    return [np.flatnonzero((labels == label) & live) for label in np.unique(labels[live])]


def estimate(
    patches, positions, shape, patch_weights, common: bool = True, prior: float = PRIOR, refine: int = REFINE_STEPS
):
    """(c (n,) complex128, e (N, N) complex128): each patch's complex scalar and the error common to
    every scaled patch (zeros without `common`), from the overlaps alone (module docstring).

    Each connected component of the overlap graph is solved on its own, with its own gauge (the
    Delta-weighted mean of its c is 1) and its own e (the e returned: the largest component's).
    """
    patches = np.asarray(patches, dtype=np.complex128)
    positions = np.asarray(positions, dtype=np.float64)
    count, n = len(patches), patches.shape[-1]
    c = np.ones(count, dtype=np.complex128)
    e = np.zeros((n, n), dtype=np.complex128)
    if count == 0:
        return c, e
    overlaps = Overlaps(positions, n, shape, patch_weights, common=common)
    energy = (overlaps.w * np.abs(patches.reshape(count, -1)) ** 2).sum(axis=1)
    live = energy > EMPTY_PATCH_FRACTION * np.median(energy)
    splats = _weighted_splats(patches.reshape(count, -1), overlaps)
    parts = sorted(_components((splats.conj().T @ splats).toarray(), live), key=len)
    for idx in parts:
        if len(idx) < 2:
            continue
        whole = len(idx) == count
        sub = overlaps if whole else Overlaps(positions[idx], n, shape, patch_weights, common=common)
        c[idx], part_e = _solve_component(patches[idx], sub, energy[idx], prior, refine)
        if idx is parts[-1]:
            e.ravel()[sub.U] = part_e
    return c, e


def _weighted_splats(flat: np.ndarray, overlaps: Overlaps):
    """B (lit, n) sparse: column i is E_i^H (w p_i), patch i's weighted splat."""
    count, m = flat.shape
    cols = sp.csc_matrix(
        (flat.ravel(), (np.arange(count * m), np.repeat(np.arange(count), m))), shape=(count * m, count)
    )
    return (overlaps.EtW.astype(np.complex128) @ cols).tocsc()


def _solve_component(patches: np.ndarray, overlaps: Overlaps, energy: np.ndarray, prior: float, refine: int):
    """Steps 1-3 of the module docstring for one connected set of patches: (c, e over overlaps.U)."""
    count = len(patches)
    flat = patches.reshape(count, -1)
    b = _weighted_splats(flat, overlaps)
    f = overlaps.w[overlaps.U, None] * flat[:, overlaps.U].T  # (U, n): T^T W p_i
    # the approximate form (A replaced by its row sums D = splat(w)): sparse products only
    d_inv = sp.diags(1.0 / overlaps.illumination[overlaps.lit])
    approx = (b.conj().T @ d_inv @ b).toarray()
    if len(overlaps.U):
        g_d = overlaps.G.T @ d_inv
        q = f - (g_d @ b).toarray()
        schur = np.diag(count * overlaps.w[overlaps.U]) - (g_d @ overlaps.G).toarray()
        schur += COMMON_RIDGE * np.trace(schur) / len(overlaps.U) * np.eye(len(overlaps.U))
        approx = approx + q.conj().T @ np.linalg.solve(schur, q)
    approx = np.diag(energy) - 0.5 * (approx + approx.conj().T)
    if prior > 0:
        vec = _with_prior(b, f, energy, approx, overlaps, prior, refine)
    else:
        scale = 1.0 / np.sqrt(energy)
        _, vec = sla.eigh(approx * scale[:, None] * scale[None, :], subset_by_index=[0, 0], driver="evx")
        vec = vec[:, 0] * scale
        if refine > 0:
            vec = _refine(vec, b, f, energy, approx, overlaps, refine)
    c = vec / ((energy * vec).sum() / energy.sum())
    _, e = overlaps.fit(b @ c, f @ c)
    return c, e


def _exact_form(b, f, overlaps: Overlaps, delta: np.ndarray, unit: float):
    """x -> M x / unit, M = Delta - [B; F]^H H^-1 [B; F] (delta = Delta / unit), for (n,) or (n, k) x."""

    def m_apply(x):
        x = np.asarray(x).reshape(len(delta), -1)
        obj, common = overlaps.fit(b @ x, f @ x)
        return delta[:, None] * x - (b.conj().T @ obj + f.conj().T @ common) / unit

    return m_apply


def _operator(size: int, apply):
    return spla.LinearOperator((size, size), matvec=apply, matmat=apply, dtype=np.complex128)


def _with_prior(b, f, energy, approx, overlaps: Overlaps, prior: float, steps: int) -> np.ndarray:
    """argmin_c c^H M c + prior (c - 1)^H Delta (c - 1): (M + prior Delta) c = prior Delta 1, by
    conjugate gradients on the exact form from the approximate form's solution, which preconditions."""
    size = len(energy)
    unit = energy.mean()
    delta = energy / unit
    factor = sla.cho_factor(approx / unit + prior * np.diag(delta))
    rhs = prior * delta.astype(np.complex128)
    start = sla.cho_solve(factor, rhs)
    if steps <= 0:
        return start
    exact = _exact_form(b, f, overlaps, delta, unit)
    system = _operator(size, lambda x: exact(x) + prior * delta[:, None] * np.asarray(x).reshape(size, -1))
    solution, _ = spla.cg(
        system,
        rhs,
        x0=start,
        rtol=REFINE_TOLERANCE,
        maxiter=steps,
        M=_operator(size, lambda x: sla.cho_solve(factor, x)),
    )
    return solution


def _refine(vec, b, f, energy, approx, overlaps: Overlaps, steps: int) -> np.ndarray:
    """LOBPCG on the exact form M = Delta - [B; F]^H H^-1 [B; F] from `vec`; the approximate form
    (slightly shifted) preconditions. Both are divided by mean(Delta): the tolerance is relative."""
    size = len(vec)
    unit = energy.mean()
    delta = energy / unit
    factor = sla.cho_factor(approx / unit + 1e-9 * np.diag(delta))
    m_apply = _exact_form(b, f, overlaps, delta, unit)

    def operator(apply):
        return _operator(size, apply)

    with warnings.catch_warnings():  # stopping at `steps` short of the tolerance is expected on real data
        warnings.simplefilter("ignore", UserWarning)
        _, vecs = spla.lobpcg(
            operator(m_apply),
            vec[:, None],
            B=operator(lambda x: delta.reshape((-1,) + (1,) * (np.ndim(x) - 1)) * x),
            M=operator(lambda x: sla.cho_solve(factor, x)),
            largest=False,
            tol=REFINE_TOLERANCE,
            maxiter=steps,
        )
    return vecs[:, 0]


def gauge(
    patches: np.ndarray,
    positions: np.ndarray,
    shape: tuple[int, int],
    probe: np.ndarray,
    common: bool = True,
    prior: float = PRIOR,
) -> tuple[np.ndarray, np.ndarray]:
    """Gauge-aware stitcher: estimate each patch's complex scalar (and, with `common`, the error
    common to every patch) from the overlaps, correct the patches, stitch with weights |P|^2.

    patches (n, N, N) complex, positions (n, 2) (y, x) pixels, shape (H, W), probe (N, N).
    Returns (object (H, W) complex64, weights (H, W) float32). Method: this module's docstring.
    """
    return stitch.probe_weighted(correct(patches, positions, shape, probe, common, prior), positions, shape, probe)


def correct(patches, positions, shape, probe, common: bool = True, prior: float = PRIOR) -> np.ndarray:
    """The patches (n, N, N) complex64 with their scalars and (with `common`) the common error
    removed: c_i p_i - e."""
    patches, positions, shape = stitch.check_inputs(patches, positions, shape)
    c, e = estimate(patches, positions, shape, np.abs(np.asarray(probe)) ** 2, common, prior)
    return (patches.astype(np.complex128) * c[:, None, None] - e).astype(np.complex64)
