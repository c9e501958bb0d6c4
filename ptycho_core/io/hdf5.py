"""Reading HDF5 files field by field, every problem one `DataError` naming the file and the field.

h5py reads plain numbers and strings; nothing here ever unpickles. A field that holds Python
objects, strings, references or compound records where numbers are expected is refused with
its dtype, as is a damaged or truncated file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import h5py
import numpy as np

from ptycho_core.errors import DataError

# What h5py raises on damaged files, broken links and unreadable types.
READ_ERRORS = (OSError, KeyError, TypeError, ValueError, RuntimeError)

_METRE_UNITS = {"m", "meter", "meters", "metre", "metres"}


def reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class H5Reader:
    """One HDF5 file open for reading; use as a context manager.

    Every accessor takes the field's path inside the file and raises DataError with
    `'<file>: '<field>' <expected>, got <what>'` when the field is missing or malformed.
    """

    def __init__(self, path, kind: str = "HDF5"):
        self.path = Path(path)
        self.source = str(path)
        if not self.path.exists():
            raise DataError(f"{self.source}: no such file")
        if not self.path.is_file():
            raise DataError(f"{self.source}: not a file")
        if self.path.stat().st_size == 0:
            raise DataError(f"{self.source}: not a {kind} file (an empty file)")
        if not h5py.is_hdf5(self.path):
            raise DataError(f"{self.source}: not a {kind} file (no HDF5 signature)")
        try:
            self.file = h5py.File(self.path, "r")
        except READ_ERRORS as exc:
            raise DataError(
                f"{self.source}: not a readable {kind} file, truncated or damaged ({reason(exc)})"
            ) from None

    def __enter__(self) -> H5Reader:
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()

    def fail(self, field: str, expected: str, got: str) -> DataError:
        return DataError(f"{self.source}: '{field}' {expected}, got {got}")

    def has(self, field: str) -> bool:
        """True when `field` exists and resolves (a dangling soft link counts as absent)."""
        try:
            return self.file.get(field) is not None
        except READ_ERRORS:
            return False

    def first(self, *fields: str) -> str | None:
        """The first of `fields` present in the file, or None."""
        return next((f for f in fields if self.has(f)), None)

    def dataset(self, field: str, what: str) -> h5py.Dataset:
        """The dataset at `field`; missing or a group is a DataError saying what it should hold."""
        try:
            item = self.file.get(field)
        except READ_ERRORS as exc:
            raise self.fail(field, f"must be readable ({what})", reason(exc)) from None
        if item is None:
            raise self.fail(field, f"is required ({what})", "nothing there")
        if not isinstance(item, h5py.Dataset):
            raise self.fail(field, f"must be a dataset ({what})", f"a {type(item).__name__}")
        return item

    def array(self, field: str, what: str, kinds: str = "fiu") -> np.ndarray:
        """Read a numeric dataset whose dtype kind is one of `kinds` (f float, i/u int, c complex, b bool)."""
        item = self.dataset(field, what)
        check_dtype(self, field, item.dtype, what, kinds)
        try:
            return np.asarray(item[()])
        except READ_ERRORS as exc:
            raise self.fail(field, f"must be readable ({what})", f"a damaged dataset ({reason(exc)})") from None

    def scalar(self, field: str, what: str, *, metres: bool = False, low: float = 0.0, high: float = np.inf) -> float:
        """A positive finite number in (low, high]; `metres` also checks a `units` attribute."""
        value = self.array(field, what)
        if value.size != 1:
            raise self.fail(field, f"must be a single number ({what})", f"shape {value.shape}")
        if metres:
            check_units(self, field, self.file[field].attrs)
        number = float(value.reshape(()))
        if not np.isfinite(number) or not low < number <= high:
            raise self.fail(field, f"must be a finite number in ({low:g}, {high:g}] ({what})", f"{number!r}")
        return number

    def attr(self, field: str, name: str, what: str, *, low: float = 0.0, high: float = np.inf) -> float:
        """A positive finite number stored as attribute `name` of `field` ("/" for the file)."""
        label = f"{field.rstrip('/')}@{name}" if field != "/" else f"@{name}"
        if field != "/" and not self.has(field):
            raise self.fail(field, f"is required ({what})", "nothing there")
        try:
            attrs = self.file[field].attrs
            if name not in attrs:
                raise self.fail(label, f"is required ({what})", "no such attribute")
            value = attrs[name]
        except DataError:
            raise
        except READ_ERRORS as exc:
            raise self.fail(label, f"must be readable ({what})", reason(exc)) from None
        arr = np.asarray(value)
        check_dtype(self, label, arr.dtype, what, "fiu")
        if arr.size != 1:
            raise self.fail(label, f"must be a single number ({what})", f"shape {arr.shape}")
        number = float(arr.reshape(()))
        if not np.isfinite(number) or not low < number <= high:
            raise self.fail(label, f"must be a finite number in ({low:g}, {high:g}] ({what})", f"{number!r}")
        return number

    def text(self, field: str) -> str:
        """A string dataset's text, or "" when absent or not a string."""
        try:
            value = self.file[field][()]
        except READ_ERRORS:
            return ""
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
        return value if isinstance(value, str) else ""


def check_dtype(reader: H5Reader, field: str, dtype: np.dtype, what: str, kinds: str) -> None:
    if dtype.kind in kinds and not dtype.hasobject and dtype.names is None:
        return
    if dtype.hasobject:
        got = "dtype object (strings or Python objects)"
    elif dtype.names is not None:
        got = f"a compound dtype {dtype}"
    else:
        got = f"dtype {dtype}"
    expected = {"fiu": "real numbers", "fiuc": "numbers", "fiub": "numbers or booleans"}.get(kinds, "numbers")
    raise reader.fail(field, f"must hold {expected} ({what})", got)


def check_units(reader: H5Reader, field: str, attrs) -> None:
    """A `units` attribute, when present, must name metres."""
    if "units" not in attrs:
        return
    try:
        units = attrs["units"]
    except READ_ERRORS as exc:
        raise reader.fail(f"{field}@units", "must be readable", reason(exc)) from None
    if isinstance(units, bytes):
        units = units.decode("utf-8", errors="replace")
    if str(units).strip().lower() not in _METRE_UNITS:
        raise reader.fail(field, "must be in metres (units='m')", f"units={str(units)!r}")


def write_atomically(path, fill) -> Path:
    """Create the HDF5 file `path` by calling `fill(h5py.File)` on a temporary file beside it,
    then renaming it into place; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as h5:
            fill(h5)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
