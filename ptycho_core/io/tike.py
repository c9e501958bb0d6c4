"""Pixel-unit scans without geometry, in tike's NPZ layout, and the Siemens star from tike's sdist.

The contract (docs/formats.md, "Pixel-unit scans"), as tike writes it (tike 0.26.0,
`tests/data/siemens-star-small.npz`):

    data   float (..., n, N, N) photon counts, zero frequency at the corner (not fftshifted)
    scan   float (..., n, 2) (y, x) pixels of each probe window's minimum (top-left) corner; may be
           negative
    probe  complex (..., N, N) the probe guess, on any scale

Leading axes of length 1 (tike's views and probe modes) are dropped; more than one view or probe
mode is refused. The conversion to ptycho's contract (docs/design.md#dataset), each step recorded in
`metadata["conversions"]`:

- amplitude = sqrt(counts), fftshifted so that the zero frequency sits at (N/2, N/2);
- positions = scan + N/2 (the window's centre pixel), moved by a whole-pixel shift so that the
  smallest is N/2 (the object grid starts at 0);
- probe scaled so that sum |P|^2 equals the mean counts per pattern (ortho FFT, Parseval: an
  object of unit amplitude explains the data's mean intensity). The raw star's guess has an energy
  of 51.8 against 4.6e5 mean counts.

No geometry is known: the object pixel is the detector's reciprocal, in pixels only.
"""

from __future__ import annotations

import bz2
import shutil
import tarfile
from pathlib import Path

import numpy as np

from ptycho_core.data import Dataset
from ptycho_core.errors import DataError

TIKE_KEYS = ("data", "scan", "probe")

#: The star's provenance, written into its metadata and the docs.
STAR_SOURCE = (
    "tike 0.26.0 sdist (PyPI), tests/data/siemens-star-small.npz.bz2: Siemens star measured at the APS "
    "Velociprobe; BSD-3-Clause licence (tike's LICENSE, kept beside the file)"
)
STAR_MEMBER = "tests/data/siemens-star-small.npz.bz2"


def is_tike(keys) -> bool:
    """True for an archive with tike's entries (`data`, `scan`, `probe`) and none of ptycho's."""
    keys = set(keys)
    return set(TIKE_KEYS) <= keys and "diffraction" not in keys and "positions" not in keys


def _squeeze(name: str, arr: np.ndarray, rank: int, source: str) -> np.ndarray:
    extra = arr.shape[: arr.ndim - rank]
    if arr.ndim < rank or any(v != 1 for v in extra):
        raise DataError(
            f"{source}: '{name}' must have shape {'(1, ..., ' if extra else '('}{rank} axes) with one view and "
            f"one probe mode, got shape {arr.shape}"
        )
    return arr.reshape(arr.shape[arr.ndim - rank :])


def load_tike(path) -> Dataset:
    """Read a tike-layout `.npz` (see the module docstring) as a validated Dataset."""
    source = str(path)
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{source}: not a readable NPZ archive ({type(exc).__name__})") from None
    with npz:
        missing = [k for k in TIKE_KEYS if k not in npz.files]
        if missing:
            raise DataError(f"{source}: tike layout needs 'data', 'scan' and 'probe', missing {', '.join(missing)}")
        try:
            counts, scan, probe = (npz[k] for k in TIKE_KEYS)
        except ValueError as exc:
            raise DataError(f"{source}: entries must be plain numeric arrays ({exc})") from None
    return from_tike(counts, scan, probe, source)


def from_tike(counts, scan, probe, source: str = "tike data") -> Dataset:
    """The Dataset of tike-layout arrays (see the module docstring)."""
    counts = _squeeze("data", np.asarray(counts), 3, source)
    scan = _squeeze("scan", np.asarray(scan), 2, source)
    probe = _squeeze("probe", np.asarray(probe), 2, source)
    if counts.dtype.kind not in "fiu" or scan.dtype.kind not in "fiu" or probe.dtype.kind not in "fiuc":
        raise DataError(f"{source}: 'data' and 'scan' must be real, 'probe' numeric")
    n_pix = counts.shape[-1]
    if scan.shape != (counts.shape[0], 2):
        raise DataError(f"{source}: 'scan' must have shape ({counts.shape[0]}, 2), got {scan.shape}")
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise DataError(f"{source}: 'data' must be finite non-negative photon counts")
    amplitude = np.sqrt(np.fft.fftshift(counts.astype(np.float64), axes=(-2, -1))).astype(np.float32)
    positions = scan.astype(np.float64) + n_pix / 2
    shift = np.floor(positions.min(axis=0)) - n_pix // 2
    positions = positions - shift
    probe = probe.astype(np.complex128)
    energy = float((np.abs(probe) ** 2).sum())
    mean_counts = float(counts.astype(np.float64).sum(axis=(-2, -1)).mean())
    if not energy > 0 or not np.isfinite(energy):
        raise DataError(f"{source}: 'probe' must be finite and not all zero")
    factor = float(np.sqrt(mean_counts / energy)) if mean_counts > 0 else 1.0
    metadata = {
        "source": source,
        "format": "tike-npz",
        "counts_scale": 1.0,
        "probe_exact": False,
        "conversions": [
            "data: photon counts -> sqrt, fftshifted (zero frequency at the corner -> N/2)",
            f"scan: minimum-corner (y, x) pixels -> window centres (+ {n_pix / 2:g}), shifted by "
            f"({-shift[0]:g}, {-shift[1]:g}) px so that the smallest is {n_pix // 2}",
            f"probe: scaled by {factor:.6g} so that sum |P|^2 = mean counts per pattern ({mean_counts:.6g}; "
            f"the file's probe had {energy:.6g})",
        ],
    }
    return Dataset(
        diffraction=amplitude,
        positions=positions,
        probe=(probe * factor).astype(np.complex64),
        metadata=metadata,
    ).validate(source=source)


def extract_star(sdist, out_dir) -> Path:
    """Write `siemens-star-small.npz` and `LICENSE` from tike's sdist `sdist` into `out_dir`;
    returns the .npz path (used by `make star`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist, "r:gz") as tar:
        names = {Path(*Path(m.name).parts[1:]).as_posix(): m for m in tar.getmembers() if m.isfile()}
        for member, target in ((STAR_MEMBER, "siemens-star-small.npz"), ("LICENSE", "LICENSE")):
            if member not in names:
                raise DataError(f"{sdist}: has no {member}")
            stream = tar.extractfile(names[member])
            if member.endswith(".bz2"):
                stream = bz2.BZ2File(stream)
            tmp = out_dir / f".{target}.tmp"
            with stream, open(tmp, "wb") as fh:
                shutil.copyfileobj(stream, fh)
            tmp.replace(out_dir / target)
    (out_dir / "SOURCE.txt").write_text(STAR_SOURCE + "\n")
    return out_dir / "siemens-star-small.npz"


if __name__ == "__main__":  # python -m ptycho_core.io.tike SDIST OUT_DIR
    import sys

    print(extract_star(sys.argv[1], sys.argv[2]))
