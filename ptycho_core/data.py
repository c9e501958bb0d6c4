"""The dataset contract (docs/design.md#dataset), splits and grouping (docs/design.md#splits).

A `Dataset` is one scan plus optional ground truth, in contract units:
    diffraction   float32 (n, N, N) amplitude (sqrt counts), fftshifted, >= 0, finite, N even
    positions     float64 (n, 2) (y, x) object pixels under each patch's centre pixel (N//2, N//2)
    probe         complex64 (N, N) on the diffraction's scale
    object        complex64 (H, W) optional ground truth on the positions' grid
    mask          bool (N, N) or (n, N, N) optional, True = valid detector pixel
    metadata      JSON-serialisable dict (source, counts_scale, nphotons, conversions, ...)
    object_shape  (H, W) of the object grid, or None when not known (the object's shape when given)

The positions frame (one for the whole code base): pixel (0, 0) is the top-left pixel of the object
grid, y down, x right, and a position names the object pixel under the patch's centre pixel
(N//2, N//2). When `object_shape` is known every patch lies on that grid; when it is not (measured
data without ground truth) `pipeline.object_grid` chooses the smallest grid covering every patch
and shifts the positions onto it by whole pixels (`pipeline.scan_for` returns the scan on it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field

import numpy as np

from ptycho_core import physics
from ptycho_core.errors import DataError
from ptycho_core.generator import TrainingSet


@dataclass
class Dataset:
    diffraction: np.ndarray
    positions: np.ndarray
    probe: np.ndarray
    object: np.ndarray | None = None
    mask: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)
    object_shape: tuple[int, int] | None = None

    def __post_init__(self):
        # With ground truth the grid is the object's (also after `dataclasses.replace(object=...)`).
        if self.object is not None and getattr(self.object, "ndim", 0) == 2:
            self.object_shape = self.object.shape
        if self.object_shape is not None:
            self.object_shape = tuple(int(v) for v in self.object_shape)

    @property
    def n(self) -> int:
        return int(self.diffraction.shape[0])

    @property
    def patch_size(self) -> int:
        return int(self.diffraction.shape[-1])

    @property
    def has_ground_truth(self) -> bool:
        return self.object is not None

    def validate(self, source: str = "dataset") -> Dataset:
        """Check the contract; raise DataError naming `source`, the key and what was expected."""
        validate(self, source)
        return self

    def subset(self, index) -> Dataset:
        """The patterns at `index` (same probe, object and metadata)."""
        mask = self.mask if self.mask is None or self.mask.ndim == 2 else self.mask[index]
        return dataclasses.replace(
            self,
            diffraction=self.diffraction[index],
            positions=self.positions[index],
            mask=mask,
            metadata=dict(self.metadata),
        )

    def gt_patches(self, positions: np.ndarray | None = None) -> np.ndarray:
        """Ground-truth patches: always `physics.extract(object, positions)`."""
        if self.object is None:
            raise DataError("this dataset has no ground-truth object")
        pos = self.positions if positions is None else positions
        return physics.extract(self.object, pos.reshape(-1, 2), self.patch_size).reshape(
            pos.shape[:-1] + (self.patch_size, self.patch_size)
        )

    def fingerprint(self) -> str:
        """A content hash (sha256 hex) of arrays and metadata, for caches and resume (`object_shape`
        is not hashed: it is the object's shape, or a grid the harness derives for its children)."""
        h = hashlib.sha256()
        for arr in (self.diffraction, self.positions, self.probe, self.object, self.mask):
            if arr is None:
                h.update(b"none")
            else:
                a = np.ascontiguousarray(arr)
                h.update(str((a.dtype.str, a.shape)).encode())
                h.update(a.tobytes())
        h.update(json.dumps(self.metadata, sort_keys=True, default=str).encode())
        return h.hexdigest()

    def summary(self) -> dict:
        """Plain facts for `ptycho inspect` and reports."""
        pos = self.positions
        out = {
            "patterns": self.n,
            "patch_size": self.patch_size,
            "positions_y": [float(pos[:, 0].min()), float(pos[:, 0].max())],
            "positions_x": [float(pos[:, 1].min()), float(pos[:, 1].max())],
            "mean_counts_per_pattern": float((self.diffraction.astype(np.float64) ** 2).sum(axis=(1, 2)).mean()),
            "probe_max_abs": float(np.abs(self.probe).max()),
            "object_shape": None if self.object is None else list(self.object.shape),
            "mask": None if self.mask is None else list(self.mask.shape),
        }
        if len(pos) > 1:
            from scipy.spatial import cKDTree  # lazy: import time (scipy), only this function needs it

            d, _ = cKDTree(pos).query(pos, k=2)
            out["median_step"] = float(np.median(d[:, 1]))
        return out


def _fail(source: str, key: str, expected: str, got: str) -> DataError:
    return DataError(f"{source}: '{key}' {expected}, got {got}")


def validate(ds: Dataset, source: str = "dataset") -> None:
    """The units and shapes contract of docs/design.md#dataset."""
    d, p, probe = ds.diffraction, ds.positions, ds.probe
    if not isinstance(d, np.ndarray) or d.dtype != np.float32:
        raise _fail(source, "diffraction", "must be a float32 array", getattr(d, "dtype", type(d).__name__))
    if d.ndim != 3:
        raise _fail(source, "diffraction", "must have shape (n, N, N)", f"shape {d.shape}")
    if d.shape[0] == 0:
        raise _fail(source, "diffraction", "must hold at least one pattern", "an empty array")
    if d.shape[1] != d.shape[2]:
        raise _fail(source, "diffraction", "patterns must be square (n, N, N)", f"shape {d.shape}")
    n_pix = d.shape[-1]
    if n_pix % 2:
        raise _fail(source, "diffraction", "pattern side N must be even", f"N = {n_pix}")
    if not np.isfinite(d).all():
        raise _fail(source, "diffraction", "must be finite", f"{int((~np.isfinite(d)).sum())} NaN/inf values")
    if (d < 0).any():
        raise _fail(source, "diffraction", "must be non-negative amplitudes", f"{int((d < 0).sum())} negative values")
    if not isinstance(p, np.ndarray) or p.dtype != np.float64:
        raise _fail(source, "positions", "must be a float64 array", getattr(p, "dtype", type(p).__name__))
    if p.ndim != 2 or p.shape[1] != 2:
        raise _fail(source, "positions", "must have shape (n, 2) as (y, x)", f"shape {p.shape}")
    if p.shape[0] != d.shape[0]:
        raise _fail(source, "positions", f"must have one row per pattern ({d.shape[0]})", f"{p.shape[0]} rows")
    if not np.isfinite(p).all():
        raise _fail(source, "positions", "must be finite", "NaN/inf values")
    if not isinstance(probe, np.ndarray) or probe.dtype != np.complex64:
        raise _fail(source, "probe", "must be a complex64 array", getattr(probe, "dtype", type(probe).__name__))
    if probe.ndim == 3:
        raise _fail(
            source,
            "probe",
            "must be a single mode (N, N); multi-mode probes are not supported yet",
            f"shape {probe.shape}",
        )
    if probe.shape != (n_pix, n_pix):
        raise _fail(source, "probe", f"must have the pattern shape ({n_pix}, {n_pix})", f"shape {probe.shape}")
    if not np.isfinite(probe).all() or not np.abs(probe).any():
        raise _fail(source, "probe", "must be finite and not all zero", "invalid values")
    if ds.object is not None:
        obj = ds.object
        if obj.dtype != np.complex64 or obj.ndim != 2:
            raise _fail(source, "object", "must be complex64 (H, W)", f"{obj.dtype} shape {obj.shape}")
        if not np.isfinite(obj).all():
            raise _fail(source, "object", "must be finite", "NaN/inf values")
    if ds.object_shape is not None:
        h, w = ds.object_shape
        half = n_pix // 2
        lo = p.min(axis=0)
        hi = p.max(axis=0)
        if lo[0] < -half or lo[1] < -half or hi[0] > h - 1 + half or hi[1] > w - 1 + half:
            raise _fail(
                source,
                "positions",
                f"must lie on the object ({h}x{w}, patches of {n_pix})",
                f"y in [{lo[0]:.1f}, {hi[0]:.1f}], x in [{lo[1]:.1f}, {hi[1]:.1f}]",
            )
    if ds.mask is not None:
        m = ds.mask
        if m.dtype != np.bool_ or m.shape not in ((n_pix, n_pix), d.shape):
            raise _fail(source, "mask", f"must be bool ({n_pix}, {n_pix}) or {d.shape}", f"{m.dtype} shape {m.shape}")
        if not m.any():
            raise _fail(source, "mask", "must mark at least one valid pixel", "all False")
    try:
        json.dumps(ds.metadata)
    except (TypeError, ValueError) as exc:
        raise _fail(source, "metadata", "must be JSON-serialisable", str(exc)) from None


# --- splits -----------------------------------------------------------------------------------


def spatial_split(ds: Dataset, axis: int = 1) -> tuple[Dataset, Dataset, dict]:
    """Split one scan along x at the median position, with a guard band.

    Patterns whose N x N footprint comes within N/2 of the split line are dropped, so no
    training pattern sees test-region pixels. Returns (train, test, info).
    """
    n_pix = ds.patch_size
    coord = ds.positions[:, axis]
    line = float(np.median(coord))
    reach = n_pix / 2 + n_pix / 2  # half the footprint plus the guard band
    train_idx = np.flatnonzero(coord <= line - reach)
    test_idx = np.flatnonzero(coord >= line + reach)
    if len(train_idx) == 0 or len(test_idx) == 0:
        raise DataError(
            f"spatial split: the scan is too narrow along {'yx'[axis]} for a split with an N/2 guard band "
            f"({len(train_idx)} train, {len(test_idx)} test patterns); give --test-data"
        )
    info = {
        "kind": "spatial",
        "axis": "yx"[axis],
        "line": line,
        "guard": n_pix / 2,
        "train": int(len(train_idx)),
        "test": int(len(test_idx)),
        "dropped": int(ds.n - len(train_idx) - len(test_idx)),
    }
    return ds.subset(train_idx), ds.subset(test_idx), info


# --- grouping ---------------------------------------------------------------------------------


@dataclass
class Groups:
    """Groups of C = gridsize**2 patterns: indices (B, C) into the dataset, channel 0 the anchor.

    positions (B, C, 2) absolute; offsets (B, C, 2) from the group centroid.
    """

    indices: np.ndarray
    positions: np.ndarray
    offsets: np.ndarray

    @property
    def n_groups(self) -> int:
        return int(self.indices.shape[0])


def _make_groups(positions: np.ndarray, indices: np.ndarray) -> Groups:
    pos = positions[indices]
    return Groups(indices=indices, positions=pos, offsets=pos - pos.mean(axis=1, keepdims=True))


def group(positions: np.ndarray, gridsize: int, *, train: bool, seed: int = 0) -> Groups:
    """One group per anchor pattern (docs/design.md#splits).

    Training: the anchor plus C-1 patterns drawn (seeded) from its 2C nearest neighbours.
    Test: the anchor plus its C-1 nearest neighbours (deterministic).
    """
    c = gridsize * gridsize
    n = len(positions)
    if gridsize < 1:
        raise DataError(f"gridsize must be at least 1, got {gridsize}")
    if c == 1:
        return _make_groups(positions, np.arange(n)[:, None])
    if n < c:
        raise DataError(f"gridsize {gridsize} needs at least {c} patterns, got {n}")
    from scipy.spatial import cKDTree  # lazy: import time (scipy), only this function needs it

    k = min(n, 2 * c + 1 if train else c)
    _, nbrs = cKDTree(positions).query(positions, k=k)
    nbrs = np.asarray(nbrs).reshape(n, k)
    out = np.empty((n, c), dtype=np.int64)
    rng = np.random.default_rng(seed)
    for i in range(n):
        others = nbrs[i][nbrs[i] != i]
        if train:
            pick = rng.choice(others[: 2 * c], size=c - 1, replace=False)
        else:
            pick = others[: c - 1]
        out[i, 0] = i
        out[i, 1:] = pick
    return _make_groups(positions, out)


def validation_split(n_groups: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, val) group indices; the same for every generator given the same seed."""
    if fraction <= 0 or n_groups < 2:
        return np.arange(n_groups), np.arange(0)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_groups)
    n_val = max(1, int(round(fraction * n_groups)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def training_set(
    ds: Dataset, groups: Groups, *, input_scale: float, s0: float, canvas_size: int, supervised: bool
) -> TrainingSet:
    """Pack grouped data for `fit`; ground truth only for supervised generators."""
    idx = groups.indices
    mask = ds.mask if ds.mask is None or ds.mask.ndim == 2 else ds.mask[idx]
    gt = ds.gt_patches(groups.positions).astype(np.complex64) if supervised else None
    return TrainingSet(
        diffraction=ds.diffraction[idx],
        positions=groups.positions,
        offsets=groups.offsets,
        probe=ds.probe,
        input_scale=float(input_scale),
        s0=float(s0),
        canvas_size=int(canvas_size),
        mask=mask,
        gt_patches=gt,
    )


def scales(ds: Dataset) -> tuple[float, float]:
    """(input_scale = 1 / rms amplitude, s0) of a training dataset."""
    r = physics.rms_amplitude(ds.diffraction, ds.mask)
    if not r > 0 or not math.isfinite(r):
        raise DataError("training diffraction is all zero: cannot normalise")
    return 1.0 / r, physics.amplitude_scale(ds.diffraction, ds.probe)
