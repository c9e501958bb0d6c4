"""Malformed CXI and Ptychodus files: `ptycho inspect` prints one line naming the file and the
field, and exits 2. Each file starts as a valid one written by ptycho, then one field is broken."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from ptycho_core.io import save_dataset
from ptycho_core.simulate import SimConfig, simulate

TINY = SimConfig(train_objects=1, patch_size=16, object_size=32, step=4.0)
TRANSLATION = "entry_1/sample_1/geometry_1/translation"
DATA = "entry_1/instrument_1/detector_1/data"
TINY_N = 16  # the 4 x 4 raster of TINY (checked below)


@pytest.fixture(scope="module")
def tiny():
    return simulate(TINY)


def _replace(h5, field, value, **attrs):
    del h5[field]
    h5[field] = value
    h5[field].attrs.update(attrs)


def _cxi(tmp_path, ds, change):
    """A CXI file written by ptycho, then `change(h5)` applied to it."""
    path = save_dataset(ds, tmp_path / "scan.cxi")
    with h5py.File(path, "r+") as h5:
        change(h5)
    return path


def _pair(tmp_path, ds, change, file="product"):
    """A Ptychodus pair written by ptycho, then `change(h5)` applied to one of its two files."""
    path = save_dataset(ds, tmp_path / "scan-product.h5")
    with h5py.File(tmp_path / f"scan-{file}.h5", "r+") as h5:
        change(h5)
    return path


def _counts(ds):
    return np.square(ds.diffraction.astype(np.float64))


def _cxi_data(h5, values):
    _replace(h5, DATA, values)


def _truncated(tmp_path, ds):
    path = save_dataset(ds, tmp_path / "scan.cxi")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def _no_partner(tmp_path, ds):
    path = save_dataset(ds, tmp_path / "scan-product.h5")
    (tmp_path / "scan-diffraction.h5").unlink()
    return path


def _text_file(tmp_path, ds):
    path = tmp_path / "notes.cxi"
    path.write_text("positions in a spreadsheet\n")
    return path


def _nan_counts(h5, ds):
    counts = _counts(ds)
    counts[0, 3, 3] = np.nan
    _cxi_data(h5, counts)


def _negative_counts(h5, ds):
    counts = _counts(ds)
    counts[1, 0, 0] = -4.0
    _replace(h5, "patterns", counts, detector_pixel_width_m=75e-6, detector_pixel_height_m=75e-6)


def _two_probe_modes(h5, ds):
    _replace(h5, "probe", np.stack([ds.probe, ds.probe])[None], pixel_width_m=h5["probe"].attrs["pixel_width_m"])


def _missing_positions(h5, ds):
    for axis in "xy":
        values = h5[f"probe_position_{axis}_m"][()]
        _replace(h5, f"probe_position_{axis}_m", values[:-2])
    _replace(h5, "probe_position_indexes", np.arange(ds.n - 2))


def _object_dtype_energy(h5, ds):
    del h5.attrs["photon_energy_eV"]
    h5.attrs.create("photon_energy_eV", np.array(["8000", "eV"], dtype=object), dtype=h5py.string_dtype())


def _wrong_object_pixel(h5, ds):
    h5["object"].attrs["pixel_width_m"] = 2 * h5["object"].attrs["pixel_width_m"]


# (id, build(tmp_path, dataset) -> file to inspect, fragments the one line must contain)
CASES = [
    (
        "cxi-no-translations",
        lambda t, d: _cxi(t, d, lambda h: h.__delitem__(TRANSLATION)),
        (TRANSLATION, "is required"),
    ),
    (
        "cxi-translations-in-micrometres",
        lambda t, d: _cxi(t, d, lambda h: _replace(h, TRANSLATION, h[TRANSLATION][()] * 1e6)),
        (TRANSLATION, "must be in metres", "micrometres or pixels"),
    ),
    (
        "cxi-translations-one-column",
        lambda t, d: _cxi(t, d, lambda h: _replace(h, TRANSLATION, h[TRANSLATION][:, :1])),
        (TRANSLATION, "must have shape (n, 3)"),
    ),
    (
        "cxi-counts-not-matching-positions",
        lambda t, d: _cxi(t, d, lambda h: _replace(h, TRANSLATION, h[TRANSLATION][:-3])),
        (TRANSLATION, f"one row per pattern in the data ({TINY_N})", f"{TINY_N - 3} rows"),
    ),
    (
        "cxi-nan-counts",
        lambda t, d: _cxi(t, d, lambda h: _nan_counts(h, d)),
        ("'entry_1/data_1/data'", "finite photon counts", "1 NaN"),
    ),
    (
        "cxi-object-dtype-data",
        lambda t, d: _cxi(t, d, lambda h: _cxi_data(h, np.array(["1"] * 4, dtype=h5py.string_dtype()))),
        ("'entry_1/data_1/data'", "must hold real numbers", "dtype object"),
    ),
    (
        "cxi-energy-in-ev",
        lambda t, d: _cxi(t, d, lambda h: _replace(h, "entry_1/instrument_1/source_1/energy", 8000.0)),
        ("source_1/energy", "photon energy in joules", "8000.0"),
    ),
    (
        "cxi-distance-in-mm",
        lambda t, d: _cxi(t, d, lambda h: _replace(h, "entry_1/instrument_1/detector_1/distance", 1000.0, units="mm")),
        ("detector_1/distance", "in metres", "units='mm'"),
    ),
    (
        "cxi-no-probe",
        lambda t, d: _cxi(t, d, lambda h: h.__delitem__("entry_1/instrument_1/source_1/illumination")),
        ("source_1/illumination", "--probe FILE"),
    ),
    ("cxi-truncated", _truncated, ("scan.cxi", "truncated or damaged")),
    ("cxi-not-hdf5", _text_file, ("notes.cxi", "no HDF5 signature")),
    ("ptychodus-no-diffraction-file", _no_partner, ("scan-diffraction.h5", "no such file", "scan-product.h5")),
    (
        "ptychodus-negative-counts",
        lambda t, d: _pair(t, d, lambda h: _negative_counts(h, d), file="diffraction"),
        ("scan-diffraction.h5", "'patterns'", "non-negative", "1 negative"),
    ),
    (
        "ptychodus-patterns-without-positions",
        lambda t, d: _pair(t, d, lambda h: _missing_positions(h, d)),
        ("probe_position_indexes", "2 patterns without a position"),
    ),
    (
        "ptychodus-positions-in-micrometres",
        lambda t, d: _pair(t, d, lambda h: _replace(h, "probe_position_x_m", h["probe_position_x_m"][()] * 1e6)),
        ("probe_position_x_m", "must be in metres"),
    ),
    (
        "ptychodus-two-probe-modes",
        lambda t, d: _pair(t, d, lambda h: _two_probe_modes(h, d)),
        ("'probe'", "single probe mode", "(1, 2, 16, 16)"),
    ),
    (
        "ptychodus-object-dtype-attribute",
        lambda t, d: _pair(t, d, lambda h: _object_dtype_energy(h, d)),
        ("@photon_energy_eV", "dtype object"),
    ),
    (
        "ptychodus-object-pixel-not-far-field",
        lambda t, d: _pair(t, d, lambda h: _wrong_object_pixel(h, d)),
        ("object@pixel_width_m", "wavelength*distance/(N*pixel)"),
    ),
    (
        "ptychodus-nan-positions",
        lambda t, d: _pair(t, d, lambda h: h["probe_position_y_m"].__setitem__(0, np.nan)),
        ("probe_position_y_m", "must be finite", "1 NaN"),
    ),
]


def test_the_tiny_scan_has_the_pattern_count_the_cases_name(tiny):
    assert tiny.n == TINY_N


@pytest.mark.parametrize(("build", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_malformed_file_is_one_line_naming_file_and_field_and_exit_2(
    build, fragments, tiny, tmp_path, invoke, one_line_error
):
    path = build(tmp_path, tiny)
    line = one_line_error(invoke("inspect", path))
    assert line.startswith(f"error: {tmp_path}"), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
