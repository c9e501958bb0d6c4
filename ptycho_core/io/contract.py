"""From file arrays to the dataset contract (docs/design.md#dataset) and back, for the HDF5 formats.

Counts become amplitudes (`sqrt(counts)`, so `counts_scale` is 1); probes and objects lose
their singleton mode and layer axes; positions in metres become (y, x) object pixels.

Position convention (shared with Ptychodus): an object of H x W pixels of size dx centred at
(cy, cx) metres puts the probe position (y, x) metres at object pixel

    (y - cy) / dx + H / 2,   (x - cx) / dx + W / 2

which is Ptychodus's `(x - cx) / dx + (W - 1) / 2` (pixel centres, probe centre at (N - 1) / 2)
moved by half a pixel to ptycho's patch centre N // 2; both name the same N x N patch.
"""

from __future__ import annotations

import json

import numpy as np

from ptycho_core import limits
from ptycho_core.errors import UsageError
from ptycho_core.io import geometry as geo
from ptycho_core.io.hdf5 import READ_ERRORS, H5Reader, check_dtype, reason

#: Bytes of counts read at a time by `amplitudes` (rounded to whole HDF5 chunks).
READ_BLOCK_BYTES = 64 * 1024**2


def amplitudes(reader: H5Reader, field: str) -> np.ndarray:
    """The photon counts (n, N, N) at `field` -> float32 amplitudes sqrt(counts), read in blocks of
    whole HDF5 chunks (at most READ_BLOCK_BYTES of counts in memory beside the result). The
    declared size, of the counts and of the result, is checked before anything is read; NaN or
    negative counts are errors."""
    item = reader.dataset(field, "photon counts (n, N, N)")
    check_dtype(reader, field, item.dtype, "photon counts (n, N, N)", "fiu")
    shape = item.shape
    if len(shape) != 3:
        raise reader.fail(field, "must be a stack of patterns (n, N, N)", f"shape {shape}")
    if shape[0] == 0:
        raise reader.fail(field, "must hold at least one pattern", "an empty stack")
    limits.check_declared(reader.source, field, shape, np.float32, what="declares as amplitudes")
    out = np.empty(shape, np.float32)
    per_pattern = max(1, shape[1] * shape[2] * item.dtype.itemsize)
    step = max(1, READ_BLOCK_BYTES // per_pattern)
    if item.chunks:
        step = max(item.chunks[0], step // item.chunks[0] * item.chunks[0])
    bad = negative = 0
    for start in range(0, shape[0], step):
        try:
            block = item[start : start + step]
        except READ_ERRORS as exc:
            raise reader.fail(field, "must be readable (photon counts)", f"a damaged dataset ({reason(exc)})") from None
        if block.dtype.kind == "f":
            bad += int((~np.isfinite(block)).sum())
        if block.dtype.kind != "u":
            negative += int((block < 0).sum())
        with np.errstate(invalid="ignore"):  # negative counts are reported below
            np.sqrt(block, out=out[start : start + step], dtype=np.float32, casting="unsafe")
    if bad:
        raise reader.fail(field, "must be finite photon counts", f"{bad} NaN/inf values")
    if negative:
        raise reader.fail(field, "must be non-negative photon counts", f"{negative} negative values")
    return out


def single_mode(reader: H5Reader, field: str, array: np.ndarray, what: str) -> np.ndarray:
    """Drop leading axes of length 1 ((1, 1, N, N) -> (N, N)); more than one mode or layer is an error."""
    out = array
    while out.ndim > 2 and out.shape[0] == 1:
        out = out[0]
    if out.ndim != 2:
        raise reader.fail(field, f"must hold a single {what} (..., H, W) with one mode/layer", f"shape {array.shape}")
    if not np.isfinite(out).all():
        raise reader.fail(field, f"must be a finite {what}", "NaN/inf values")
    return out.astype(np.complex64)


def is_placeholder(obj: np.ndarray) -> bool:
    """True for a uniform object (every pixel the same value): an initial guess, not ground truth."""
    flat = obj.reshape(-1)
    return bool(flat.size == 0 or np.all(flat == flat[0]))


def pixels_from_metres(y_m, x_m, pixel_m: float, shape: tuple, center_m=(0.0, 0.0)) -> np.ndarray:
    """Probe positions in metres -> (n, 2) (y, x) object pixels (module docstring)."""
    y = (np.asarray(y_m, dtype=np.float64) - center_m[0]) / pixel_m + shape[0] / 2
    x = (np.asarray(x_m, dtype=np.float64) - center_m[1]) / pixel_m + shape[1] / 2
    return np.stack([y, x], axis=1)


def metres_from_pixels(positions: np.ndarray, pixel_m: float, shape: tuple, center_m=(0.0, 0.0)):
    """(n, 2) (y, x) object pixels -> (y_m, x_m) arrays; the inverse of `pixels_from_metres`."""
    y = (positions[:, 0] - shape[0] / 2) * pixel_m + center_m[0]
    x = (positions[:, 1] - shape[1] / 2) * pixel_m + center_m[1]
    return y, x


def scan_shape(positions: np.ndarray, n: int) -> tuple[int, int]:
    """The smallest (H, W) object canvas from pixel 0 that holds every N x N patch."""
    hi = np.ceil(positions.max(axis=0) + n / 2).astype(int) + 1
    return max(int(hi[0]), n), max(int(hi[1]), n)


def counts(diffraction: np.ndarray) -> np.ndarray:
    """Contract amplitudes -> float32 counts (A^2) for writing."""
    return np.square(diffraction.astype(np.float64)).astype(np.float32)


#: Metadata keys a loader derives from the file itself, never taken from stored JSON.
DERIVED_KEYS = ("source", "format", "conversions", "skipped", "links", "pixel_size_m", "energy_eV", "distance_m")


def own_metadata(reader: H5Reader, field: str, text: str) -> dict:
    """The metadata JSON ptycho stores in the files it writes ({} when `text` is empty)."""
    if not text:
        return {}
    try:
        metadata = json.loads(text)
    except ValueError as exc:
        raise reader.fail(field, "must hold valid JSON", str(exc).splitlines()[0]) from None
    if not isinstance(metadata, dict):
        raise reader.fail(field, "must hold a JSON object", type(metadata).__name__)
    return {k: v for k, v in metadata.items() if k not in DERIVED_KEYS and k != "detector_pixel_size_m"}


def to_write(ds, path, fmt: str):
    """What the HDF5 writers need from a dataset: (geometry, object grid, metadata to store).

    The geometry is the metadata's or the default one (then recorded as assumed); the object grid
    is the object, or a uniform one covering the scan (both formats need an object grid).
    """
    ds.validate(source=str(path))
    if ds.mask is not None and ds.mask.ndim == 3:
        raise UsageError(f"{path}: per-pattern masks (n, N, N) cannot be written as {fmt}; write .npz instead")
    geometry, assumed = geo.of_dataset(ds.metadata, ds.patch_size)
    grid = ds.object if ds.object is not None else np.ones(scan_shape(ds.positions, ds.patch_size), np.complex64)
    metadata = {**ds.metadata, **geometry.as_metadata(), "geometry": "assumed" if assumed else "given"}
    return geometry, grid, metadata
