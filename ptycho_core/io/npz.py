"""NumPy `.npz` datasets: ptycho's own files and the PtychoPINN raw contract (docs/design.md#dataset).

Own files (written by `save_npz`): `diffraction`, `positions`, `probe`, optional `object` and
`mask`, and `metadata_json`, a 0-d unicode string array holding the metadata as JSON. A round
trip is exact: arrays, dtypes and metadata come back unchanged.

PtychoPINN raw files: `diffraction` (or legacy `diff3d`), `xcoords`, `ycoords`, `probeGuess`,
optional `objectGuess`, `Y` / `ground_truth_patches` (checked against
`physics.extract(object, positions)`, never used as is), `scan_index` (one scan only).

Sizes: each entry's uncompressed zip member and the shape x dtype its .npy header declares are
checked against `limits.memory_limit()` before numpy reads it (numpy then reads it in 256 KiB
blocks into one array); a header declaring more than its member holds is refused as well.

Nothing is ever unpickled (`allow_pickle=False`): a contract entry stored as an object array is
an error; any other such entry (the JSON `_metadata` PtychoPINN writes) is skipped and the skip
recorded in `metadata["skipped"]`. Every conversion (legacy key names, x/y order, dtype casts,
trailing channel axes) is recorded in `metadata["conversions"]`. Bad input raises `DataError`
with one line naming the file, the key and what was expected.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ptycho_core import limits, physics
from ptycho_core.data import Dataset
from ptycho_core.errors import DataError
from ptycho_core.io import tike

#: Relative mismatch (max |Y - extract| / max |extract|) above which file patches are flagged.
GT_PATCH_TOLERANCE = 1e-3

OWN_KEYS = ("diffraction", "positions", "probe", "object", "mask", "metadata_json")
PTYCHOPINN_KEYS = (
    "diffraction",
    "diff3d",
    "xcoords",
    "ycoords",
    "probeGuess",
    "objectGuess",
    "Y",
    "ground_truth_patches",
    "scan_index",
)

# Errors numpy and zipfile raise on damaged archives and members.
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError)


class Archive:
    """One open `.npz`, read entry by entry with errors naming the file and the key."""

    def __init__(self, path: Path):
        self.path = path
        self.source = str(path)
        if not path.exists():
            raise DataError(f"{self.source}: no such file")
        if not path.is_file():
            raise DataError(f"{self.source}: not a file")
        try:
            with open(path, "rb") as fh:
                head = fh.read(6)
        except OSError as exc:
            raise DataError(f"{self.source}: cannot be read ({_reason(exc)})") from None
        if not head.startswith(b"PK"):
            what = "an empty file" if not head else "no zip signature"
            raise DataError(f"{self.source}: not an NPZ archive ({what}; expected a zip of .npy arrays)")
        try:
            npz = np.load(path, allow_pickle=False)
        except _READ_ERRORS as exc:
            raise DataError(f"{self.source}: not a readable NPZ archive ({_reason(exc)})") from None
        if not isinstance(npz, np.lib.npyio.NpzFile):  # a bare .npy array
            raise DataError(f"{self.source}: expected an NPZ archive of named arrays, got a single .npy array")
        self.npz = npz
        self.keys = list(npz.files)

    def close(self) -> None:
        self.npz.close()

    def fail(self, key: str, expected: str, got: str) -> DataError:
        return DataError(f"{self.source}: '{key}' {expected}, got {got}")

    def header(self, key: str):
        """(shape, fortran order, dtype, member's uncompressed bytes, header bytes) of an entry, read
        from its .npy header and the zip directory (the data is not loaded); None when unreadable."""
        name = key + ".npy"
        try:
            info = self.npz.zip.getinfo(name)
            with self.npz.zip.open(name) as fp:
                version = np.lib.format.read_magic(fp)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read(fp)
                offset = fp.tell()
        except _READ_ERRORS:
            return None  # reading the entry itself will report the damage
        return shape, fortran, dtype, info.file_size, offset

    def needs_unpickling(self, key: str) -> bool:
        """True when the entry is an object array (read from its header; the data is not loaded)."""
        header = self.header(key)
        return header is not None and bool(header[2].hasobject)

    def check_size(self, key: str) -> None:
        """Refuse an entry whose uncompressed member or declared array is over the memory limit, or
        whose header declares more data than the member holds (a lying header)."""
        try:
            info = self.npz.zip.getinfo(key + ".npy")
        except KeyError:
            return
        limits.check_bytes(self.source, key, info.file_size, "inflates (uncompressed zip member)")
        header = self.header(key)
        if header is None:
            return
        shape, _, dtype, member, offset = header
        declared = limits.check_declared(self.source, key, shape, dtype)
        if not dtype.hasobject and declared > member - offset:
            raise self.fail(
                key,
                f"must hold the {limits.human(declared)} its header declares ({tuple(shape)} {dtype})",
                f"{limits.human(max(member - offset, 0))} (a truncated member or a lying header)",
            )

    def get(self, key: str) -> np.ndarray:
        """Load one entry (sizes checked first); an object array or a damaged member is a DataError."""
        if self.needs_unpickling(key):
            raise self.fail(key, "must be a plain numeric array (object arrays need unpickling)", "an object array")
        self.check_size(key)
        try:
            value = self.npz[key]
        except _READ_ERRORS as exc:
            raise self.fail(key, "must be a readable array", _reason(exc)) from None
        if not isinstance(value, np.ndarray):  # a zip member that is not a .npy file
            raise self.fail(key, "must be a .npy array inside the archive", f"a {type(value).__name__} member")
        return value


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_npy(path) -> None:
    """Refuse (DataError) a .npy file whose header declares more than the memory limit, or more
    than the file holds, before numpy allocates it."""
    try:
        with open(path, "rb") as fp:
            version = np.lib.format.read_magic(fp)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(fp)
            held = os.fstat(fp.fileno()).st_size - fp.tell()
    except (OSError, ValueError):
        return  # np.load reports an unreadable file
    declared = limits.check_declared(path, "array", shape, dtype)
    if not dtype.hasobject and declared > held:
        raise DataError(f"{path}: its header declares {limits.human(declared)}, the file holds {limits.human(held)}")


# --- conversions ------------------------------------------------------------------------------


def _as_real(ar: Archive, key: str, arr: np.ndarray, dtype, conversions: list, what: str) -> np.ndarray:
    """Cast an integer or float array to `dtype` (recorded); anything else is a DataError."""
    if arr.dtype.kind == "c":
        raise ar.fail(key, f"must be real {what}", f"complex dtype {arr.dtype}")
    if arr.dtype.kind not in "fiu":
        raise ar.fail(key, f"must hold real numbers ({what})", f"dtype {arr.dtype}")
    if arr.dtype != dtype:
        conversions.append(f"{key}: {arr.dtype} -> {np.dtype(dtype).name}")
        arr = arr.astype(dtype)
    return arr


def _as_complex64(ar: Archive, key: str, arr: np.ndarray, conversions: list) -> np.ndarray:
    if arr.dtype.kind not in "fiuc":
        raise ar.fail(key, "must hold complex (or real) numbers", f"dtype {arr.dtype}")
    if arr.dtype != np.complex64:
        conversions.append(f"{key}: {arr.dtype} -> complex64")
        arr = arr.astype(np.complex64)
    return arr


def _as_mask(ar: Archive, key: str, arr: np.ndarray, conversions: list) -> np.ndarray:
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind in "iu" and np.isin(arr, (0, 1)).all():
        conversions.append(f"{key}: {arr.dtype} 0/1 -> bool")
        return arr.astype(np.bool_)
    raise ar.fail(key, "must be a bool array (True = valid pixel)", f"dtype {arr.dtype}")


def _drop_channel_axis(key: str, arr: np.ndarray, rank: int, conversions: list) -> np.ndarray:
    """(..., 1) with one axis too many -> drop the trailing axis (recorded)."""
    if arr.ndim == rank + 1 and arr.shape[-1] == 1:
        conversions.append(f"{key}: shape {arr.shape} -> {arr.shape[:-1]} (trailing channel axis dropped)")
        return arr[..., 0]
    return arr


def _check_finite(ar: Archive, key: str, arr: np.ndarray) -> None:
    if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        raise ar.fail(key, "must be finite", f"{int((~np.isfinite(arr)).sum())} NaN/inf values")


def _validate(ds: Dataset, ar: Archive, names: dict) -> Dataset:
    """`Dataset.validate`, with the contract keys in its message renamed to the file's keys."""
    try:
        return ds.validate(source=ar.source)
    except DataError as exc:
        message = str(exc)
        for contract, raw in names.items():
            if raw != contract and f"'{contract}'" in message:
                quoted = "/".join(f"'{k}'" for k in raw.split("/"))
                message = message.replace(f"'{contract}'", f"{quoted} (as {contract})", 1)
                break
        raise DataError(message) from None


# --- loading ----------------------------------------------------------------------------------


def load_npz(path) -> Dataset:
    """Read a `.npz` dataset (own format or PtychoPINN raw contract) and validate it.

    Returns a `Dataset` in contract units: diffraction float32 (n, N, N) amplitude, positions
    float64 (n, 2) as (y, x) object pixels, probe complex64 (N, N), optional object complex64
    (H, W) and mask bool. Raises DataError (one line: file, key, expectation) on bad input.
    """
    ar = Archive(Path(path))
    try:
        if "metadata_json" in ar.keys or "positions" in ar.keys:
            return _load_own(ar)
        if "xcoords" in ar.keys or "ycoords" in ar.keys or "diff3d" in ar.keys or "probeGuess" in ar.keys:
            return _load_ptychopinn(ar)
        if tike.is_tike(ar.keys):
            return tike.load_tike(ar.path)
        found = ", ".join(ar.keys) or "no entries"
        raise DataError(
            f"{ar.source}: 'diffraction' + 'positions' (ptycho), 'diff3d'/'diffraction' + 'xcoords' + 'ycoords' "
            f"+ 'probeGuess' (PtychoPINN) or 'data' + 'scan' + 'probe' (tike, pixel units) expected, got {found}"
        )
    finally:
        ar.close()


def _require(ar: Archive, *keys: str) -> None:
    for key in keys:
        if key not in ar.keys:
            raise ar.fail(key, "is required", f"entries {', '.join(ar.keys) or 'none'}")


def _skip_extras(ar: Archive, known: tuple, metadata: dict) -> None:
    skipped = []
    for key in ar.keys:
        if key in known:
            continue
        if ar.needs_unpickling(key):
            skipped.append(f"{key}: object array (needs unpickling), not loaded")
        else:
            skipped.append(f"{key}: not part of the contract, not used")
    if skipped:
        metadata["skipped"] = list(metadata.get("skipped", [])) + skipped


def _load_own(ar: Archive) -> Dataset:
    _require(ar, "diffraction", "positions", "probe")
    metadata: dict = {}
    if "metadata_json" in ar.keys:
        raw = ar.get("metadata_json")
        if raw.dtype.kind != "U" or raw.ndim != 0:
            raise ar.fail("metadata_json", "must be a 0-d unicode string array", f"{raw.dtype} shape {raw.shape}")
        try:
            metadata = json.loads(str(raw[()]))
        except ValueError as exc:
            raise ar.fail("metadata_json", "must hold valid JSON", _reason(exc)) from None
        if not isinstance(metadata, dict):
            raise ar.fail("metadata_json", "must hold a JSON object", type(metadata).__name__)
    conversions: list = []
    diffraction = _as_real(ar, "diffraction", ar.get("diffraction"), np.float32, conversions, "amplitudes")
    diffraction = _drop_channel_axis("diffraction", diffraction, 3, conversions)
    positions = _as_real(ar, "positions", ar.get("positions"), np.float64, conversions, "(y, x) pixels")
    probe = _as_complex64(ar, "probe", ar.get("probe"), conversions)
    obj = _as_complex64(ar, "object", ar.get("object"), conversions) if "object" in ar.keys else None
    mask = _as_mask(ar, "mask", ar.get("mask"), conversions) if "mask" in ar.keys else None
    metadata.setdefault("source", ar.source)
    metadata.setdefault("counts_scale", None)
    if conversions:
        metadata["conversions"] = list(metadata.get("conversions", [])) + conversions
    _skip_extras(ar, OWN_KEYS, metadata)
    ds = Dataset(diffraction=diffraction, positions=positions, probe=probe, object=obj, mask=mask, metadata=metadata)
    return _validate(ds, ar, {})


def _load_ptychopinn(ar: Archive) -> Dataset:
    conversions: list = []
    metadata: dict = {"source": ar.source, "format": "ptychopinn-raw"}
    if "diffraction" in ar.keys:
        diff_key = "diffraction"
        if "diff3d" in ar.keys:
            conversions.append("diff3d: ignored, 'diffraction' takes precedence")
    elif "diff3d" in ar.keys:
        diff_key = "diff3d"
        conversions.append("diff3d -> diffraction (legacy key)")
    else:
        raise ar.fail("diffraction", "(or legacy 'diff3d') is required", f"entries {', '.join(ar.keys)}")
    _require(ar, "xcoords", "ycoords", "probeGuess")

    if "scan_index" in ar.keys:
        scans = ar.get("scan_index")
        if scans.dtype.kind not in "iuf":
            raise ar.fail("scan_index", "must hold integers", f"dtype {scans.dtype}")
        distinct = np.unique(scans)
        if distinct.size > 1:
            shown = ", ".join(str(v) for v in distinct[:5]) + (", ..." if distinct.size > 5 else "")
            raise ar.fail(
                "scan_index",
                "must hold one scan (several scans in one file are not supported yet)",
                f"{distinct.size} scans ({shown})",
            )
        if distinct.size == 1:
            metadata["scan_index"] = distinct[0].item()

    diffraction = _as_real(ar, diff_key, ar.get(diff_key), np.float32, conversions, "amplitudes")
    diffraction = _drop_channel_axis(diff_key, diffraction, 3, conversions)

    coords = {}
    for key in ("ycoords", "xcoords"):
        arr = _as_real(ar, key, ar.get(key), np.float64, conversions, "object pixels")
        arr = _drop_channel_axis(key, arr, 1, conversions)
        if arr.ndim != 1:
            raise ar.fail(key, "must have shape (n,)", f"shape {arr.shape}")
        _check_finite(ar, key, arr)
        coords[key] = arr
    if coords["xcoords"].shape != coords["ycoords"].shape:
        raise ar.fail(
            "xcoords", f"must have as many entries as 'ycoords' ({coords['ycoords'].size})", f"{coords['xcoords'].size}"
        )
    if diffraction.ndim >= 1 and coords["xcoords"].size != diffraction.shape[0]:
        raise ar.fail(
            "xcoords",
            f"must have one entry per pattern in '{diff_key}' ({diffraction.shape[0]})",
            f"{coords['xcoords'].size}",
        )
    positions = np.stack([coords["ycoords"], coords["xcoords"]], axis=1)
    conversions.append("xcoords, ycoords -> positions (y, x)")

    probe = _as_complex64(ar, "probeGuess", ar.get("probeGuess"), conversions)
    probe = _drop_channel_axis("probeGuess", probe, 2, conversions)
    obj = None
    if "objectGuess" in ar.keys:
        obj = _as_complex64(ar, "objectGuess", ar.get("objectGuess"), conversions)
        obj = _drop_channel_axis("objectGuess", obj, 2, conversions)

    metadata["counts_scale"] = None
    metadata["amplitude_scale_note"] = "PtychoPINN raw: diffraction on the probe's scale, not photon counts"
    names = {"diffraction": diff_key, "positions": "xcoords/ycoords", "probe": "probeGuess", "object": "objectGuess"}
    ds = Dataset(diffraction=diffraction, positions=positions, probe=probe, object=obj, metadata=metadata)
    _validate(ds, ar, names)

    # File-provided ground-truth patches are only checked, never used (docs/design.md#dataset).
    for key in ("ground_truth_patches", "Y"):
        if key not in ar.keys:
            continue
        metadata[f"{key}_check"] = _check_patches(ar, key, ds, physics, conversions)
    metadata["conversions"] = conversions
    _skip_extras(ar, PTYCHOPINN_KEYS, metadata)
    return ds


def _check_patches(ar: Archive, key: str, ds: Dataset, physics, conversions: list) -> dict:
    """Compare file patches with `physics.extract(object, positions)`; a plain dict for metadata."""
    if ds.object is None:
        return {"checked": False, "note": "no 'objectGuess' to check against; not used"}
    patches = ar.get(key)
    if patches.dtype.kind not in "fiuc":
        return {"checked": False, "note": f"dtype {patches.dtype} is not numeric; not used"}
    n_pix = ds.patch_size
    patches = _drop_channel_axis(key, patches, 3, conversions)
    if patches.shape != (ds.n, n_pix, n_pix):
        return {"checked": False, "note": f"shape {patches.shape} != {(ds.n, n_pix, n_pix)}; not used"}
    reference = physics.extract(ds.object, ds.positions, n_pix)
    scale = float(np.abs(reference).max()) or 1.0
    rel = float(np.abs(patches.astype(np.complex128) - reference).max() / scale)
    out = {"checked": True, "max_relative_error": rel, "matches": rel <= GT_PATCH_TOLERANCE}
    if rel > GT_PATCH_TOLERANCE:
        out["note"] = (
            f"'{key}' differs from the object cut at the positions (max relative error {rel:.3g} > "
            f"{GT_PATCH_TOLERANCE:g}); ground-truth patches always come from the object"
        )
    return out


# --- writing ----------------------------------------------------------------------------------


def save_npz(ds: Dataset, path) -> Path:
    """Validate `ds` and write it in ptycho's own `.npz` layout, atomically; returns the path.

    Keys: diffraction, positions, probe, optional object and mask, and `metadata_json` (a 0-d
    unicode array). `load_npz` reads it back exactly.
    """
    path = Path(path)
    ds.validate(source=str(path))
    arrays = {"diffraction": ds.diffraction, "positions": ds.positions, "probe": ds.probe}
    if ds.object is not None:
        arrays["object"] = ds.object
    if ds.mask is not None:
        arrays["mask"] = ds.mask
    arrays["metadata_json"] = np.array(json.dumps(ds.metadata))
    return _write_atomically(path, arrays)


def save_ptychopinn(ds: Dataset, path) -> Path:
    """Write `ds` in the PtychoPINN raw layout `load_npz` reads: `diffraction` (amplitudes),
    `xcoords`, `ycoords`, `probeGuess`, optional `objectGuess`, `scan_index` (all 0); returns the path.

    Masks and metadata have no place in that layout and are not written.
    """
    path = Path(path)
    ds.validate(source=str(path))
    arrays = {
        "diffraction": ds.diffraction,
        "xcoords": ds.positions[:, 1].copy(),
        "ycoords": ds.positions[:, 0].copy(),
        "probeGuess": ds.probe,
        "scan_index": np.zeros(ds.n, dtype=np.int64),
    }
    if ds.object is not None:
        arrays["objectGuess"] = ds.object
    return _write_atomically(path, arrays)


def _write_atomically(path: Path, arrays: dict) -> Path:
    """np.savez to a temporary file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_reconstruction(path, result) -> Path:
    """Write a `Reconstruction` (ptycho_core.generator) as .npz: `object` (H, W) complex64, `weights`, `positions`
    (on the object's grid) and `metrics_json` (a 0-d unicode array); returns the path."""
    arrays = {
        "object": result.object,
        "weights": result.weights,
        "positions": result.positions,
        "metrics_json": np.array(json.dumps(result.metrics, default=float)),
    }
    return _write_atomically(Path(path), arrays)
