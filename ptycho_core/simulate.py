"""Synthetic objects, probes and scans; `DEFAULT_SIM`, the one definition of the default data.

`ptycho simulate`, `ptycho compare` with no data and every figure quoted in a closing note use
`DEFAULT_SIM`. Train and test objects come from different seeds and share one probe, scaled once
so that the mean total counts per training pattern equal `nphotons`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ptycho_core import physics
from ptycho_core.data import Dataset
from ptycho_core.errors import UsageError

OBJECTS = ("lines", "grf")
PROBES = ("disk", "focused")


@dataclass(frozen=True)
class SimConfig:
    """Everything that defines a simulated dataset. Lengths are in pixels."""

    object: str = "lines"
    probe: str = "disk"
    patch_size: int = 32
    object_size: int = 128
    step: float = 4.0
    jitter: float = 0.5
    nphotons: float = 1e5
    probe_radius: float = 0.0  # 0: patch_size / 4
    phase_from_amplitude: bool = True
    seed: int = 1  # object and scan seed of the training data
    test_seed: int = 2  # object and scan seed of the test data
    probe_seed: int = 0

    def __post_init__(self):
        if self.object not in OBJECTS:
            raise UsageError(f"object must be one of {OBJECTS}, not {self.object!r}")
        if self.probe not in PROBES:
            raise UsageError(f"probe must be one of {PROBES}, not {self.probe!r}")
        if self.patch_size < 4 or self.patch_size % 2:
            raise UsageError(f"patch size must be an even number >= 4, not {self.patch_size}")
        if self.object_size < self.patch_size + 2:
            raise UsageError(f"object size {self.object_size} must exceed the patch size {self.patch_size} + 1")
        if self.step <= 0 or self.nphotons <= 0:
            raise UsageError("step and nphotons must be positive")

    def replace(self, **changes) -> SimConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


DEFAULT_SIM = SimConfig()


# --- objects ----------------------------------------------------------------------------------


def _normalise(img: np.ndarray) -> np.ndarray:
    img = img - img.min()
    top = img.max()
    return img / top if top > 0 else img


def lines_object(size: int, rng: np.random.Generator) -> np.ndarray:
    """Random lines on a 2x canvas, blurred at several widths and summed, cropped; in [0, 1]."""
    from scipy.ndimage import gaussian_filter
    from skimage.draw import line

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


def make_object(kind: str, size: int, rng: np.random.Generator, phase_from_amplitude: bool = True) -> np.ndarray:
    """A complex64 (size, size) object: amplitude in [0.3, 1], phase in [0, pi/2] (or 0)."""
    texture = lines_object(size, rng) if kind == "lines" else grf_object(size, rng)
    amplitude = 0.3 + 0.7 * texture
    phase = (np.pi / 2) * texture if phase_from_amplitude else np.zeros_like(texture)
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


# --- probes -----------------------------------------------------------------------------------


def disk_probe(n: int, radius: float) -> np.ndarray:
    """An ideal disk of `radius` pixels centred at (n//2, n//2), one-pixel soft edge."""
    yy, xx = np.mgrid[:n, :n] - n // 2
    r = np.hypot(yy, xx)
    return np.clip(radius + 0.5 - r, 0.0, 1.0).astype(np.complex64)


def focused_probe(n: int, radius: float, defocus: float = 3.0) -> np.ndarray:
    """A focused probe: a pupil disk with quadratic phase (`defocus` radians at the pupil edge)
    propagated to the sample plane; peak |P| = 1, with phase curvature."""
    pupil_radius = n / (2.0 * max(radius, 1.0)) * 1.22
    ky, kx = np.mgrid[:n, :n] - n // 2
    k2 = (ky**2 + kx**2) / pupil_radius**2
    pupil = (k2 <= 1.0) * np.exp(1j * defocus * k2)
    probe = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(pupil)))
    return (probe / np.abs(probe).max()).astype(np.complex64)


def make_probe(kind: str, n: int, radius: float) -> np.ndarray:
    return disk_probe(n, radius) if kind == "disk" else focused_probe(n, radius)


# --- scans ------------------------------------------------------------------------------------


def raster_scan(object_size: int, n: int, step: float, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """(y, x) raster positions with uniform seeded jitter, keeping every patch inside the object."""
    lo, hi = n / 2, object_size - n / 2 - 1
    axis = np.arange(lo, hi + 1e-9, step)
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    pos = np.stack([yy.ravel(), xx.ravel()], axis=1)
    pos = pos + rng.uniform(-jitter, jitter, size=pos.shape)
    return np.clip(pos, lo, hi).astype(np.float64)


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

    The probe is scaled once, on the training object, so the mean total counts per pattern equal
    `cfg.nphotons`; the test data use that same probe.
    """
    n = cfg.patch_size
    radius = cfg.probe_radius or n / 4
    probe = make_probe(cfg.probe, n, radius)
    rng_train = np.random.default_rng(cfg.seed)
    rng_test = np.random.default_rng(cfg.test_seed)
    obj_train = make_object(cfg.object, cfg.object_size, rng_train, cfg.phase_from_amplitude)
    obj_test = make_object(cfg.object, cfg.object_size, rng_test, cfg.phase_from_amplitude)
    pos_train = raster_scan(cfg.object_size, n, cfg.step, cfg.jitter, rng_train)
    pos_test = raster_scan(cfg.object_size, n, cfg.step, cfg.jitter, rng_test)
    clean = physics.forward(probe, physics.extract(obj_train, pos_train, n))
    mean_counts = float((clean.astype(np.float64) ** 2).sum(axis=(1, 2)).mean())
    probe = (probe * np.sqrt(cfg.nphotons / mean_counts)).astype(np.complex64)
    note = {"probe_scaled_to_nphotons": True}
    train = _measure(obj_train, pos_train, probe, rng_train, cfg, "train", note)
    test = _measure(obj_test, pos_test, probe, rng_test, cfg, "test", note)
    return train, test


def simulate(cfg: SimConfig = DEFAULT_SIM) -> Dataset:
    """One simulated dataset (the training half of `simulate_pair`)."""
    return simulate_pair(cfg)[0]
