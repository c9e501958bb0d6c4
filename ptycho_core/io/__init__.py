"""Dataset readers and writers. Loaders are chosen by file extension through the registry.

This package module stays cheap (standard library only); the format modules (`npz`) import
numpy when they are used.
"""

from __future__ import annotations

from pathlib import Path


def load_dataset(path, registry=None):
    """Read a dataset with the loader registered for `path`'s extension, validated.

    `registry` defaults to the plugins configured by the environment. Returns a
    `ptycho_core.data.Dataset`; raises DataError on bad data, UsageError for an unknown file type.
    """
    from ptycho_core.data import Dataset
    from ptycho_core.errors import PluginError

    if registry is None:
        from ptycho_core.plugins import load_registry

        registry = load_registry()
    spec = registry.loader_for(str(path))
    ds = spec.load_factory()(str(path))
    if not isinstance(ds, Dataset):
        raise PluginError(f"loader {spec.qualified_name} returned {type(ds).__name__}, not a Dataset")
    return ds.validate(source=str(path))


def save_dataset(ds, path) -> Path:
    """Write `ds` in ptycho's own format (`.npz`, the only writer so far); returns the path."""
    from ptycho_core.errors import UsageError

    if not str(path).lower().endswith(".npz"):
        raise UsageError(f"{path}: datasets are written as .npz; use a file name ending in .npz")
    from ptycho_core.io.npz import save_npz

    return save_npz(ds, path)
