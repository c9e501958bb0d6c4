"""Dataset readers and writers.

Loaders are registered through the loader hook (the built-ins in `default_plugins`) and chosen by
the longest extension that matches the file name, or by name (`--loader`). Writers are the
built-in formats in `WRITERS`, chosen by the output's suffix or by name (`--to`).

This package module stays cheap (standard library only); the format modules (`npz`, `cxi`,
`ptychodus`) import numpy and h5py when they are used.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptycho_core.data import Dataset
from ptycho_core.errors import DataError, PluginError, UsageError
from ptycho_core.io import geometry, ptychodus
from ptycho_core.io.npz import check_npy
from ptycho_core.io.npz import save_reconstruction as save_npz_reconstruction
from ptycho_core.plugins import load_registry
from ptycho_core.registry import resolve_factory

#: Writer name -> (factory "module:attr", suffixes it claims, what it writes).
WRITERS = {
    "npz": ("ptycho_core.io.npz:save_npz", (".npz",), "ptycho's own .npz (exact round trip)"),
    "ptychopinn": ("ptycho_core.io.npz:save_ptychopinn", (), "PtychoPINN raw .npz (diffraction, xcoords, ...)"),
    "cxi": ("ptycho_core.io.cxi:save_cxi", (".cxi",), "CXI (cxidb 1.6, Ptychodus-readable)"),
    "ptychodus": (
        "ptycho_core.io.ptychodus:save_ptychodus",
        ("product.h5",),
        "Ptychodus product.h5 + diffraction.h5 pair",
    ),
}


@dataclass(frozen=True)
class DataFile:
    """A dataset file with how to read it: `loader` forces a loader by name, `probe` names a file
    whose probe replaces (or stands in for a missing) probe; `crop` / `bin` preprocess the
    patterns (`ptycho_core.preprocess`: centred crop to `crop` pixels, then `bin` x `bin` binning).
    Accepted wherever a path is."""

    path: str
    loader: str | None = None
    probe: str | None = None
    crop: int | None = None
    bin: int | None = None

    def __str__(self) -> str:
        return str(self.path)


def load_dataset(
    path, registry=None, loader: str | None = None, probe: str | None = None, crop: int | None = None, bin=None
):
    """Read a dataset, validated: with the loader named `loader`, else the one registered for the
    longest extension matching `path`; `probe` is a file holding the probe (`--probe`); `crop` and
    `bin` preprocess the patterns (`--crop`, `--bin`; `ptycho_core.preprocess`, recorded in
    `metadata["preprocess"]`).

    `registry` defaults to the plugins configured by the environment. Returns a
    `ptycho_core.data.Dataset`; raises DataError on bad data, UsageError for an unknown file
    type or loader.
    """
    if isinstance(path, DataFile):
        crop, bin = crop or path.crop, bin or path.bin
        path, loader, probe = path.path, loader or path.loader, probe or path.probe
    if registry is None:
        registry = load_registry()
    spec = loader_spec(path, registry, loader)
    factory = spec.load_factory()
    try:
        if probe is None:
            ds = factory(str(path))
        else:
            ds = factory(str(path), probe=_probe_for(spec, factory, probe, registry))
    except DataError as exc:
        unclaimed = None if loader else unclaimed_suffix(path, spec)
        if unclaimed is None:
            raise
        raise DataError(
            f"{path}: no loader for {unclaimed[0]} files is installed (ptycho list-loaders); the "
            f"{spec.name} loader, which reads {unclaimed[1]}, could not read it either "
            f"({str(exc).removeprefix(f'{path}: ')}): install the plugin that reads {unclaimed[0]} files, "
            "or choose a loader with --loader"
        ) from None
    if not isinstance(ds, Dataset):
        raise PluginError(f"loader {spec.qualified_name} returned {type(ds).__name__}, not a Dataset")
    ds = ds.validate(source=str(path))
    if probe is not None:
        ds.metadata = {**ds.metadata, "probe_file": str(probe)}
    if crop or bin:
        from ptycho_core import preprocess  # lazy: this package module stays cheap (standard library only)

        ds = preprocess.apply(ds, crop, bin)
    return ds


def loader_spec(path, registry, loader: str | None = None):
    """The LoaderSpec that reads `path`: the one named `loader`, else by the longest matching extension."""
    return registry.loader(loader) if loader else registry.loader_for(str(path))


def unclaimed_suffix(path, spec) -> tuple[str, str] | None:
    """(".rsu.h5", ".h5") when `path` (x.rsu.h5) went to `spec` for a shorter extension and its
    longer suffix looks like a format of its own (no loader claims it: the plugin that read it
    may be uninstalled); None otherwise."""
    name = Path(str(path)).name.lower()
    matched = max((e for e in spec.extensions if name.endswith(e)), key=len, default=None)
    if matched is None:
        return None
    inner = re.search(r"\.([a-z][a-z0-9_]{0,15})$", name[: -len(matched)])
    return None if inner is None else (f".{inner.group(1)}{matched}", matched)


def _probe_for(spec, factory, probe_path: str, registry):
    """The (N, N) probe in `probe_path` (a .npy array or any dataset file), for a loader taking `probe=`."""
    if "probe" not in inspect.signature(factory).parameters:
        raise UsageError(f"--probe: loader {spec.qualified_name} reads the probe from the file and takes no --probe")
    return read_probe(probe_path, registry)


def read_probe(path, registry=None):
    """A complex (N, N) probe from a `.npy` array (never unpickled) or from any dataset file."""
    if str(path).lower().endswith(".npy"):
        check_npy(path)
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable .npy probe ({str(exc).splitlines()[0]})") from None
        if array.ndim != 2 or array.dtype.kind not in "fiuc" or not np.isfinite(array).all():
            raise DataError(f"{path}: a probe must be a finite numeric (N, N) array, got {array.dtype} {array.shape}")
        return array.astype(np.complex64)
    return load_dataset(path, registry).probe


def writer_for(path, fmt: str | None = None) -> str:
    """The writer name for `path`: `fmt` when given, else the longest suffix that matches."""
    if fmt is not None:
        if fmt not in WRITERS:
            raise UsageError(f"unknown output format {fmt!r} (known: {', '.join(WRITERS)})")
        return fmt
    low = str(path).lower()
    matches = [(len(s), name) for name, (_, suffixes, _) in WRITERS.items() for s in suffixes if low.endswith(s)]
    if not matches:
        known = ", ".join(s for _, suffixes, _ in WRITERS.values() for s in suffixes)
        raise UsageError(f"{path}: datasets are written as {known}; use one of these suffixes")
    return max(matches)[1]


def save_dataset(ds, path, fmt: str | None = None) -> Path:
    """Write `ds` with the writer for `path`'s suffix (or the format `fmt`); returns the path."""
    return resolve_factory(WRITERS[writer_for(path, fmt)][0])(ds, path)


def save_reconstruction(path, result, dataset, name: str = "ptycho") -> Path:
    """Write a reconstruction (a `Reconstruction` of `dataset`): a Ptychodus product file
    when `path` ends in product.h5 (object, probe, positions and pixel size, opened by Ptychodus),
    else ptycho's .npz (object, weights, positions, metrics_json). Returns the path."""
    if str(path).lower().endswith("product.h5"):
        frame, _ = geometry.of_dataset(dataset.metadata, dataset.patch_size)
        return ptychodus.save_product(path, result.object, dataset.probe, result.positions, frame, name=name)
    return save_npz_reconstruction(path, result)
