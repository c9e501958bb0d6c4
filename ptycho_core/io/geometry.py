"""Far-field geometry: photon energy, detector distance and pixel size -> the object pixel size.

Files in the field's formats (CXI, Ptychodus) give positions in metres; the dataset contract
(docs/design.md#dataset) wants them in object pixels. One far-field relation links the two:

    object pixel size  dx = wavelength * distance / (N * detector pixel size)
    wavelength         = h c / E

Loaders convert once with these functions and record the geometry in `metadata`
(`pixel_size_m`, `energy_eV`, `distance_m`, `detector_pixel_size_m`); writers read it back.
A dataset without geometry (a simulation) is written with `DEFAULT_GEOMETRY`, and the file
says so (`metadata["geometry"] = "assumed"`).
"""

from __future__ import annotations

from dataclasses import dataclass

#: h * c in eV * m (CODATA 2018, exact).
HC_EV_M = 1.239841984e-6
#: One electronvolt in joules (exact).
EV_J = 1.602176634e-19

GEOMETRY_KEYS = ("pixel_size_m", "energy_eV", "distance_m", "detector_pixel_size_m")


@dataclass(frozen=True)
class Geometry:
    """A far-field geometry in SI units (energy in eV); `pixel_size_m` is the object pixel."""

    energy_eV: float  # noqa: N815 (unit in the name)
    distance_m: float
    detector_pixel_size_m: float
    patch_size: int

    @property
    def wavelength_m(self) -> float:
        return HC_EV_M / self.energy_eV

    @property
    def pixel_size_m(self) -> float:
        return object_pixel_size(self.wavelength_m, self.distance_m, self.patch_size, self.detector_pixel_size_m)

    def as_metadata(self) -> dict:
        return {
            "pixel_size_m": self.pixel_size_m,
            "energy_eV": self.energy_eV,
            "distance_m": self.distance_m,
            "detector_pixel_size_m": self.detector_pixel_size_m,
        }


#: Written when a dataset carries no geometry: 8 keV photons, 1 m to a 75 um pixel detector.
DEFAULT_ENERGY_EV = 8000.0
DEFAULT_DISTANCE_M = 1.0
DEFAULT_DETECTOR_PIXEL_M = 75e-6


def object_pixel_size(wavelength_m: float, distance_m: float, n: int, detector_pixel_m: float) -> float:
    """Object pixel size in metres: wavelength * distance / (N * detector pixel size)."""
    return wavelength_m * distance_m / (n * detector_pixel_m)


def wavelength_from_energy(energy_eV: float) -> float:  # noqa: N803
    return HC_EV_M / energy_eV


def energy_from_wavelength(wavelength_m: float) -> float:
    return HC_EV_M / wavelength_m


def of_dataset(metadata: dict, patch_size: int) -> tuple[Geometry, bool]:
    """(the dataset's geometry, whether it was assumed): from `metadata` when it has energy,
    distance and detector pixel size, else DEFAULT_GEOMETRY for this patch size."""
    try:
        geometry = Geometry(
            float(metadata["energy_eV"]),
            float(metadata["distance_m"]),
            float(metadata["detector_pixel_size_m"]),
            patch_size,
        )
    except (KeyError, TypeError, ValueError):
        return Geometry(DEFAULT_ENERGY_EV, DEFAULT_DISTANCE_M, DEFAULT_DETECTOR_PIXEL_M, patch_size), True
    if min(geometry.energy_eV, geometry.distance_m, geometry.detector_pixel_size_m) <= 0:
        return Geometry(DEFAULT_ENERGY_EV, DEFAULT_DISTANCE_M, DEFAULT_DETECTOR_PIXEL_M, patch_size), True
    return geometry, False
