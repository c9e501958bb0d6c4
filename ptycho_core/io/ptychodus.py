"""Ptychodus files: a product (`*product.h5`) and its diffraction data (`*diffraction.h5`).

The layout is Ptychodus's own (`ptychodus.api.io.save_product` / `save_diffraction_data`, the
files its HDF5 product plugin and its standard workflow folder use):

    diffraction.h5   patterns (n, H, W) photon counts, indexes (n,), bad_pixels (H, W) bool;
                     patterns@detector_pixel_width_m / @detector_pixel_height_m
    product.h5       @detector_object_distance_m, @photon_energy_eV, @name, ...;
                     probe (..., N, N) complex with @pixel_width_m / @pixel_height_m;
                     object (layers, H, W) complex with @center_x_m, @center_y_m, @pixel_*_m;
                     probe_position_indexes, probe_position_x_m, probe_position_y_m (metres)

Either file names the pair: `Xproduct.h5` <-> `Xdiffraction.h5` in the same folder. Patterns
and positions are matched by index. Counts become amplitudes sqrt(counts); positions become
(y, x) pixels of the object grid (`ptycho_core.io.contract`); the object pixel size must equal
wavelength * distance / (N * detector pixel size). A non-uniform object is the ground truth (a
simulation's, or a reference reconstruction); a uniform one is an initial guess and not used.

`save_ptychodus` writes both files from a Dataset; `save_product` writes a reconstruction
(object, probe, positions, pixel sizes) as a product file that Ptychodus opens.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ptycho_core.data import Dataset
from ptycho_core.errors import DataError, UsageError
from ptycho_core.io import contract
from ptycho_core.io import geometry as geo
from ptycho_core.io.hdf5 import H5Reader, write_atomically

PRODUCT_SUFFIX = "product.h5"
DIFFRACTION_SUFFIX = "diffraction.h5"
METADATA_ATTR = "ptycho_metadata_json"
#: Bounds that catch values in the wrong unit with a clear message.
MAX_POSITION_M = 0.1
MAX_PIXEL_M = 0.01
PIXEL_RTOL = 1e-3


def pair(path) -> tuple[Path, Path]:
    """(product file, diffraction file) for either of the two names."""
    path = Path(path)
    low = path.name.lower()
    for mine, other in ((PRODUCT_SUFFIX, DIFFRACTION_SUFFIX), (DIFFRACTION_SUFFIX, PRODUCT_SUFFIX)):
        if low.endswith(mine):
            partner = path.with_name(path.name[: -len(mine)] + other)
            return (path, partner) if mine == PRODUCT_SUFFIX else (partner, path)
    raise DataError(f"{path}: a Ptychodus file must be named *{PRODUCT_SUFFIX} or *{DIFFRACTION_SUFFIX} (the pair)")


def load_ptychodus(path) -> Dataset:
    """Read a Ptychodus product + diffraction pair as a validated `Dataset` (module docstring).

    Raises DataError (one line naming the file and the field) on bad input.
    """
    product_path, diffraction_path = pair(path)
    for mine, other in ((product_path, diffraction_path), (diffraction_path, product_path)):
        if not mine.exists():
            raise DataError(f"{mine}: no such file (the Ptychodus pair of {other})")
    conversions: list = []
    with H5Reader(diffraction_path, "Ptychodus diffraction") as d:
        diffraction, indexes, detector_pixel, mask = _read_diffraction(d)
        links = list(d.links)
    conversions.append("patterns: photon counts -> amplitudes sqrt(counts)")
    with H5Reader(product_path, "Ptychodus product") as p:
        geometry = _read_geometry(p, detector_pixel, diffraction.shape[-1])
        probe = contract.single_mode(p, "probe", p.array("probe", "the probe", kinds="fiuc"), "probe mode")
        obj, center = read_object(p, geometry.pixel_size_m)
        y_m, x_m = positions_for(p, indexes, conversions)
        own = contract.own_metadata(p, f"@{METADATA_ATTR}", _text_attr(p, METADATA_ATTR))
        name = _text_attr(p, "name")
        links += p.links
    positions = contract.pixels_from_metres(y_m, x_m, geometry.pixel_size_m, obj.shape, center)
    conversions.append(
        f"probe_position_*_m: metres -> (y, x) pixels of the object grid ({geometry.pixel_size_m:.6g} m)"
    )
    if contract.is_placeholder(obj):
        conversions.append("object: uniform (an initial guess, not ground truth); not used as the object")
        obj = None
    metadata = {
        "counts_scale": 1.0,
        **own,
        "source": str(product_path),
        "diffraction_file": str(diffraction_path),
        "format": "ptychodus",
        "name": name,
        **geometry.as_metadata(),
        "conversions": conversions,
        **({"links": links} if links else {}),
    }
    ds = Dataset(diffraction=diffraction, positions=positions, probe=probe, object=obj, mask=mask, metadata=metadata)
    return _validate(ds, str(product_path))


def _read_diffraction(d: H5Reader):
    """(amplitudes, indexes, detector pixel size, mask or None) of a diffraction file."""
    diffraction = contract.amplitudes(d, "patterns")
    n, n_pix = diffraction.shape[0], diffraction.shape[-1]
    indexes = d.array("indexes", "pattern indexes (n,)", kinds="iu")
    if indexes.shape != (n,):
        raise d.fail("indexes", f"must have one entry per pattern ({n})", f"shape {indexes.shape}")
    if np.unique(indexes).size != n:
        raise d.fail("indexes", "must be distinct", f"{n - np.unique(indexes).size} repeated")
    width = d.attr("patterns", "detector_pixel_width_m", "detector pixel width in metres", high=MAX_PIXEL_M)
    height = d.attr("patterns", "detector_pixel_height_m", "detector pixel height in metres", high=MAX_PIXEL_M)
    if abs(width - height) > PIXEL_RTOL * width:
        raise d.fail(
            "patterns@detector_pixel_height_m", f"must equal the width {width:g} (square pixels)", f"{height:g}"
        )
    mask = None
    if d.has("bad_pixels"):
        bad = d.array("bad_pixels", "bad detector pixels (H, W)", kinds="fiub")
        if bad.shape != (n_pix, n_pix):
            raise d.fail("bad_pixels", f"must have the pattern shape ({n_pix}, {n_pix})", f"shape {bad.shape}")
        mask = None if not bad.any() else ~bad.astype(bool)
    return diffraction, indexes, width, mask


def _read_geometry(p: H5Reader, detector_pixel: float, n_pix: int) -> geo.Geometry:
    distance = p.attr("/", "detector_object_distance_m", "detector distance in metres", high=100.0)
    energy_key = "photon_energy_eV" if "photon_energy_eV" in p.file.attrs else "probe_energy_eV"
    energy = p.attr("/", energy_key, "photon energy in eV", high=1e7)
    return geo.Geometry(energy, distance, detector_pixel, n_pix)


def read_object(p: H5Reader, pixel_m: float):
    """(object (H, W) complex64, centre (y, x) metres); its pixel size must be the far-field one."""
    obj = contract.single_mode(
        p, "object", p.array("object", "the object (layers, H, W)", kinds="fiuc"), "object layer"
    )
    for attr in ("pixel_width_m", "pixel_height_m"):
        size = p.attr("object", attr, "object pixel size in metres", high=MAX_PIXEL_M)
        if abs(size - pixel_m) > PIXEL_RTOL * pixel_m:
            raise p.fail(f"object@{attr}", f"must equal wavelength*distance/(N*pixel) = {pixel_m:.6g} m", f"{size:.6g}")
    if "probe" in p.file and "pixel_width_m" in p.file["probe"].attrs:
        size = p.attr("probe", "pixel_width_m", "probe pixel size in metres", high=MAX_PIXEL_M)
        if abs(size - pixel_m) > PIXEL_RTOL * pixel_m:
            raise p.fail("probe@pixel_width_m", f"must equal the object pixel size {pixel_m:.6g} m", f"{size:.6g}")
    center = tuple(p.attr("object", k, "object centre in metres", low=-np.inf) for k in ("center_y_m", "center_x_m"))
    return obj, center


def positions_for(p: H5Reader, indexes: np.ndarray, conversions: list):
    """(y_m, x_m) of each pattern, matched by index."""
    index = p.array("probe_position_indexes", "the pattern index of each position", kinds="iu").reshape(-1)
    coords = {}
    for axis in ("y", "x"):
        field = f"probe_position_{axis}_m"
        values = p.array(field, f"probe positions along {axis} in metres")
        if values.shape != index.shape:
            raise p.fail(
                field, f"must have one entry per probe_position_indexes ({index.size})", f"shape {values.shape}"
            )
        if not np.isfinite(values).all():
            raise p.fail(field, "must be finite", f"{int((~np.isfinite(values)).sum())} NaN/inf values")
        if values.size and np.abs(values).max() > MAX_POSITION_M:
            raise p.fail(
                field, "must be in metres", f"values up to {np.abs(values).max():.4g} (micrometres or pixels?)"
            )
        coords[axis] = values
    row = {int(k): i for i, k in enumerate(index)}
    missing = [int(k) for k in indexes if int(k) not in row]
    if missing:
        raise p.fail(
            "probe_position_indexes",
            f"must hold every pattern index of the diffraction file ({len(indexes)} patterns)",
            f"{len(missing)} patterns without a position (indexes {missing[:3]}...)",
        )
    take = np.array([row[int(k)] for k in indexes], dtype=np.int64)
    if len(index) > len(take):
        conversions.append(f"probe positions: {len(index) - len(take)} without a pattern, not used")
    return coords["y"][take], coords["x"][take]


def _text_attr(p: H5Reader, name: str) -> str:
    value = p.file.attrs.get(name, "")
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else ""


def _validate(ds: Dataset, source: str) -> Dataset:
    """`Dataset.validate`, naming Ptychodus's fields instead of the contract keys."""
    names = {"diffraction": "patterns", "positions": "probe_position_*_m", "probe": "probe", "object": "object"}
    try:
        return ds.validate(source=source)
    except DataError as exc:
        message = str(exc)
        for key, field in names.items():
            if field != key:
                message = message.replace(f"'{key}'", f"'{field}' (as {key})", 1)
        raise DataError(message) from None


# --- writing ----------------------------------------------------------------------------------


def save_ptychodus(ds: Dataset, path) -> Path:
    """Write `ds` as a Ptychodus pair: `path` (*product.h5) and its *diffraction.h5; returns `path`.

    Geometry comes from the metadata (or the DEFAULT geometry, recorded as assumed); a dataset
    without an object gets a uniform one covering the scan (Ptychodus needs an object grid).
    """
    product_path, diffraction_path = pair(path)
    if not str(product_path) == str(path):
        raise UsageError(f"{path}: write a Ptychodus pair by its product file name (*{PRODUCT_SUFFIX})")
    geometry, obj, metadata = contract.to_write(ds, path, "a Ptychodus pair")
    bad = np.zeros((ds.patch_size,) * 2, bool) if ds.mask is None else ~ds.mask

    def fill_diffraction(h5) -> None:
        h5.create_dataset("indexes", data=np.arange(ds.n, dtype=np.int64))
        patterns = h5.create_dataset("patterns", data=contract.counts(ds.diffraction), compression="gzip")
        patterns.attrs["detector_pixel_width_m"] = geometry.detector_pixel_size_m
        patterns.attrs["detector_pixel_height_m"] = geometry.detector_pixel_size_m
        h5.create_dataset("bad_pixels", data=bad)

    write_atomically(diffraction_path, fill_diffraction)
    name = str(ds.metadata.get("name") or Path(str(ds.metadata.get("source", "ptycho"))).name)
    return save_product(product_path, obj, ds.probe, ds.positions, geometry, name=name, metadata=metadata)


def save_product(
    path,
    obj: np.ndarray,
    probe: np.ndarray,
    positions: np.ndarray,
    geometry: geo.Geometry,
    *,
    name: str = "ptycho",
    comments: str = "",
    metadata: dict | None = None,
) -> Path:
    """Write a Ptychodus product file exactly as `ptychodus.api.io.save_product` lays it out.

    obj (H, W) complex on the positions' pixel grid; probe (N, N) complex; positions (n, 2) (y, x)
    object pixels (contract units); geometry gives the pixel size (metres) and the energy and
    distance. The object is centred at (0, 0) m; positions are written in metres around it.
    """
    y_m, x_m = contract.metres_from_pixels(np.asarray(positions, np.float64), geometry.pixel_size_m, obj.shape)
    pixel = geometry.pixel_size_m

    def fill(h5) -> None:
        attrs = {
            "name": name,
            "comments": comments,
            "detector_object_distance_m": geometry.distance_m,
            "photon_energy_eV": geometry.energy_eV,
            "probe_photon_count": 0.0,
            "exposure_time_s": 0.0,
            "mass_attenuation_m2_per_kg": 0.0,
            "tomography_angle_deg": 0.0,
            "focus_object_distance_m": 0.0,
            "tilt_angle_deg": 0.0,
            "far_field": True,
        }
        h5.attrs.update(attrs)
        if metadata is not None:
            h5.attrs[METADATA_ATTR] = json.dumps(metadata)
        h5.create_dataset("probe_position_indexes", data=np.arange(len(y_m), dtype=np.int64))
        h5.create_dataset("probe_position_x_m", data=x_m)
        h5.create_dataset("probe_position_y_m", data=y_m)
        h5_probe = h5.create_dataset("probe", data=np.asarray(probe, np.complex64)[None, None])
        h5_probe.attrs.update({"pixel_width_m": pixel, "pixel_height_m": pixel})
        h5_object = h5.create_dataset("object", data=np.asarray(obj, np.complex64)[None])
        h5_object.attrs.update({"center_x_m": 0.0, "center_y_m": 0.0, "pixel_width_m": pixel, "pixel_height_m": pixel})
        h5.create_dataset("object_layer_spacing_m", data=np.zeros(0))
        h5.create_dataset("loss_epochs", data=np.zeros(0, np.int64))
        h5.create_dataset("loss_values", data=np.zeros(0))

    return write_atomically(path, fill)
