"""CXI files: ptycho's writer and loader agree exactly, and the cxidb convention is read right."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from ptycho_core.errors import DataError
from ptycho_core.io import cxi, load_dataset, save_dataset
from ptycho_core.io import geometry as geo
from ptycho_core.simulate import SimConfig, simulate

TINY = SimConfig(train_objects=1, patch_size=16, object_size=40, step=4.0)


@pytest.fixture(scope="module")
def tiny():
    return simulate(TINY)


def test_a_written_cxi_file_reads_back_exactly(tiny, tmp_path, core_host):
    back = load_dataset(save_dataset(tiny, tmp_path / "scan.cxi"), registry=core_host.registry())
    np.testing.assert_allclose(back.positions, tiny.positions, atol=1e-9)
    np.testing.assert_allclose(back.diffraction, tiny.diffraction, rtol=1e-6)
    np.testing.assert_array_equal(back.probe, tiny.probe)
    np.testing.assert_array_equal(back.object, tiny.object)
    assert back.metadata["counts_scale"] == 1.0
    assert back.metadata["geometry"] == "assumed"
    assert back.metadata["pixel_size_m"] == pytest.approx(geo.HC_EV_M / 8000.0 * 1.0 / (16 * 75e-6))


def _cxidb_file(path, counts, translation, *, probe=None, energy_j=8000 * geo.EV_J, distance=2.0, pixel=50e-6):
    """A plain cxidb file as other programs write it: sample translations, no Ptychodus group."""
    with h5py.File(path, "w") as h5:
        h5["cxi_version"] = 140
        h5["entry_1/data_1/data"] = counts
        h5["entry_1/sample_1/geometry_1/translation"] = translation
        h5["entry_1/instrument_1/detector_1/distance"] = distance
        h5["entry_1/instrument_1/detector_1/x_pixel_size"] = pixel
        h5["entry_1/instrument_1/detector_1/y_pixel_size"] = pixel
        h5["entry_1/instrument_1/source_1/energy"] = energy_j
        if probe is not None:
            h5["entry_1/instrument_1/source_1/illumination"] = probe
    return path


def test_cxidb_translations_are_the_sample_moving_so_positions_are_their_negative(tiny, tmp_path):
    dx = geo.object_pixel_size(geo.HC_EV_M / 8000.0, 2.0, 16, 50e-6)
    # the sample moves +x by 3 pixels and -y by 2 pixels between the two patterns
    translation = np.array([[0.0, 0.0, 0.0], [3 * dx, -2 * dx, 0.0]])
    counts = np.square(tiny.diffraction[:2]).astype(np.float64)
    ds = cxi.load_cxi(_cxidb_file(tmp_path / "s.cxi", counts, translation, probe=tiny.probe))
    step = ds.positions[1] - ds.positions[0]
    np.testing.assert_allclose(step, [2.0, -3.0], atol=1e-9)  # the probe moves the other way, (y, x)
    assert ds.positions.min(axis=0).tolist() == [8.0, 8.0]  # the scan's corner at N/2
    assert ds.metadata["pixel_size_m"] == pytest.approx(dx)
    np.testing.assert_allclose(ds.diffraction, np.sqrt(counts), rtol=1e-6)


def test_a_cxi_file_without_a_probe_needs_one_from_probe_file(tiny, tmp_path, core_host):
    translation = np.zeros((2, 3))
    path = _cxidb_file(tmp_path / "s.cxi", np.square(tiny.diffraction[:2]), translation)
    with pytest.raises(DataError, match="source_1/illumination.*--probe FILE"):
        load_dataset(path, registry=core_host.registry())
    probe_file = tmp_path / "probe.npy"
    np.save(probe_file, tiny.probe)
    ds = load_dataset(path, registry=core_host.registry(), probe=str(probe_file))
    np.testing.assert_array_equal(ds.probe, tiny.probe)
    assert "probe: from --probe (not the file's)" in ds.metadata["conversions"]


@pytest.mark.parametrize("name", ["cxi", "ptychodus"])
def test_the_built_in_hdf5_loaders_pass_the_loader_conformance_kit(name, core_host):
    from ptycho_core.io import WRITERS
    from ptycho_core.registry import resolve_factory
    from ptycho_core.testing.conformance import LOADER_CHECKS, check_loader

    write = resolve_factory(WRITERS[name][0])
    results = check_loader(name, registry=core_host.registry(), write=write)
    assert [r.status for r in results] == ["passed"] * len(LOADER_CHECKS)


@pytest.mark.parametrize(("extension", "ok"), [(".h5", True), ("product.h5", True), ("h5", False), ("npz", False)])
def test_a_loader_extension_is_a_dotted_suffix_or_a_file_name_ending(extension, ok):
    from ptycho_core.registry import LoaderSpec
    from ptycho_core.testing.conformance import run_loader_checks

    spec = LoaderSpec(name="x", summary="s", factory="ptycho_core.io.cxi:load_cxi", extensions=(extension,))
    result = run_loader_checks(spec, checks=("spec_is_complete",))[0]
    assert result.ok is ok, result.detail
