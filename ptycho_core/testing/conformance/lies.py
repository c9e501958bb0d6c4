"""Forging a lying header: a copy of a valid HDF5 or NPZ file whose per-pattern arrays declare a
pattern count that makes each of them at least `lie_bytes`, while the file stays small.

HDF5: every dataset whose first axis is the pattern count is replaced by a chunked,
gzip-compressed dataset of the declared shape with no chunk written (HDF5 would read fill values);
its attributes are kept. NPZ: every member whose first axis is the pattern count gets a `.npy`
header declaring the larger shape in front of its original data. The pattern count is the first
axis of the largest array. Other formats: `forge` returns False.
"""

from __future__ import annotations

import math
import shutil
import zipfile
from pathlib import Path


def forge(path: Path, out: Path, lie_bytes: int) -> bool:
    """Write the lying copy of `path` to `out`; False when the format is neither HDF5 nor NPZ."""
    path, out = Path(path), Path(out)
    with path.open("rb") as fh:
        head = fh.read(8)
    if head == b"\x89HDF\r\n\x1a\n":
        shutil.copy(path, out)
        _lie_in_hdf5(out, lie_bytes)
        return True
    if zipfile.is_zipfile(path):
        _lie_in_npz(path, out, lie_bytes)
        return True
    return False


def _declared_count(rows: list[tuple[tuple, int]], lie_bytes: int) -> tuple[int, int]:
    """(pattern count, count to declare) from [(shape, itemsize)] of the file's arrays."""
    n = max(rows, key=lambda r: math.prod(r[0]) * r[1])[0][0]
    per_row = min(math.prod(s[1:]) * size for s, size in rows if s and s[0] == n)
    return n, max(n + 1, -(-lie_bytes // max(per_row, 1)))


def _lie_in_hdf5(path: Path, lie_bytes: int) -> None:
    import h5py  # lazy: the conformance kit is loaded when listing; the target imports numpy

    with h5py.File(path, "r+") as h5:
        found = {}

        def collect(name, item) -> None:  # visititems stops at the first callback returning a value
            if isinstance(item, h5py.Dataset):
                found[name] = item

        h5.visititems(collect)
        rows = [(d.shape, d.dtype.itemsize) for d in found.values() if d.shape and d.dtype.kind in "fiucb"]
        if not rows:
            return
        n, fake = _declared_count(rows, lie_bytes)
        for name, item in found.items():
            if not item.shape or item.shape[0] != n or item.dtype.kind not in "fiucb":
                continue
            attrs, dtype, shape = dict(item.attrs), item.dtype, (fake, *item.shape[1:])
            del h5[name]
            lie = h5.create_dataset(name, shape=shape, dtype=dtype, chunks=(1, *item.shape[1:]), compression="gzip")
            lie.attrs.update(attrs)


def _lie_in_npz(path: Path, out: Path, lie_bytes: int) -> None:
    import numpy as np  # lazy: the conformance kit is loaded when listing; the target imports numpy

    fmt = np.lib.format
    members = {}
    with zipfile.ZipFile(path) as zin:
        for name in zin.namelist():
            raw = zin.read(name)
            header = None
            with zin.open(name) as fp:
                try:
                    version = fmt.read_magic(fp)
                    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                    header = (*read(fp), raw[fp.tell() :])
                except ValueError:
                    pass
            members[name] = (raw, header)
    rows = [(h[0], h[2].itemsize) for _, h in members.values() if h and h[0] and h[2].kind in "fiucb"]
    n, fake = _declared_count(rows, lie_bytes) if rows else (None, None)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for name, (raw, header) in members.items():
            if header is None or not header[0] or header[0][0] != n or header[2].kind not in "fiucb":
                zout.writestr(name, raw)
                continue
            shape, fortran, dtype, data = header
            with zout.open(name, "w") as fp:
                lie = {"descr": fmt.dtype_to_descr(dtype), "fortran_order": fortran, "shape": (fake, *shape[1:])}
                fmt.write_array_header_2_0(fp, lie)
                fp.write(data)
