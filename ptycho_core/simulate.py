"""Synthetic objects, probes and scans; `DEFAULT_SIM`, the one definition of the default data.

`ptycho simulate`, `ptycho compare` with no data and every figure quoted in a closing note use
`DEFAULT_SIM`. Train and test objects come from different seeds and share one probe, scaled once
so that the mean total counts per training pattern equal `nphotons`. Every field of `SimConfig`
(declared, with its type and range, in `ptycho_core.simconfig`) can be set from the command line:
`--sim KEY=VALUE` in `ptycho simulate` and `ptycho compare`.

Why each default (issue 9: data that look like an experiment):
- `probe="aberrated"`: a defocused focusing optic with astigmatism (2 rad) and coma (1.5 rad) at
  the pupil edge. Real probes are never point-symmetric; with a symmetric probe (the ideal disk)
  a single pattern cannot tell an object patch from its twin, and every gridsize-1 network
  measured here learned the twin for about half its patches (twin share 0.52, fno). With this
  probe the twin needs an object outside the physical range and the measured twin share is 0.
  `probe="file"` with `probe_file=PATH` uses a dataset's own probe, resampled to `patch_size`.
- `phase="materials"`: two materials with different absorption-to-phase ratios, so amplitude and
  phase are different mixtures (0.7/0.3 and 0.3/0.7) of two independent textures, as in real
  samples; `amplitude` copies the amplitude's texture (the PtychoPINN convention), `independent`
  uses an unrelated texture (the hardest case), `none` a pure absorber. Phase spans
  [0, `phase_max` = pi/2].
- `train_objects=3`: the training field of view is three independent 128 x 128 objects side by
  side (2,112 training patterns), so a network cannot memorise one patch of lines; the test
  object is a fourth.
- `patch_size=32`, `object_size=128`, `step=4` (87 % linear overlap), `jitter=0.5`: small enough
  that every generator trains in minutes on two CPU cores, dense enough for the overlap constraint.
- `nphotons=1e5` counts per pattern: a typical synchrotron exposure; the setting takes any value in
  [1, 1e12] (1e3 for a low-dose electron or lab-source scan, 1e9 for a bright undulator).
"""

from __future__ import annotations

import math

import numpy as np

from ptycho_core import physics
from ptycho_core.data import Dataset
from ptycho_core.errors import UsageError
from ptycho_core.io import load_dataset

# SimConfig and DEFAULT_SIM are declared in the light simconfig module; they are used and offered here too
from ptycho_core.simconfig import DEFAULT_SIM, MATERIALS, OBJECTS, PHASES, PROBES, SimConfig  # noqa: F401

# --- objects ----------------------------------------------------------------------------------


def _normalise(img: np.ndarray) -> np.ndarray:
    img = img - img.min()
    top = img.max()
    return img / top if top > 0 else img


def lines_object(size: int, rng: np.random.Generator) -> np.ndarray:
    """Random lines on a 2x canvas, blurred at several widths and summed, cropped; in [0, 1]."""
    from scipy.ndimage import gaussian_filter  # lazy: import time (scipy), only this function needs it
    from skimage.draw import line  # lazy: import time (scikit-image), only this function needs it

    big = 2 * size
    canvas = np.zeros((big, big))
    for _ in range(max(8, size // 3)):
        r0, c0, r1, c1 = rng.integers(0, big, size=4)
        rr, cc = line(int(r0), int(c0), int(r1), int(c1))
        canvas[rr, cc] += 1.0
    blurred = sum(gaussian_filter(canvas, sigma) * sigma for sigma in (0.7, 1.5, 3.0))
    start = size // 2
    return _normalise(blurred[start : start + size, start : start + size])


def grf_object(size: int, rng: np.random.Generator, correlation: float = 6.0) -> np.ndarray:
    """A Gaussian random field with correlation length `correlation` pixels; in [0, 1]."""
    noise = rng.normal(size=(size, size))
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    filt = np.exp(-2 * (np.pi * correlation) ** 2 * (fy**2 + fx**2))
    return _normalise(np.real(np.fft.ifft2(np.fft.fft2(noise) * filt)))


def texture(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A (size, size) texture in [0, 1]: `lines` or `grf`."""
    return lines_object(size, rng) if kind == "lines" else grf_object(size, rng)


def make_object(
    kind: str,
    size: int,
    rng: np.random.Generator,
    phase: str = "independent",
    phase_max: float = math.pi / 2,
    tiles: int = 1,
) -> np.ndarray:
    """A complex64 (size, tiles * size) object: `tiles` independent squares side by side.

    Amplitude 0.3 + 0.7 * texture, in [0.3, 1]. Phase in [0, phase_max]: from a second, independent
    texture ("independent": absorption and phase differ, as in real samples), from the amplitude's
    texture ("amplitude": the PtychoPINN convention) or 0 ("none").
    """
    squares = []
    for _ in range(tiles):
        amp_texture = texture(kind, size, rng)
        if phase in ("independent", "materials"):
            phase_texture = texture(kind, size, rng)
            if phase == "materials":
                amp_texture, phase_texture = (
                    _normalise(amp_texture + MATERIALS[0] * phase_texture),
                    _normalise(amp_texture + MATERIALS[1] * phase_texture),
                )
        else:
            phase_texture = amp_texture if phase == "amplitude" else np.zeros_like(amp_texture)
        squares.append((0.3 + 0.7 * amp_texture) * np.exp(1j * phase_max * phase_texture))
    return np.concatenate(squares, axis=1).astype(np.complex64)


# --- probes -----------------------------------------------------------------------------------


def disk_probe(n: int, radius: float) -> np.ndarray:
    """An ideal disk of `radius` pixels centred at (n//2, n//2), one-pixel soft edge."""
    yy, xx = np.mgrid[:n, :n] - n // 2
    r = np.hypot(yy, xx)
    return np.clip(radius + 0.5 - r, 0.0, 1.0).astype(np.complex64)


def focused_probe(n: int, radius: float, defocus: float = 3.0) -> np.ndarray:
    """A focused probe: a pupil disk with quadratic phase (`defocus` radians at the pupil edge)
    propagated to the sample plane; peak |P| = 1, with phase curvature. Point-symmetric."""
    pupil_radius = n / (2.0 * max(radius, 1.0)) * 1.22
    ky, kx = np.mgrid[:n, :n] - n // 2
    k2 = (ky**2 + kx**2) / pupil_radius**2
    pupil = (k2 <= 1.0) * np.exp(1j * defocus * k2)
    probe = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(pupil)))
    return (probe / np.abs(probe).max()).astype(np.complex64)


def aberrated_probe(
    n: int,
    radius: float,
    defocus: float = 0.0,
    astigmatism: float = 2.0,
    coma: float = 1.5,
    pupil_radius: float = 0.0,
) -> np.ndarray:
    """A defocused focusing-optic probe with astigmatism and coma, as a zone plate or KB mirror gives.

    The pupil (aperture) is a disk of `pupil_radius` detector pixels (0: n/4, a bright-field disk
    half the detector wide). Its phase, in radians at the pupil edge (rho = 1): defocus * rho^2 + astigmatism *
    rho^2 cos(2 theta) + coma * (3 rho^3 - 2 rho) cos(theta - pi/6). `defocus` 0 chooses the defocus
    whose geometric spot radius is `radius` pixels (phi = pi * R_pupil * radius / n). Coma makes |P|
    asymmetric under r -> -r, so the twin of an object patch needs an object outside the physical
    range (see plugins/ptycho_fno/README.md). Peak |P| = 1.
    """
    pupil_radius = pupil_radius or n / 4.0
    defocus = defocus or math.pi * pupil_radius * radius / n
    ky, kx = np.mgrid[:n, :n] - n // 2
    rho = np.hypot(ky, kx) / pupil_radius
    theta = np.arctan2(ky, kx)
    aberration = (
        defocus * rho**2
        + astigmatism * rho**2 * np.cos(2 * theta)
        + coma * (3 * rho**3 - 2 * rho) * np.cos(theta - math.pi / 6)
    )
    aperture = np.clip(pupil_radius + 0.5 - np.hypot(ky, kx), 0.0, 1.0)
    pupil = aperture * np.exp(1j * aberration)
    probe = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(pupil)))
    return (probe / np.abs(probe).max()).astype(np.complex64)


def resample_probe(probe: np.ndarray, n: int) -> np.ndarray:
    """A complex (M, M) probe resampled to (n, n) (bicubic on real and imaginary parts), so that it
    spans the same fraction of the patch; peak |P| = 1."""
    from scipy.ndimage import zoom  # lazy: import time (scipy), only this function needs it

    probe = np.asarray(probe)
    if probe.ndim != 2 or probe.shape[0] != probe.shape[1]:
        raise UsageError(f"a probe must be square (M, M), got shape {probe.shape}")
    if probe.shape[0] != n:
        factor = n / probe.shape[0]
        probe = zoom(probe.real, factor, order=3) + 1j * zoom(probe.imag, factor, order=3)
        probe = probe[:n, :n]
    top = np.abs(probe).max()
    if not top > 0:
        raise UsageError("the probe is zero everywhere")
    return (probe / top).astype(np.complex64)


def probe_from_file(path: str, n: int) -> np.ndarray:
    """The probe of a dataset file (any installed loader), resampled to (n, n)."""
    return resample_probe(load_dataset(path).probe, n)


def make_probe(cfg: SimConfig) -> np.ndarray:
    """The unscaled probe (peak |P| = 1) that `cfg` describes."""
    n = cfg.patch_size
    radius = cfg.probe_radius or n / 4
    if cfg.probe == "disk":
        return disk_probe(n, radius)
    if cfg.probe == "focused":
        return focused_probe(n, radius)
    if cfg.probe == "file":
        return probe_from_file(cfg.probe_file, n)
    return aberrated_probe(n, radius, cfg.defocus, cfg.astigmatism, cfg.coma, cfg.pupil_radius)


# --- scans ------------------------------------------------------------------------------------


def raster_scan(
    object_size: int, n: int, step: float, jitter: float, rng: np.random.Generator, width: int = 0
) -> np.ndarray:
    """(y, x) raster positions with uniform seeded jitter, keeping every patch inside the object
    (object_size rows, `width` columns; 0: square)."""
    width = width or object_size
    axes = [np.arange(n / 2, side - n / 2 - 1 + 1e-9, step) for side in (object_size, width)]
    yy, xx = np.meshgrid(*axes, indexing="ij")
    pos = np.stack([yy.ravel(), xx.ravel()], axis=1)
    pos = pos + rng.uniform(-jitter, jitter, size=pos.shape)
    hi = np.array([object_size, width]) - n / 2 - 1
    return np.clip(pos, n / 2, hi).astype(np.float64)


# --- datasets ---------------------------------------------------------------------------------


def _measure(obj, positions, probe, rng, cfg: SimConfig, role: str, scale_note: dict) -> Dataset:
    patches = physics.extract(obj, positions, cfg.patch_size)
    amplitude = physics.forward(probe, patches)
    noisy = physics.poisson(amplitude, rng)
    meta = {
        "source": f"simulate:{cfg.object}",
        "role": role,
        "counts_scale": 1.0,
        "nphotons": cfg.nphotons,
        "simulation": cfg.to_dict(),
        **scale_note,
    }
    return Dataset(diffraction=noisy, positions=positions, probe=probe, object=obj, metadata=meta)


def simulate_pair(cfg: SimConfig = DEFAULT_SIM) -> tuple[Dataset, Dataset]:
    """Train and test datasets: different objects and scans, the same probe.

    The training object is `cfg.train_objects` independent squares side by side, the test object
    one square. The probe is scaled once, on the training object, so the mean total counts per
    pattern equal `cfg.nphotons`; the test data use that same probe.
    """
    n = cfg.patch_size
    probe = make_probe(cfg)
    rng_train = np.random.default_rng(cfg.seed)
    rng_test = np.random.default_rng(cfg.test_seed)
    obj_train = make_object(cfg.object, cfg.object_size, rng_train, cfg.phase, cfg.phase_max, cfg.train_objects)
    obj_test = make_object(cfg.object, cfg.object_size, rng_test, cfg.phase, cfg.phase_max)
    pos_train = raster_scan(cfg.object_size, n, cfg.step, cfg.jitter, rng_train, obj_train.shape[1])
    pos_test = raster_scan(cfg.object_size, n, cfg.step, cfg.jitter, rng_test)
    clean = physics.forward(probe, physics.extract(obj_train, pos_train, n))
    mean_counts = float((clean.astype(np.float64) ** 2).sum(axis=(1, 2)).mean())
    if not (mean_counts > 0 and math.isfinite(mean_counts)):
        raise UsageError(f"the probe of {cfg.probe!r} puts no light on the object: check probe_radius and pupil_radius")
    probe = (probe * np.sqrt(cfg.nphotons / mean_counts)).astype(np.complex64)
    note = {"probe_scaled_to_nphotons": True}
    train = _measure(obj_train, pos_train, probe, rng_train, cfg, "train", note)
    test = _measure(obj_test, pos_test, probe, rng_test, cfg, "test", note)
    return train, test


def simulate(cfg: SimConfig = DEFAULT_SIM) -> Dataset:
    """One simulated dataset (the training half of `simulate_pair`)."""
    return simulate_pair(cfg)[0]
