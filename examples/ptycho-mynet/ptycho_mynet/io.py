"""The `.mynet.h5` format: one scan in an HDF5 file, read into ptycho's Dataset contract.

Layout (all datasets at the root; the units are ptycho's, docs/design.md#dataset):

    diffraction   float32 (n, N, N)  amplitudes (sqrt counts), fftshifted
    positions     float64 (n, 2)     (y, x) object pixels under each pattern's centre pixel
    probe         complex64 (N, N)
    object        complex64 (H, W)   optional ground truth
    attrs["metadata_json"]           optional JSON object (str)

h5py and numpy are imported inside the functions: the plugin's registration stays cheap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ptycho_core.errors import DataError

if TYPE_CHECKING:
    from ptycho_core.data import Dataset

REQUIRED = ("diffraction", "positions", "probe")


def load_mynet(path) -> Dataset:
    """Read a `.mynet.h5` file into a validated `ptycho_core.data.Dataset`.

    Raises DataError (one line naming the file and the key) for anything that breaks the format.
    """
    import h5py
    import numpy as np

    from ptycho_core.data import Dataset
    from ptycho_core.limits import check_declared

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not an HDF5 file ({exc})") from None
    with handle as f:
        missing = [key for key in REQUIRED if key not in f]
        if missing:
            raise DataError(f"{path}: missing dataset(s) {', '.join(missing)} (a .mynet.h5 file needs {REQUIRED})")
        present = [key for key in (*REQUIRED, "object") if key in f]
        for key in present:  # the header's shape x dtype against the memory limit, before any read
            check_declared(path, key, f[key].shape, f[key].dtype)
        arrays = {key: np.asarray(f[key][()]) for key in present}
        text = f.attrs.get("metadata_json", "{}")
    try:
        metadata = json.loads(text.decode() if isinstance(text, bytes) else str(text))
    except ValueError as exc:
        raise DataError(f"{path}: attribute 'metadata_json' is not JSON ({exc})") from None
    if not isinstance(metadata, dict):
        raise DataError(f"{path}: attribute 'metadata_json' must hold a JSON object")
    metadata["source"] = str(path)
    metadata.setdefault("counts_scale", None)
    ds = Dataset(
        diffraction=arrays["diffraction"],
        positions=arrays["positions"],
        probe=arrays["probe"],
        object=arrays.get("object"),
        metadata=metadata,
    )
    return ds.validate(source=str(path))


def save_mynet(ds: Dataset, path) -> Path:
    """Write a `ptycho_core.data.Dataset` as a `.mynet.h5` file (ground truth included when present)."""
    import h5py

    path = Path(path)
    with h5py.File(path, "w") as f:
        f.create_dataset("diffraction", data=ds.diffraction)
        f.create_dataset("positions", data=ds.positions)
        f.create_dataset("probe", data=ds.probe)
        if ds.object is not None:
            f.create_dataset("object", data=ds.object)
        f.attrs["metadata_json"] = json.dumps(ds.metadata)
    return path
