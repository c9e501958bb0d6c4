"""`SimConfig`, every setting of a simulated dataset declared once, and `DEFAULT_SIM`.

Standard library only (the CLI builds `--sim`'s help from these declarations without numpy); the
simulation itself, and why each default is what it is, live in `ptycho_core.simulate`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ptycho_core.errors import UsageError
from ptycho_core.settings import Setting, check_fields, declared, parse_items, setting

OBJECTS = ("lines", "grf")
PROBES = ("aberrated", "focused", "disk", "file")
PHASES = ("materials", "independent", "amplitude", "none")
#: phase="materials": the second material's thickness weight in the amplitude and in the phase
#: texture (the first material's weight is 1 in both): it shifts the phase far more than it absorbs.
MATERIALS = (0.25, 0.75)


#: The most values (patterns x patch_size**2) a simulation may make: 2**28 float32 amplitudes, 1 GiB
#: (complex intermediates take a few times that); a larger request is refused before any work.
MAX_SIM_VALUES = 2**28
_RADIANS = 1e3  # |defocus|, |astigmatism|, |coma| above this many radians is no optic


@dataclass(frozen=True)
class SimConfig:
    """Everything that defines a simulated dataset. Lengths are in pixels.

    Every field is a declared `Setting` (type, range, help): `ptycho simulate` and `--sim
    KEY=VALUE` offer exactly these, and a value out of range is one line and exit 2.
    """

    object: str = setting("lines", "Synthetic object texture.", choices=OBJECTS)
    probe: str = setting("aberrated", "Probe model (file: the probe of probe_file).", choices=PROBES)
    patch_size: int = setting(32, "Pattern side N in pixels (even).", min=4, max=1024)
    object_size: int = setting(128, "Object side in pixels (> patch_size + 1).", min=6, max=4096)
    train_objects: int = setting(3, "Independent training objects side by side.", min=1, max=16)
    step: float = setting(4.0, "Raster scan step in pixels.", min=0.25, max=4096.0)
    jitter: float = setting(0.5, "Uniform position jitter in pixels (+-).", min=0.0, max=4096.0)
    nphotons: float = setting(1e5, "Mean total counts per training pattern.", min=1.0, max=1e12)
    probe_radius: float = setting(0.0, "Probe radius in pixels (0: patch_size / 4).", min=0.0, max=4096.0)
    defocus: float = setting(
        0.0,
        "Defocus in radians at the pupil edge (0: what spreads the probe to probe_radius).",
        min=-_RADIANS,
        max=_RADIANS,
    )
    astigmatism: float = setting(2.0, "Astigmatism in radians at the pupil edge.", min=-_RADIANS, max=_RADIANS)
    coma: float = setting(1.5, "Coma in radians at the pupil edge.", min=-_RADIANS, max=_RADIANS)
    pupil_radius: float = setting(
        0.0, "Pupil radius in detector pixels (0: a quarter of the patch size).", min=0.0, max=4096.0
    )
    probe_file: str = setting("", "probe=file: the dataset whose probe is used, resampled to patch_size.")
    phase: str = setting("materials", "How the phase relates to the amplitude.", choices=PHASES)
    phase_max: float = setting(math.pi / 2, "Phase span in radians.", min=0.0, max=2 * math.pi)
    seed: int = setting(1, "Object and scan seed of the training data.", min=0, max=2**32 - 1)
    test_seed: int = setting(2, "Object and scan seed of the test data.", min=0, max=2**32 - 1)

    def __post_init__(self):
        check_fields(self)
        if (self.probe == "file") != bool(self.probe_file):
            raise UsageError("probe='file' and probe_file=PATH go together (the probe of that dataset file)")
        if self.patch_size % 2:
            raise UsageError(f"patch size must be an even number >= 4, not {self.patch_size}")
        if self.object_size < self.patch_size + 2:
            raise UsageError(f"object size {self.object_size} must exceed the patch size {self.patch_size} + 1")
        if 0 < self.pupil_radius < 0.5:
            raise UsageError(f"pupil_radius: {self.pupil_radius!r} pixels passes no light (0, or at least 0.5)")
        per_side = (self.object_size - self.patch_size - 1) / self.step + 1
        values = (1 + self.train_objects) * per_side**2 * self.patch_size**2
        if values > MAX_SIM_VALUES:
            raise UsageError(
                f"this simulation would make {values:.3g} pattern values (limit {MAX_SIM_VALUES:.3g}): "
                "raise step or lower object_size, train_objects or patch_size"
            )

    def replace(self, **changes) -> SimConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def settings(cls) -> list[Setting]:
        """Every setting, declared once (what `--sim key=value` accepts and the CLI's help lists)."""
        return declared(cls)

    def with_strings(self, settings: dict[str, str]) -> SimConfig:
        """A copy with `settings` {name: text} parsed by each field's Setting (UsageError on bad input)."""
        return self.replace(**parse_items(self.settings(), settings, "simulation setting"))


DEFAULT_SIM = SimConfig()
