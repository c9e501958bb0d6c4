"""Detector preprocessing: a centred crop or a binning of the patterns, with the object pixel
size, the probe and the positions converted so that the forward model still holds.

The far-field relation (`ptycho_core.io.geometry`): object pixel dx = wavelength * distance /
(N * detector pixel). Our forward model is A = |fftshift(fft2(P o, norm="ortho"))|.

Crop to N of M patterns (`crop`): the detector keeps its pixel, so the object pixel grows by r = M / N
(the real-space field of view N * dx stays M * dx_old). Positions in object pixels scale by
N / M. The probe on the coarser grid is the inverse FFT of the centred N x N crop of its FFT
(ortho norms): its spectrum inside the crop is kept exactly, so a band-limited exit wave gives
exactly the cropped data (`tests/test_preprocess.py` simulates and checks this). A ground-truth
object is resampled the same way (Fourier crop; a constant object stays the same constant).

Bin by K (`bin_patterns`): K x K detector pixels are summed (counts: intensities add), so the
detector pixel grows by K and N becomes M / K: the object pixel is unchanged, positions are
unchanged, and the real-space field of view shrinks by K. The probe becomes the centred M / K
real-space crop of the probe (which must hold the probe: a probe with much energy outside it
cannot be binned this far; the share lost is recorded). Summing a K x K block whose first pixel
is the zero frequency moves the pattern's centre by (K - 1) / 2 original pixels; the probe carries
the matching linear phase ramp so that the object comes out without one. Binning is exact when
the exit wave is confined to the M / K window (the oversampled case); the test checks the
forward model to a stated tolerance.

`apply(ds, crop=N, bin=K)` crops first, then bins; every step is recorded in
`metadata["preprocess"]` and the geometry keys are updated.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ptycho_core.errors import DataError


def _centred(m: int, n: int) -> slice:
    lo = m // 2 - n // 2
    return slice(lo, lo + n)


def fourier_crop(field: np.ndarray, n: int) -> np.ndarray:
    """The (..., n, n) field whose ortho FFT is the centred n x n crop of `field`'s ortho FFT."""
    m = field.shape[-1]
    spectrum = np.fft.fftshift(np.fft.fft2(field, norm="ortho"), axes=(-2, -1))
    s = _centred(m, n)
    return np.fft.ifft2(np.fft.ifftshift(spectrum[..., s, s], axes=(-2, -1)), norm="ortho")


def resample_object(obj: np.ndarray, factor: float) -> np.ndarray:
    """An (H, W) object on pixels `factor` times larger (factor >= 1) by a Fourier crop that keeps
    its values' scale (a constant stays the same constant)."""
    h, w = obj.shape
    nh, nw = max(1, int(round(h / factor))), max(1, int(round(w / factor)))
    spectrum = np.fft.fftshift(np.fft.fft2(obj))
    kept = spectrum[_centred(h, nh), :][:, _centred(w, nw)]
    return np.fft.ifft2(np.fft.ifftshift(kept)) * (nh * nw) / (h * w)


def crop(ds, n: int):
    """The dataset with its patterns cropped to the centred n x n (see the module docstring)."""
    m = ds.patch_size
    if n % 2 or n < 2 or n > m:
        raise DataError(f"--crop {n}: must be an even size of at most the patterns' {m}")
    if n == m:
        return ds
    r = m / n
    s = _centred(m, n)
    mask = ds.mask if ds.mask is None else ds.mask[..., s, s]
    if mask is not None and not mask.any():
        raise DataError(f"--crop {n}: no valid detector pixel in the centred crop")
    obj = None if ds.object is None else resample_object(ds.object, r).astype(np.complex64)
    meta = dict(ds.metadata or {})
    if meta.get("pixel_size_m"):
        meta["pixel_size_m"] = float(meta["pixel_size_m"]) * r
    step = {"op": "crop", "from": m, "to": n, "object_pixel_factor": r, "positions_factor": 1 / r}
    meta["preprocess"] = list(meta.get("preprocess", [])) + [step]
    return dataclasses.replace(
        ds,
        diffraction=np.ascontiguousarray(ds.diffraction[:, s, s]),
        positions=ds.positions / r,
        probe=fourier_crop(ds.probe, n).astype(np.complex64),
        object=obj,
        mask=mask,
        metadata=meta,
        object_shape=None if ds.object_shape is None else tuple(max(1, int(round(v / r))) for v in ds.object_shape),
    )


def binned_probe(probe: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """(the centred M/K real-space crop of `probe` with the ramp that centres the binned pattern,
    the share of the probe's energy outside the crop)."""
    m = probe.shape[-1]
    n = m // k
    s = _centred(m, n)
    kept = probe[s, s]
    lost = 1.0 - float((np.abs(kept) ** 2).sum() / (np.abs(probe) ** 2).sum())
    # The binned pixel j sums fine frequencies M/2 + K j' .. + K - 1: its centre is (K - 1) / 2
    # fine pixels above the binned grid's; the same shift of the exit wave's spectrum is a ramp.
    shift = (k - 1) / 2
    j = np.arange(n) - n // 2
    ramp = np.exp(-2j * np.pi * shift * j / m)
    return (kept * ramp[:, None] * ramp[None, :]).astype(np.complex64), lost


def bin_patterns(ds, k: int):
    """The dataset with K x K detector pixels summed (see the module docstring)."""
    m = ds.patch_size
    if k < 1 or m % k or (m // k) % 2:
        raise DataError(f"--bin {k}: the patterns' side {m} must be a multiple of {k} giving an even size")
    if k == 1:
        return ds
    n = m // k
    counts = ds.diffraction.astype(np.float64) ** 2
    binned = counts.reshape(ds.n, n, k, n, k).sum(axis=(2, 4))
    mask = ds.mask
    if mask is not None:
        mask = mask.reshape(mask.shape[:-2] + (n, k, n, k)).all(axis=(-3, -1))
        if not mask.any():
            raise DataError(f"--bin {k}: no binned pixel has all its detector pixels valid")
    probe, lost = binned_probe(ds.probe, k)
    meta = dict(ds.metadata or {})
    if meta.get("detector_pixel_size_m"):
        meta["detector_pixel_size_m"] = float(meta["detector_pixel_size_m"]) * k
    step = {"op": "bin", "factor": k, "from": m, "to": n, "probe_energy_outside": lost}
    meta["preprocess"] = list(meta.get("preprocess", [])) + [step]
    return dataclasses.replace(
        ds,
        diffraction=np.sqrt(binned).astype(np.float32),
        probe=probe,
        mask=mask,
        metadata=meta,
    )


def apply(ds, crop_to: int | None = None, bin_by: int | None = None):
    """`ds` cropped to `crop_to` (centred), then binned by `bin_by`; validated. None: not done."""
    if crop_to:
        ds = crop(ds, int(crop_to))
    if bin_by and int(bin_by) > 1:
        ds = bin_patterns(ds, int(bin_by))
    return ds.validate(source="preprocessed data") if (crop_to or bin_by) else ds
