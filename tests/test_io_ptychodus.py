"""Proof against the real program: Ptychodus 1.7.0's own file plugins and forward model.

Ptychodus writes, ptycho reads (and the reverse), for its HDF5 product + diffraction pair and for
its CXI files; positions, probe and patterns must agree, and each side's forward model must
reproduce the other side's patterns. Under CI=true a missing ptychodus fails these tests.

The geometry (8 keV, 0.5 m, 1 mm detector pixels) keeps Ptychodus's Fresnel-transform chirp
below 1e-4 rad, so its far field equals ptycho's FFT up to its normalisation: Ptychodus's
amplitudes are ptycho's times dx / p (object over detector pixel size).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

if os.environ.get("CI") == "true":
    import ptychodus
else:
    ptychodus = pytest.importorskip("ptychodus")

from ptychodus.api.diffraction import (  # noqa: E402
    DiffractionDatasetLayoutNode,
    DiffractionMetadata,
    SimpleDiffractionArray,
    SimpleDiffractionDataset,
)
from ptychodus.api.geometry import ImageExtent, PixelGeometry  # noqa: E402
from ptychodus.api.io import load_diffraction_data, save_diffraction_data  # noqa: E402
from ptychodus.api.object import Object, ObjectCenter  # noqa: E402
from ptychodus.api.probe import ProbeSequence  # noqa: E402
from ptychodus.api.probe_positions import ProbePosition, ProbePositionSequence  # noqa: E402
from ptychodus.api.product import Product, ProductMetadata  # noqa: E402
from ptychodus.api.simulate.diffraction import generate_diffraction_data  # noqa: E402
from ptychodus.plugins.cxi_file import (  # noqa: E402
    CXIDiffractionFileReader,
    CXIDiffractionFileWriter,
    CXIProductFileIO,
)
from ptychodus.plugins.h5_product_file import H5ProductFileIO  # noqa: E402

from ptycho_core import physics  # noqa: E402
from ptycho_core.io import geometry as geo  # noqa: E402
from ptycho_core.io import load_dataset, save_dataset  # noqa: E402
from ptycho_core.simulate import SimConfig, simulate  # noqa: E402

N = 16
ENERGY_EV, DISTANCE_M, DETECTOR_PIXEL_M = 8000.0, 0.5, 1e-3
DX = geo.object_pixel_size(geo.HC_EV_M / ENERGY_EV, DISTANCE_M, N, DETECTOR_PIXEL_M)
#: Ptychodus's far-field amplitudes over ptycho's: its Fresnel transform keeps physical energy.
PTYCHODUS_SCALE = DX / DETECTOR_PIXEL_M


def test_the_installed_ptychodus_is_the_pinned_one():
    from importlib.metadata import version

    assert version("ptychodus") == "1.7.0"


def _probe() -> np.ndarray:
    yy, xx = np.mgrid[:N, :N] - N / 2
    r2 = yy**2 + xx**2
    return (np.exp(-r2 / 18.0) * np.exp(0.08j * r2 + 0.3j * xx / N)).astype(np.complex64)


def _product(subpixel: bool) -> Product:
    """A Ptychodus product made with its own API: random object, off-centre grid, indexes 100+."""
    rng = np.random.default_rng(7)
    height, width = 40, 48
    smooth = [gaussian_filter(rng.standard_normal((height, width)), 1.5) for _ in range(2)]
    obj = (0.8 + smooth[0]) * np.exp(2j * smooth[1])
    # Ptychodus's pixel-centre convention: x_px - (N - 1) / 2 integer = no sub-pixel shift (1e-6 px
    # more, so that rounding in metres cannot drop its int() to the pixel below)
    y_px, x_px = np.meshgrid(7.5 + 1e-6 + 4 * np.arange(7), 7.5 + 1e-6 + 4 * np.arange(9), indexing="ij")
    y_px, x_px = y_px.ravel(), x_px.ravel()
    if subpixel:
        y_px = y_px + rng.uniform(-0.45, 0.45, y_px.shape)
        x_px = x_px + rng.uniform(-0.45, 0.45, x_px.shape)
    center = ObjectCenter(x_m=1.5e-6, y_m=-2.0e-6)
    x_m = center.x_m + DX * (x_px - (width - 1) / 2)
    y_m = center.y_m + DX * (y_px - (height - 1) / 2)
    pixel = PixelGeometry(width_m=DX, height_m=DX)
    points = [ProbePosition(100 + i, float(x), float(y)) for i, (x, y) in enumerate(zip(x_m, y_m, strict=True))]
    metadata = ProductMetadata(
        name="ptychodus-made",
        comments="",
        detector_distance_m=DISTANCE_M,
        photon_energy_eV=ENERGY_EV,
        probe_photon_count=0.0,
        exposure_time_s=0.0,
        mass_attenuation_m2_per_kg=0.0,
        tomography_angle_deg=0.0,
    )
    return Product(
        metadata=metadata,
        probe_positions=ProbePositionSequence(points),
        probes=ProbeSequence(_probe().astype(np.complex128), None, pixel),
        object_=Object(obj.astype(np.complex64), pixel, center, []),
        losses=[],
    )


def _expected_positions(product: Product) -> np.ndarray:
    """Ptychodus's own metres -> object pixel map, moved to ptycho's patch centre (+1/2)."""
    geometry = product.object_.get_geometry()
    positions = product.probe_positions
    return np.stack(
        [
            geometry.map_probe_positions_to_object_y_px(positions) + 0.5,
            geometry.map_probe_positions_to_object_x_px(positions) + 0.5,
        ],
        axis=1,
    )


def _residual(amplitudes: np.ndarray, model: np.ndarray) -> tuple[float, float]:
    """(the least-squares scale s of model onto amplitudes, ||a - s m|| / ||a||)."""
    s = float((amplitudes * model).sum() / (model * model).sum())
    return s, float(np.linalg.norm(amplitudes - s * model) / np.linalg.norm(amplitudes))


def _our_forward(ds, positions=None) -> np.ndarray:
    pos = ds.positions if positions is None else positions
    return physics.forward(ds.probe, physics.extract(ds.object, pos, ds.patch_size))


def _write_h5_pair(product: Product, folder) -> tuple:
    patterns = generate_diffraction_data(product)  # Ptychodus's forward model, noise-free
    H5ProductFileIO().write(folder / "scan-product.h5", product)
    save_diffraction_data(folder / "scan-diffraction.h5", patterns)
    return patterns.get_patterns(), folder / "scan-product.h5"


@pytest.mark.parametrize("subpixel", [False, True], ids=["grid", "jittered"])
def test_a_pair_written_by_ptychodus_reads_with_its_positions_probe_and_patterns(subpixel, tmp_path, core_host):
    product = _product(subpixel)
    counts, path = _write_h5_pair(product, tmp_path)
    ds = load_dataset(tmp_path / "scan-diffraction.h5", registry=core_host.registry())
    np.testing.assert_allclose(ds.positions, _expected_positions(product), atol=1e-9)
    np.testing.assert_array_equal(ds.probe, _probe())
    np.testing.assert_allclose(ds.diffraction.astype(np.float64) ** 2, counts, rtol=1e-5, atol=1e-12)
    assert ds.metadata["pixel_size_m"] == pytest.approx(DX)
    assert ds.metadata["counts_scale"] == 1.0
    scale, residual = _residual(ds.diffraction, _our_forward(ds))
    if subpixel:  # Ptychodus shifts the probe by Fourier, ptycho the object bilinearly
        assert scale == pytest.approx(PTYCHODUS_SCALE, rel=0.02) and residual < 0.03
        return
    assert scale == pytest.approx(PTYCHODUS_SCALE, rel=1e-3)
    assert residual < 1e-4
    # the same check fails for a half-pixel error, swapped axes or the opposite sign
    for wrong in (ds.positions + 0.5, ds.positions[:, ::-1], 2 * ds.positions.mean(axis=0) - ds.positions):
        assert _residual(ds.diffraction, _our_forward(ds, wrong))[1] > 0.03


def test_patterns_match_positions_by_index_not_by_order(tmp_path, core_host):
    product = _product(False)
    counts, _ = _write_h5_pair(product, tmp_path)
    order = np.random.default_rng(1).permutation(len(product.probe_positions))
    shuffled = Product(
        metadata=product.metadata,
        probe_positions=ProbePositionSequence([product.probe_positions[int(i)] for i in order]),
        probes=product.probes,
        object_=product.object_,
        losses=[],
    )
    H5ProductFileIO().write(tmp_path / "scan-product.h5", shuffled)
    ds = load_dataset(tmp_path / "scan-product.h5", registry=core_host.registry())
    np.testing.assert_allclose(ds.positions, _expected_positions(product), atol=1e-9)
    assert _residual(ds.diffraction, _our_forward(ds))[1] < 1e-4


def _our_dataset():
    """A noise-free ptycho simulation on integer positions, with the test geometry."""
    ds = simulate(SimConfig(train_objects=1, patch_size=N, object_size=40, step=4.0, jitter=0.0))
    ds.diffraction = _our_forward(ds).astype(np.float32)
    ds.metadata.update(energy_eV=ENERGY_EV, distance_m=DISTANCE_M, detector_pixel_size_m=DETECTOR_PIXEL_M)
    return ds


def test_a_pair_written_by_ptycho_reads_in_ptychodus_and_its_forward_model_agrees(tmp_path):
    ds = _our_dataset()
    save_dataset(ds, tmp_path / "ours-product.h5")
    product = H5ProductFileIO().read(tmp_path / "ours-product.h5")  # the GUI's product reader
    data = load_diffraction_data(tmp_path / "ours-diffraction.h5")
    np.testing.assert_allclose(_expected_positions(product), ds.positions, atol=1e-9)
    np.testing.assert_array_equal(product.probes.get_array()[0, 0], ds.probe)
    np.testing.assert_array_equal(product.object_.get_array()[0], ds.object)
    assert product.object_.get_geometry().pixel_width_m == pytest.approx(DX)
    assert data.get_pixel_geometry().width_m == pytest.approx(DETECTOR_PIXEL_M)
    np.testing.assert_allclose(data.get_patterns(), ds.diffraction.astype(np.float64) ** 2, rtol=1e-6)
    theirs = np.sqrt(generate_diffraction_data(product).get_patterns())
    scale, residual = _residual(theirs, ds.diffraction)
    assert scale == pytest.approx(PTYCHODUS_SCALE, rel=1e-3) and residual < 1e-4


def _ptychodus_diffraction(counts: np.ndarray, product: Product) -> SimpleDiffractionDataset:
    metadata = DiffractionMetadata(
        num_patterns_per_array=[len(counts)],
        pattern_dtype=counts.dtype,
        detector_extent=ImageExtent(N, N),
        detector_distance_m=DISTANCE_M,
        detector_pixel_geometry=PixelGeometry(DETECTOR_PIXEL_M, DETECTOR_PIXEL_M),
        photon_energy_eV=ENERGY_EV,
    )
    indexes = product.probe_positions.get_indexes()
    array = SimpleDiffractionArray("scan", indexes, counts)
    return SimpleDiffractionDataset(metadata, DiffractionDatasetLayoutNode.create_root(), [array])


def test_a_cxi_pair_written_by_ptychodus_reads_with_its_positions_probe_and_patterns(tmp_path, core_host):
    product = _product(False)
    counts = generate_diffraction_data(product).get_patterns()
    CXIDiffractionFileWriter().write(tmp_path / "scan-diffraction.cxi", _ptychodus_diffraction(counts, product))
    CXIProductFileIO().write(tmp_path / "scan-product.cxi", product)
    ds = load_dataset(tmp_path / "scan-diffraction.cxi", registry=core_host.registry())
    np.testing.assert_allclose(ds.positions, _expected_positions(product), atol=1e-9)
    np.testing.assert_array_equal(ds.probe, _probe())
    np.testing.assert_allclose(ds.diffraction.astype(np.float64) ** 2, counts, rtol=1e-5, atol=1e-12)
    assert ds.metadata["pixel_size_m"] == pytest.approx(DX)
    scale, residual = _residual(ds.diffraction, _our_forward(ds))
    assert scale == pytest.approx(PTYCHODUS_SCALE, rel=1e-3) and residual < 1e-4


def test_a_cxi_file_written_by_ptycho_reads_in_ptychodus_cxi_readers(tmp_path):
    ds = _our_dataset()
    path = save_dataset(ds, tmp_path / "ours.cxi")
    diffraction = CXIDiffractionFileReader().read(path)
    meta = diffraction.get_metadata()
    assert meta.detector_distance_m == pytest.approx(DISTANCE_M)
    assert meta.photon_energy_eV == pytest.approx(ENERGY_EV)
    assert meta.detector_pixel_geometry.width_m == pytest.approx(DETECTOR_PIXEL_M)
    counts = np.concatenate([array.get_patterns() for array in diffraction])
    np.testing.assert_allclose(counts, ds.diffraction.astype(np.float64) ** 2, rtol=1e-6)
    product = CXIProductFileIO().read(path)
    np.testing.assert_allclose(_expected_positions(product), ds.positions, atol=1e-9)
    np.testing.assert_array_equal(product.probes.get_array()[0, 0], ds.probe)
    theirs = np.sqrt(generate_diffraction_data(product).get_patterns())
    scale, residual = _residual(theirs, ds.diffraction)
    assert scale == pytest.approx(PTYCHODUS_SCALE, rel=1e-3) and residual < 1e-4
