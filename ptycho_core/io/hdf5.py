"""Reading HDF5 files field by field, every problem one `DataError` naming the file and the field.

h5py reads plain numbers and strings; nothing here ever unpickles. A field that holds Python
objects, strings, references or compound records where numbers are expected is refused with
its dtype, as is a damaged or truncated file.

Sizes: every dataset's declared shape x dtype is checked against `limits.memory_limit()` before
it is read (h5py reads lazily: the header is all `dataset()` touches), and `contract.amplitudes`
reads the patterns chunk by chunk into one float32 array, so the counts never sit in memory whole.

Links, followed as h5py follows them, and recorded: a field reached through a soft link (a
path in the same file), an external link (a path in another file; HDF5 looks for a relative
file name beside the linking file, then in the working folder) or a virtual dataset (mapped
from source files) is listed in `links` ("field -> file:path (kind)"); the loaders put the list
in the dataset's metadata and `ptycho inspect` prints it. A link that does not resolve, or a
virtual dataset whose source file is missing (HDF5 would read fill values in its place), is a
one-line DataError, never a silent fallback to another field.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import h5py
import numpy as np

from ptycho_core import limits
from ptycho_core.errors import DataError

#: Soft links followed inside soft links before giving up on recording the chain.
MAX_LINK_DEPTH = 8

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
        #: "field -> file:path (kind)" of every link or virtual dataset a read went through.
        self.links: list[str] = []

    def __enter__(self) -> H5Reader:
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()

    def fail(self, field: str, expected: str, got: str) -> DataError:
        return DataError(f"{self.source}: '{field}' {expected}, got {got}")

    def has(self, field: str) -> bool:
        """True when `field` exists; a link at it that does not resolve is a DataError."""
        return self._get(field, "a readable field") is not None

    def first(self, *fields: str) -> str | None:
        """The first of `fields` present in the file, or None."""
        return next((f for f in fields if self.has(f)), None)

    def dataset(self, field: str, what: str) -> h5py.Dataset:
        """The dataset at `field`; missing or a group is a DataError saying what it should hold."""
        item = self._get(field, what)
        if item is None:
            raise self.fail(field, f"is required ({what})", "nothing there")
        if not isinstance(item, h5py.Dataset):
            raise self.fail(field, f"must be a dataset ({what})", f"a {type(item).__name__}")
        limits.check_declared(self.source, field, item.shape or (), item.dtype)
        self._virtual_sources(field, item)
        return item

    def _get(self, field: str, what: str, depth: int = 0):
        """The object at `field` (None when nothing is there), following and recording links."""
        group, done = self.file, []
        for part in field.strip("/").split("/"):
            done.append(part)
            here = "/".join(done)
            try:
                link = group.get(part, getlink=True) if isinstance(group, h5py.Group) else None
                item = group.get(part) if link is not None else None
                error = "nothing there"
            except READ_ERRORS as exc:
                item, error = None, reason(exc)
            if link is None:
                return None
            if isinstance(link, h5py.SoftLink):
                if group.file == self.file and depth < MAX_LINK_DEPTH:  # the target's own links, first
                    if self._get(link.path, what, depth + 1) is None:
                        target = link.path.strip("/")
                        raise self.fail(target, f"is required (the soft link {here} points to it)", "nothing there")
                self._note(here, link.path, "soft link", item, error, what)
            elif isinstance(link, h5py.ExternalLink):
                if item is None and error == "nothing there":
                    beside = Path(group.file.filename).parent / link.filename
                    found = beside.is_file() or Path(link.filename).is_file()
                    error = (
                        f"no {link.path} in that file" if found else "no such file beside it or in the working folder"
                    )
                target = f"{item.file.filename if item is not None else link.filename}:{link.path}"
                self._note(here, f"{link.filename}:{link.path}", "external link", item, error, what, target)
            elif item is None:
                raise self.fail(here, f"must be readable ({what})", error)
            group = item
        return group

    def _note(self, here, target, kind, item, error, what, shown=None) -> None:
        """Record the link at `here`; one that does not resolve is a DataError."""
        if item is None:
            article = "an" if kind[0] in "aeiou" else "a"
            raise self.fail(here, f"is {article} {kind} to {target} that must resolve ({what})", error)
        note = f"{here} -> {shown or target} ({kind})"
        if note not in self.links:
            self.links.append(note)

    def _virtual_sources(self, field: str, item: h5py.Dataset) -> None:
        """Record a virtual dataset's source files; one that is missing is a DataError."""
        if not item.is_virtual:
            return
        here = Path(item.file.filename).parent
        for source in item.virtual_sources():
            name = source.file_name
            found = name == "." or (here / name).is_file() or Path(name).is_file()
            if not found:
                raise self.fail(field, "is a virtual dataset whose source files must exist", f"{name} missing")
            note = f"{field} -> {name}:{source.dset_name} (virtual dataset)"
            if note not in self.links:
                self.links.append(note)

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
        if not self.has(field):
            return ""
        item = self.dataset(field, "text")
        try:
            value = item[()]
        except READ_ERRORS:
            return ""
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
        return value if isinstance(value, str) else ""


def _where(item) -> str:
    """ "file:path" of an h5py object (the file as HDF5 opened it)."""
    return f"{item.file.filename}:{item.name}"


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
