"""How much memory one array read from a file may take, checked against what the file declares
before anything is read.

A file's header states each array's shape and dtype; a lying or hostile header (an HDF5 dataset
declaring 800 GB in a 5 MB chunked, compressed file; a small zip whose members inflate to
gigabytes) must not make ptycho allocate first and fail later. Every loader compares the declared
size (shape x dtype itemsize; for NPZ also each member's uncompressed size) with `memory_limit()`
and refuses with one line naming the file, the field and the size (`check_declared`).

The limit, in order: `PTYCHO_MAX_MEMORY` (set by `--max-memory` too, so child processes inherit
it), else DEFAULT_SHARE of the memory available now (psutil's `available`, lowered to a cgroup v2
limit when the process runs under one). Values: bytes (`2000000000`), with a unit (`512M`,
`8G`, `1.5GiB`, `4GB`: K/M/G/T and KiB.. are powers of 1024, KB/MB/GB/TB of 1000) or a share of
available memory (`25%`).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from ptycho_core.errors import DataError, UsageError
from ptycho_core.settings import Setting

ENV = "PTYCHO_MAX_MEMORY"
#: Share of the available memory one array may take by default: a loader's conversions (counts
#: to amplitudes, dtype casts) and the dataset's validation need room beside it.
DEFAULT_SHARE = 0.5

#: The command-line setting (`--max-memory`, on every command that reads data files); its text is
#: parsed by `parse_size`, and the command exports it as ENV for the loaders and its children.
MAX_MEMORY = Setting(
    "str",
    "",
    "Largest array a data file may declare (8G, 512M, 4GB, 25% of available memory; default 50% of available "
    f"memory, or {ENV}): a file declaring more is refused before it is read.",
    name="max_memory",
)

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tib": 1024**4,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z%]*)\s*$", re.IGNORECASE)


def parse_size(text: str, name: str = ENV) -> int:
    """Bytes for `text` (module docstring: `8G`, `512MiB`, `4GB`, `25%`, `2000000000`); a UsageError
    naming `name` when it is not a positive size."""
    match = _SIZE.match(str(text))
    unit = match.group(2).lower() if match else ""
    if not match or (unit not in _UNITS and unit != "%"):
        raise UsageError(f"{name}: expected a size such as 8G, 512M, 4GB or 25%, got {text!r}")
    number = float(match.group(1))
    if unit == "%":
        if not 0 < number <= 100:
            raise UsageError(f"{name}: expected a share of available memory in (0, 100]%, got {text!r}")
        return max(1, int(available_memory() * number / 100))
    size = number * _UNITS[unit]
    if not math.isfinite(size) or size < 1:
        raise UsageError(f"{name}: expected a positive size, got {text!r}")
    return int(size)


def available_memory() -> int:
    """Bytes this process could allocate now: psutil's `available`, within a cgroup v2 limit."""
    import psutil  # lazy: layer 1 imports only the standard library at module level

    available = int(psutil.virtual_memory().available)
    cgroup = Path("/sys/fs/cgroup")
    try:
        high = (cgroup / "memory.max").read_text().strip()
        used = int((cgroup / "memory.current").read_text().strip())
    except (OSError, ValueError):
        return available
    if high.isdigit():
        available = min(available, max(int(high) - used, 0))
    return available


def memory_limit() -> tuple[int, str]:
    """(bytes one array may take, where that limit comes from: for messages)."""
    value = os.environ.get(ENV, "").strip()
    if value:
        return parse_size(value), f"set to {value}"
    return int(available_memory() * DEFAULT_SHARE), f"{DEFAULT_SHARE:.0%} of available memory"


def human(nbytes: float) -> str:
    """1536 -> '1.5 KiB'; sizes in powers of 1024."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(nbytes) < 1024 or unit == "PiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} PiB"  # pragma: no cover


def declared_bytes(shape, itemsize: int) -> int:
    """shape x itemsize as a Python int (no overflow, whatever the header says)."""
    return math.prod(int(n) for n in shape) * int(itemsize)


def check_declared(source, field: str, shape, dtype, *, what: str = "declares") -> int:
    """Refuse (DataError, one line) an array whose declared size is over `memory_limit()`.

    `shape` and `dtype` as the file's header states them (h5py `Dataset.shape` / `.dtype`, a
    `.npy` header); call it before reading the array. Returns the declared size in bytes.
    """
    import numpy as np  # lazy: layer 1 imports only the standard library at module level

    nbytes = declared_bytes(shape, np.dtype(dtype).itemsize)
    check_bytes(source, field, nbytes, f"{what} {tuple(int(n) for n in shape)} {np.dtype(dtype)}")
    return nbytes


def check_bytes(source, field: str, nbytes: int, what: str) -> None:
    """Refuse (DataError) `nbytes` over the limit; `what` says where the size comes from."""
    limit, origin = memory_limit()
    if nbytes > limit:
        raise DataError(
            f"{source}: '{field}' {what} = {human(nbytes)}, over the memory limit of {human(limit)} "
            f"({origin}): a damaged or lying header, or raise the limit (--max-memory or {ENV})"
        )
