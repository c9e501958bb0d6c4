"""CXI files (the cxidb convention, spec 1.6): one ptychography scan in HDF5, SI units.

Read:
    entry_1/data_1/data                      photon counts (n, N, N) -> amplitudes sqrt(counts)
                                             (falls back to entry_1/instrument_1/detector_1/data)
    entry_1/sample_1/geometry_1/translation  (n, 3) or (n, 2) x, y[, z] in metres
                                             (or entry_1/data_1/translation)
    entry_1/instrument_1/detector_1/distance, x_pixel_size, y_pixel_size   metres
    entry_1/instrument_1/source_1/energy     joules (or source_1/wavelength, metres)
    entry_1/instrument_1/source_1/illumination (or .../probe)   the probe; without one the
                                             loader needs `probe=` (`--probe FILE`)
    entry_1/instrument_1/detector_1/mask     optional, non-zero = invalid pixel

Object pixel size = wavelength * distance / (N * detector pixel size), converted once here and
recorded in metadata. Sign and axes: the cxidb `translation` is the sample's translation, so the
probe's position on the sample is its negative; x is column 0, y column 1, and positions come
out as (y, x) object pixels with the scan's first corner at N/2. Files written by Ptychodus
(they carry its `entry_1/ptychodus` group) store the probe positions themselves, and with
them the object grid (entry_1/image_2 with its centre and pixel size): those are read as
Ptychodus reads them (`ptycho_core.io.contract`), and a non-uniform object becomes the
ground truth.

Written (`save_cxi`): the same fields in Ptychodus's flavour, so that Ptychodus's CXI reader
opens the file as a diffraction file and as a product (probe in image_1, object or a uniform
placeholder in image_2, its geometry under entry_1/ptychodus), plus ptycho's own metadata as
JSON in entry_1/ptycho/metadata_json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptycho_core import __version__
from ptycho_core.data import Dataset
from ptycho_core.errors import DataError
from ptycho_core.io import contract
from ptycho_core.io import geometry as geo
from ptycho_core.io.hdf5 import H5Reader, check_units, write_atomically

ENTRY = "entry_1"
DATA = "entry_1/data_1/data"
DETECTOR = "entry_1/instrument_1/detector_1"
DETECTOR_DATA = f"{DETECTOR}/data"
DISTANCE = f"{DETECTOR}/distance"
X_PIXEL = f"{DETECTOR}/x_pixel_size"
Y_PIXEL = f"{DETECTOR}/y_pixel_size"
MASK = f"{DETECTOR}/mask"
SOURCE = "entry_1/instrument_1/source_1"
ENERGY = f"{SOURCE}/energy"
WAVELENGTH = f"{SOURCE}/wavelength"
ILLUMINATION = f"{SOURCE}/illumination"
PROBES = (ILLUMINATION, f"{SOURCE}/probe", "entry_1/probe")
TRANSLATION = "entry_1/sample_1/geometry_1/translation"
TRANSLATIONS = (TRANSLATION, "entry_1/data_1/translation", f"{DETECTOR}/translation")
OBJECT = "entry_1/image_2/data"
PTYCHODUS = "entry_1/ptychodus"
OBJECT_CENTER = (f"{PTYCHODUS}/object_center_y_m", f"{PTYCHODUS}/object_center_x_m")
OBJECT_PIXEL = (f"{PTYCHODUS}/object_pixel_height_m", f"{PTYCHODUS}/object_pixel_width_m")
METADATA_JSON = "entry_1/ptycho/metadata_json"

#: CXI version written (1.6, stored as 160 like Ptychodus).
CXI_VERSION = 160
#: Bounds that catch values in the wrong unit (mm, um, eV) with a clear message.
MAX_TRANSLATION_M = 0.1
MAX_DISTANCE_M = 100.0
MAX_PIXEL_M = 0.01
MAX_ENERGY_J = 1.6e-13  # 1 MeV
#: Relative tolerance for square pixels and for agreeing pixel sizes.
PIXEL_RTOL = 1e-3


def load_cxi(path, probe: np.ndarray | None = None) -> Dataset:
    """Read a CXI file as a validated `Dataset` in contract units (module docstring).

    `probe`: a complex (N, N) array used instead of (or in the absence of) the file's probe.
    Ptychodus's split pair (`Xdiffraction.cxi` without translations beside `Xproduct.cxi`) is
    read as one scan. Raises DataError (one line naming the file and the field) on bad input.
    """
    with H5Reader(path, "CXI") as f:
        conversions: list = []
        data_field = f.first(DATA, DETECTOR_DATA) or DATA
        diffraction = contract.amplitudes(f, data_field)
        conversions.append(f"{data_field}: photon counts -> amplitudes sqrt(counts)")
        if diffraction.shape[1] != diffraction.shape[2]:
            raise f.fail(data_field, "must hold square patterns (n, N, N)", f"shape {diffraction.shape}")
        scan = _Scan(diffraction, read_geometry(f, diffraction.shape[-1]), _mask(f, diffraction.shape[-1]), conversions)
        partner = _product_partner(f)
        if partner is None:
            return _assemble(f, f, scan, probe, data_field)
        conversions.append(f"positions, probe, object: from {partner} (Ptychodus's split CXI pair)")
        with H5Reader(partner, "CXI") as g:
            return _assemble(f, g, scan, probe, data_field)


@dataclass
class _Scan:
    """What the data file gives: amplitudes, geometry, mask, and the conversions so far."""

    diffraction: np.ndarray
    geometry: geo.Geometry
    mask: np.ndarray | None
    conversions: list


def _assemble(f: H5Reader, g: H5Reader, scan: _Scan, probe, data_field: str) -> Dataset:
    """The Dataset from the data file `f` and the file `g` holding positions and probe (often `f`)."""
    n_pix = scan.diffraction.shape[-1]
    written_by_ptychodus = g.has(PTYCHODUS)
    y_m, x_m = _probe_positions(g, scan.diffraction.shape[0], written_by_ptychodus, scan.conversions)
    obj, positions = _positions(g, y_m, x_m, scan.geometry, n_pix, written_by_ptychodus, scan.conversions)
    metadata = {
        "counts_scale": 1.0,
        **_own_metadata(f),
        "source": f.source,
        "format": "cxi",
        **scan.geometry.as_metadata(),
    }
    ds = Dataset(
        diffraction=scan.diffraction,
        positions=positions,
        probe=_probe(g, probe, n_pix, scan.conversions),
        object=obj,
        mask=scan.mask,
        metadata=metadata,
    )
    metadata["conversions"] = scan.conversions
    links = f.links + (g.links if g is not f else [])
    if links:
        metadata["links"] = links
    return _validate(ds, f.source, data_field)


def _product_partner(f: H5Reader) -> Path | None:
    """`Xproduct.cxi` beside a Ptychodus `Xdiffraction.cxi` that has no translations, else None."""
    name = f.path.name
    if f.first(*TRANSLATIONS) or not name.lower().endswith("diffraction.cxi"):
        return None
    partner = f.path.with_name(name[: -len("diffraction.cxi")] + "product.cxi")
    return partner if partner.is_file() else None


def read_geometry(f: H5Reader, n_pix: int) -> geo.Geometry:
    """Detector distance, square pixel size and photon energy (or wavelength), in SI units."""
    distance = f.scalar(DISTANCE, "detector distance in metres", metres=True, high=MAX_DISTANCE_M)
    x_pixel = f.scalar(X_PIXEL, "detector pixel width in metres", metres=True, high=MAX_PIXEL_M)
    y_pixel = f.scalar(Y_PIXEL, "detector pixel height in metres", metres=True, high=MAX_PIXEL_M)
    if abs(x_pixel - y_pixel) > PIXEL_RTOL * x_pixel:
        raise f.fail(Y_PIXEL, f"must equal x_pixel_size {x_pixel:g} (square pixels)", f"{y_pixel:g}")
    if f.has(ENERGY) or not f.has(WAVELENGTH):
        energy_j = f.scalar(ENERGY, "photon energy in joules (CXI is SI)", high=MAX_ENERGY_J)
        energy_ev = energy_j / geo.EV_J
    else:
        wavelength = f.scalar(WAVELENGTH, "wavelength in metres", metres=True, high=1e-6)
        energy_ev = geo.energy_from_wavelength(wavelength)
    return geo.Geometry(energy_ev, distance, x_pixel, n_pix)


def _probe_positions(f: H5Reader, n: int, written_by_ptychodus: bool, conversions: list):
    """(y_m, x_m) probe positions on the sample from the translations (module docstring)."""
    field = f.first(*TRANSLATIONS) or TRANSLATION
    translation = f.array(field, "sample translations in metres (n, 3)")
    if translation.ndim != 2 or translation.shape[1] not in (2, 3):
        raise f.fail(field, "must have shape (n, 3) or (n, 2) as x, y[, z]", f"shape {translation.shape}")
    if translation.shape[0] != n:
        raise f.fail(field, f"must have one row per pattern in the data ({n})", f"{translation.shape[0]} rows")
    if not np.isfinite(translation).all():
        raise f.fail(field, "must be finite", f"{int((~np.isfinite(translation)).sum())} NaN/inf values")
    check_units(f, field, f.file[field].attrs)
    largest = float(np.abs(translation[:, :2]).max())
    if largest > MAX_TRANSLATION_M:
        raise f.fail(field, "must be in metres", f"values up to {largest:.4g} (micrometres or pixels?)")
    if written_by_ptychodus:
        conversions.append(f"{field}: probe positions x, y in metres (as Ptychodus writes them) -> (y, x)")
        return translation[:, 1], translation[:, 0]
    conversions.append(f"{field}: sample translation x, y in metres -> probe positions -(y, x)")
    return -translation[:, 1], -translation[:, 0]


def _positions(f: H5Reader, y_m, x_m, geometry: geo.Geometry, n_pix: int, written_by_ptychodus: bool, conversions):
    """(ground-truth object or None, (n, 2) positions in object pixels)."""
    dx = geometry.pixel_size_m
    grid = _object_grid(f, dx) if written_by_ptychodus else None
    if grid is None:
        positions = np.stack([(y_m - y_m.min()) / dx, (x_m - x_m.min()) / dx], axis=1) + n_pix / 2
        conversions.append(f"positions: metres / {dx:.6g} m per object pixel, scan corner at N/2")
        if f.has(OBJECT):
            conversions.append(f"{OBJECT}: an image without Ptychodus's object grid (centre, pixel size); not used")
        return None, positions
    obj, center = grid
    positions = contract.pixels_from_metres(y_m, x_m, dx, obj.shape, center)
    conversions.append(f"positions: metres -> pixels of the {OBJECT} grid ({dx:.6g} m per pixel)")
    if contract.is_placeholder(obj):
        conversions.append(f"{OBJECT}: uniform (an initial guess, not ground truth); not used as the object")
        return None, positions
    return obj, positions


def _object_grid(f: H5Reader, dx: float):
    """(object (H, W) complex64, centre (y, x) m) of a Ptychodus-flavoured file, or None without one."""
    if not (f.has(OBJECT) and all(f.has(k) for k in OBJECT_CENTER + OBJECT_PIXEL)):
        return None
    obj = contract.single_mode(f, OBJECT, f.array(OBJECT, "the object", kinds="fiuc"), "object layer")
    for field in OBJECT_PIXEL:
        size = f.scalar(field, "object pixel size in metres", high=MAX_PIXEL_M)
        if abs(size - dx) > PIXEL_RTOL * dx:
            raise f.fail(field, f"must equal wavelength*distance/(N*pixel) = {dx:.6g} m", f"{size:.6g}")
    center = tuple(float(f.array(k, "object centre in metres").reshape(-1)[0]) for k in OBJECT_CENTER)
    return obj, center


def _probe(f: H5Reader, given: np.ndarray | None, n_pix: int, conversions: list) -> np.ndarray:
    if given is not None:
        if np.shape(given) != (n_pix, n_pix):
            raise DataError(
                f"{f.source}: the --probe array must have the pattern shape {(n_pix, n_pix)}, got {np.shape(given)}"
            )
        conversions.append("probe: from --probe (not the file's)")
        return np.asarray(given, dtype=np.complex64)
    field = f.first(*PROBES)
    if field is None:
        raise DataError(f"{f.source}: '{ILLUMINATION}' (the probe) is missing; give one with --probe FILE")
    return contract.single_mode(f, field, f.array(field, "the probe (N, N)", kinds="fiuc"), "probe mode")


def _mask(f: H5Reader, n_pix: int) -> np.ndarray | None:
    if not f.has(MASK):
        return None
    flags = f.array(MASK, "detector mask (N, N), non-zero = invalid", kinds="fiub")
    if flags.shape != (n_pix, n_pix):
        raise f.fail(MASK, f"must have the pattern shape ({n_pix}, {n_pix})", f"shape {flags.shape}")
    valid = flags == 0
    return None if valid.all() else valid


def _own_metadata(f: H5Reader) -> dict:
    """The metadata ptycho wrote into its own CXI files (empty for anyone else's)."""
    return contract.own_metadata(f, METADATA_JSON, f.text(METADATA_JSON))


def _validate(ds: Dataset, source: str, data_field: str) -> Dataset:
    """`Dataset.validate`, naming the CXI fields instead of the contract keys."""
    names = {"diffraction": data_field, "positions": TRANSLATION, "probe": ILLUMINATION, "object": OBJECT}
    try:
        return ds.validate(source=source)
    except DataError as exc:
        message = str(exc)
        for key, field in names.items():
            message = message.replace(f"'{key}'", f"'{field}' (as {key})", 1)
        raise DataError(message) from None


# --- writing ----------------------------------------------------------------------------------


def save_cxi(ds: Dataset, path) -> Path:
    """Write `ds` as a CXI file (module docstring), atomically; returns the path.

    Counts are amplitudes squared; geometry comes from the metadata (or DEFAULT geometry,
    recorded as assumed). Per-pattern masks (n, N, N) cannot be written (CXI has one mask).
    """
    path = Path(path)
    geometry, grid, metadata = contract.to_write(ds, path, "CXI")
    y_m, x_m = contract.metres_from_pixels(ds.positions, geometry.pixel_size_m, grid.shape)

    def fill(h5) -> None:
        h5["cxi_version"] = CXI_VERSION
        h5[ENERGY] = geometry.energy_eV * geo.EV_J
        h5[DISTANCE] = geometry.distance_m
        h5[X_PIXEL] = geometry.detector_pixel_size_m
        h5[Y_PIXEL] = geometry.detector_pixel_size_m
        h5.create_dataset(DETECTOR_DATA, data=contract.counts(ds.diffraction), compression="gzip", compression_opts=4)
        h5[DATA] = _softlink(DETECTOR_DATA)
        if ds.mask is not None:
            h5[MASK] = np.where(ds.mask, 0, 1).astype(np.uint32)
        h5.create_dataset(TRANSLATION, data=np.stack([x_m, y_m, np.zeros_like(x_m)], axis=1))
        h5[TRANSLATION].attrs["units"] = "m"
        h5["entry_1/data_1/translation"] = _softlink(TRANSLATION)
        h5["entry_1/image_1/data"] = ds.probe
        h5[ILLUMINATION] = _softlink("entry_1/image_1/data")
        h5[OBJECT] = grid[None].astype(np.complex64)
        _write_ptychodus_geometry(h5, geometry.pixel_size_m, ds.n)
        h5["entry_1/process_1/program"] = "ptycho"
        h5["entry_1/process_1/version"] = __version__
        h5[METADATA_JSON] = json.dumps(metadata)

    return write_atomically(path, fill)


def _write_ptychodus_geometry(h5, pixel_m: float, n: int) -> None:
    """The grid Ptychodus's CXI product reader needs: object centre and pixel sizes, probe pixel sizes."""
    for name in ("object_pixel_width_m", "object_pixel_height_m", "probe_pixel_width_m", "probe_pixel_height_m"):
        h5[f"{PTYCHODUS}/{name}"] = pixel_m
    for field in OBJECT_CENTER:
        h5[field] = 0.0
    h5[f"{PTYCHODUS}/probe_position_indexes"] = np.arange(n, dtype=np.int64)


def _softlink(target: str):
    import h5py  # lazy: import time (h5py), only HDF5 files need it

    return h5py.SoftLink("/" + target)
