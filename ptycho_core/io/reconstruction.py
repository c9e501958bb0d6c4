"""Reconstruction files on their own, without the scan's diffraction data: ptycho's recon .npz
(`ptycho reconstruct --out recon.npz`) and a lone Ptychodus product file (`*product.h5` whose
`*diffraction.h5` partner is absent). `ptycho convert` moves reconstructions between the two.

A recon .npz holds the object and positions but no probe or geometry: writing it as a Ptychodus
product takes them from the scan it was made from (`scan`, a `Dataset`). A product holds probe,
positions in metres and the object pixel size; read as a reconstruction its positions become
object pixels exactly as the pair loader converts them, and written as a recon .npz its weights
are the probe-weighted illumination (the stitcher's scoring weights).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from ptycho_core import stitch
from ptycho_core.errors import DataError
from ptycho_core.generator import Reconstruction
from ptycho_core.io import contract, ptychodus
from ptycho_core.io import geometry as geo
from ptycho_core.io.hdf5 import H5Reader
from ptycho_core.io.npz import Archive, save_reconstruction


def is_reconstruction(path) -> bool:
    """Whether `path` is a reconstruction file rather than a dataset (module docstring)."""
    path = Path(path)
    low = path.name.lower()
    if low.endswith(ptychodus.PRODUCT_SUFFIX):
        return path.exists() and not ptychodus.pair(path)[1].exists()
    if low.endswith(".npz") and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                keys = set(z.files)
        except (OSError, ValueError):
            return False
        return {"object", "positions", "metrics_json"} <= keys and "diffraction" not in keys
    return False


def read(path) -> Reconstruction:
    """Read a recon .npz or a lone Ptychodus product as a `Reconstruction` (object, positions on
    its grid, metrics; a product adds its probe and geometry); DataError names the file and field."""
    if Path(path).name.lower().endswith(ptychodus.PRODUCT_SUFFIX):
        return _read_product(path)
    archive = Archive(Path(path))  # sizes checked before each array is read, never unpickled
    try:
        missing = [k for k in ("object", "positions", "metrics_json") if k not in archive.keys]
        if missing:
            raise archive.fail(missing[0], "is required (a recon .npz)", f"entries {', '.join(archive.keys)}")
        obj = np.asarray(archive.get("object"), np.complex64)
        positions = np.asarray(archive.get("positions"), np.float64)
        metrics = json.loads(str(archive.get("metrics_json")))
    finally:
        archive.close()
    if obj.ndim != 2 or positions.ndim != 2 or positions.shape[1] != 2:
        raise DataError(
            f"{path}: 'object' must be (H, W) and 'positions' (n, 2), got {obj.shape} and {positions.shape}"
        )
    return Reconstruction(object=obj, positions=positions, metrics=metrics)


def _read_product(path) -> Reconstruction:
    """A product without its diffraction file, read and checked by the pair loader's own helpers."""
    with H5Reader(path, "Ptychodus product") as p:
        probe = contract.single_mode(p, "probe", p.array("probe", "the probe", kinds="fiuc"), "probe mode")
        pixel = p.attr("object", "pixel_width_m", "object pixel size in metres", high=ptychodus.MAX_PIXEL_M)
        distance = p.attr("/", "detector_object_distance_m", "detector distance in metres", high=100.0)
        energy = p.attr("/", "photon_energy_eV", "photon energy in eV", high=1e7)
        obj, center = ptychodus.read_object(p, pixel)
        indexes = p.array("probe_position_indexes", "the pattern index of each position", kinds="iu").reshape(-1)
        y_m, x_m = ptychodus.positions_for(p, indexes, [])
    n = probe.shape[-1]
    detector_pixel = geo.wavelength_from_energy(energy) * distance / (n * pixel)
    positions = contract.pixels_from_metres(y_m, x_m, pixel, obj.shape, center)
    frame = geo.Geometry(energy, distance, detector_pixel, n)
    return Reconstruction(
        object=obj.astype(np.complex64), positions=positions, probe=probe.astype(np.complex64), geometry=frame
    )


def write(rec: Reconstruction, path, scan=None) -> Path:
    """Write `rec` as a recon .npz or (path ending in product.h5) a Ptychodus product; the probe
    and geometry a product needs come from `rec` or else from `scan` (a Dataset)."""
    probe = rec.probe if rec.probe is not None else (None if scan is None else scan.probe)
    if Path(path).name.lower().endswith(ptychodus.PRODUCT_SUFFIX):
        if probe is None:
            raise DataError(f"{path}: a Ptychodus product needs the probe and geometry: give --scan (the scan's file)")
        frame = rec.geometry if rec.geometry is not None else geo.of_dataset(scan.metadata, scan.patch_size)[0]
        return ptychodus.save_product(path, rec.object, probe, rec.positions, frame)
    if not str(path).lower().endswith(".npz"):
        raise DataError(f"{path}: a reconstruction is written as .npz or as a Ptychodus *product.h5")
    if probe is None:
        weights = np.ones(rec.object.shape, np.float32)
    else:
        weights = stitch.illumination(rec.positions, rec.object.shape, np.abs(probe) ** 2)
    return save_reconstruction(path, dataclasses.replace(rec, weights=weights))
