"""Detector preprocessing (--crop, --bin): the forward model still explains the data afterwards."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ptycho_core import physics, preprocess
from ptycho_core.data import Dataset
from ptycho_core.errors import DataError

M = 64


def _bandlimited(shape, cutoff, rng):
    """A real field whose spectrum lies within |k| < cutoff cycles/pixel, max |f| = 1."""
    ky, kx = np.fft.fftfreq(shape[0])[:, None], np.fft.fftfreq(shape[1])[None, :]
    keep = (np.abs(ky) < cutoff) & (np.abs(kx) < cutoff)
    spectrum = np.zeros(shape, complex)
    spectrum[keep] = rng.normal(size=keep.sum()) + 1j * rng.normal(size=keep.sum())
    field = np.fft.ifft2(spectrum).real
    return field / np.abs(field).max()


def _scan(probe, seed=0):
    """Noise-free data of a smooth 256 x 256 object on a raster (steps of 8: whole pixels after /2)."""
    rng = np.random.default_rng(seed)
    obj = (1 + 0.3 * _bandlimited((256, 256), 0.12, rng)) * np.exp(0.5j * _bandlimited((256, 256), 0.12, rng))
    obj = obj.astype(np.complex64)
    axis = np.arange(40, 216, 8.0)
    pos = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    amp = physics.forward(probe, physics.extract(obj, pos, M))
    meta = {"pixel_size_m": 1e-8, "detector_pixel_size_m": 75e-6, "source": "test"}
    return Dataset(amp.astype(np.float32), pos, probe.astype(np.complex64), obj, metadata=meta)


def _relative_error(ds) -> float:
    predicted = physics.forward(ds.probe, physics.extract(ds.object, ds.positions, ds.patch_size))
    return float(np.linalg.norm(predicted - ds.diffraction) / np.linalg.norm(ds.diffraction))


def test_crop_keeps_the_forward_model_and_converts_pixel_size_positions_and_probe():
    yy, xx = np.mgrid[:M, :M] - M / 2
    wide = np.exp(-(yy**2 + xx**2) / 72.0) * np.exp(0.01j * (yy**2 + xx**2))
    # A probe whose spectrum fits in the central 16 frequencies: the crop keeps all of it.
    spectrum = np.fft.fftshift(np.fft.fft2(wide, norm="ortho"))
    spectrum[np.abs(yy) >= 8] = 0
    spectrum[:, np.abs(xx[0]) >= 8] = 0
    probe = np.fft.ifft2(np.fft.ifftshift(spectrum), norm="ortho")
    ds = _scan(probe)
    cropped = preprocess.crop(ds, 32)
    assert cropped.patch_size == 32 and cropped.probe.shape == (32, 32)
    np.testing.assert_allclose(cropped.positions, ds.positions / 2)
    assert cropped.metadata["pixel_size_m"] == pytest.approx(2e-8)
    assert cropped.metadata["preprocess"] == [
        {"op": "crop", "from": 64, "to": 32, "object_pixel_factor": 2.0, "positions_factor": 0.5}
    ]
    assert cropped.object.shape == (128, 128)
    assert _relative_error(cropped) < 5e-3  # exact up to the object's small aliasing


def test_bin_keeps_the_forward_model_within_the_oversampling_error():
    yy, xx = np.mgrid[:M, :M] - M / 2
    for k, tolerance in ((2, 0.03), (4, 0.08)):
        width = M / k / 8  # the probe well inside the M/K window that binning keeps
        probe = np.exp(-(yy**2 + xx**2) / (2 * width**2)) * np.exp(0.05j * (yy**2 + xx**2))
        ds = _scan(probe)
        binned = preprocess.bin_patterns(ds, k)
        assert binned.patch_size == M // k
        np.testing.assert_array_equal(binned.positions, ds.positions)  # the object pixel is unchanged
        assert binned.metadata["detector_pixel_size_m"] == pytest.approx(75e-6 * k)
        assert binned.metadata["pixel_size_m"] == pytest.approx(1e-8)
        step = binned.metadata["preprocess"][-1]
        assert step["op"] == "bin" and step["factor"] == k and step["probe_energy_outside"] < 1e-6
        # Counts add: every pattern keeps its total intensity.
        np.testing.assert_allclose(
            (binned.diffraction.astype(np.float64) ** 2).sum((1, 2)),
            (ds.diffraction.astype(np.float64) ** 2).sum((1, 2)),
            rtol=1e-4,
        )
        assert _relative_error(binned) < tolerance
        # Without the centring ramp in the probe the model is several times worse: the ramp matters.
        n = M // k
        centre = slice(M // 2 - n // 2, M // 2 + n // 2)
        plain = dataclasses.replace(binned, probe=ds.probe[centre, centre])
        assert _relative_error(plain) > 2 * _relative_error(binned)


def test_crop_then_bin_records_both_steps_in_order():
    yy, xx = np.mgrid[:M, :M] - M / 2
    probe = np.exp(-(yy**2 + xx**2) / 8.0).astype(np.complex64)
    ds = _scan(probe)
    out = preprocess.apply(ds, 32, 2)
    assert out.patch_size == 16
    assert [s["op"] for s in out.metadata["preprocess"]] == ["crop", "bin"]


@pytest.mark.parametrize(("crop", "bin_by"), [(33, None), (128, None), (None, 3), (None, 64)])
def test_impossible_crop_or_bin_is_a_data_error(crop, bin_by):
    yy, xx = np.mgrid[:M, :M] - M / 2
    ds = _scan(np.exp(-(yy**2 + xx**2) / 8.0))
    with pytest.raises(DataError, match="--crop|--bin"):
        preprocess.apply(ds, crop, bin_by)


def test_crop_and_bin_options_on_convert_record_the_preprocessing(tmp_path, invoke, tiny_pair):
    from ptycho_core.io import load_dataset, save_dataset

    src = save_dataset(tiny_pair[0], tmp_path / "scan.npz")
    result = invoke("convert", src, tmp_path / "small.npz", "--crop", "8")
    assert result.exit_code == 0, result.output
    small = load_dataset(tmp_path / "small.npz")
    assert small.patch_size == 8 and small.metadata["preprocess"][0]["op"] == "crop"
    result = invoke("convert", src, tmp_path / "binned.npz", "--bin", "2")
    assert result.exit_code == 0, result.output
    assert load_dataset(tmp_path / "binned.npz").metadata["preprocess"][0]["op"] == "bin"
    result = invoke("convert", src, tmp_path / "bad.npz", "--crop", "7")
    assert result.exit_code == 2 and "--crop 7" in result.output
