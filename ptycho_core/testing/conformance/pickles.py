"""Finding pickles in what a plugin writes (model folders, dataset files): read only, never
loaded. A pickle runs code when loaded, so ptycho never writes or reads one.
"""

from __future__ import annotations

import ast
import io
import pickletools
import zipfile
from pathlib import Path


def pickle_files(directory: Path) -> list[str]:
    """Files under `directory` that hold a pickle: raw (any protocol), torch.save's zip with
    data.pkl, a `.npy` array (alone or inside a zip such as `.npz`) of dtype object, or an HDF5
    file with a pickle in a dataset or attribute of bytes or opaque data. Read only:
    pickle opcodes are parsed (`pickletools`), never executed."""
    found = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        with path.open("rb") as fh:
            pickled = _holds_pickle(fh)
        if not pickled and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                pickled = any(_zip_member_pickled(zf, name) for name in zf.namelist())
        if not pickled and _is_hdf5(path):
            pickled = _hdf5_pickled(path)
        if pickled:
            found.append(path.name)
    return found


def _zip_member_pickled(zf: zipfile.ZipFile, name: str) -> bool:
    if name.endswith(".pkl"):
        return True
    with zf.open(name) as fh:
        return _holds_pickle(fh)


#: The magic string of a `.npy` file.
NPY_MAGIC = b"\x93NUMPY"


def _holds_pickle(fh) -> bool:
    """True when the stream is a pickle or an `.npy` array of dtype object (read, never loaded)."""
    head = fh.read(6)
    if head == NPY_MAGIC:
        return _npy_has_objects(fh)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # protocols 2-5 start with PROTO
        return True
    return _parses_as_pickle(head + fh.read(1 << 16))


def _npy_has_objects(fh) -> bool:
    version = fh.read(2)
    size = fh.read(2 if version[:1] == b"\x01" else 4)
    header = fh.read(int.from_bytes(size, "little")).decode("latin1")
    try:
        descr = ast.literal_eval(header)["descr"]
    except (ValueError, SyntaxError, KeyError, TypeError):
        return True  # not a header numpy writes: suspect
    return "O" in str(descr)


def _parses_as_pickle(data: bytes) -> bool:
    """Protocols 0 and 1 have no header: the bytes are a pickle when they parse as pickle
    opcodes up to a STOP (`pickletools.genops` reads opcodes, it runs nothing)."""
    if not data:
        return False
    try:
        ops = list(pickletools.genops(io.BytesIO(data)))
    except Exception:  # an unknown opcode or a truncated stream: not a (whole) pickle
        return False
    return bool(ops) and ops[-1][0].name == "STOP"


def _is_hdf5(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(8) == b"\x89HDF\r\n\x1a\n"


def _whole_pickle(data: bytes) -> bool:
    """Stricter than `_holds_pickle` for short strings ("0.1.0" parses as POP, STOP): a protocol 2+
    header, or opcodes that end with STOP on the last byte."""
    if len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        return True
    try:
        ops = list(pickletools.genops(io.BytesIO(data)))
    except Exception:  # not opcodes: not a pickle
        return False
    return len(ops) > 1 and ops[-1][0].name == "STOP" and ops[-1][2] == len(data) - 1


def _hdf5_pickled(path: Path) -> bool:
    """True when a dataset or attribute of bytes / opaque data in the HDF5 file holds a pickle."""
    import h5py  # lazy: the conformance kit is loaded when listing; the target imports numpy
    import numpy as np  # lazy: the conformance kit is loaded when listing; the target imports numpy

    def pickled(value) -> bool:
        array = np.asarray(value)
        if array.dtype.kind not in "SVOu" or array.dtype.kind == "u" and array.dtype.itemsize != 1:
            return False
        if array.dtype.kind == "O":
            data = b"".join(v for v in array.reshape(-1) if isinstance(v, bytes))
        else:
            data = array.tobytes()
        return _whole_pickle(data[: 1 << 16])

    found = []

    def visit(_name, item) -> None:
        if any(pickled(v) for v in item.attrs.values()):
            found.append(item)
        elif isinstance(item, h5py.Dataset) and item.size and item.nbytes <= 1 << 24 and pickled(item[()]):
            found.append(item)

    try:
        with h5py.File(path, "r") as h5:
            visit("/", h5)
            h5.visititems(visit)
    except (OSError, KeyError, TypeError, ValueError):
        return False
    return bool(found)
