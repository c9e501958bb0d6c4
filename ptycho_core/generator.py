"""The generator runtime contract (DESIGN section 7): what a generator is given and returns.

    gen = factory(**options)
    gen.fit(train: TrainingSet, val: TrainingSet, config: TrainConfig, progress) -> History
    gen.predict(diffraction (B, C, N, N) float32, offsets (B, C, 2)) -> (B, C, N, N) complex64
    gen.save(directory)   writes weights (+ optional JSON-able `extra`) only
    gen.load(directory)   on a freshly built instance

Inputs are raw amplitudes in contract units; the generator applies `TrainingSet.input_scale`
itself. `predict` returns per-channel patches before any overlap averaging, in contract units.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ptycho_core.errors import UsageError

if TYPE_CHECKING:  # numpy only for annotations: this module is imported by the light CLI
    import numpy as np

ProgressCallback = Callable[[dict], None]

LOSSES = ("poisson", "mae")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16")


@dataclass
class TrainConfig:
    """Training budget and settings, the same for every generator of a comparison.

    batch_size counts groups; timeout is in seconds (0: none); patience counts epochs without
    validation improvement before early stop (0: never stop early).
    """

    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    loss: str = "poisson"
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    val_fraction: float = 0.1
    patience: int = 5
    clip_norm: float = 1.0
    timeout: float = 0.0

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise UsageError(f"loss must be one of {LOSSES}, not {self.loss!r}")
        if self.device not in DEVICES:
            raise UsageError(f"device must be one of {DEVICES}, not {self.device!r}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise UsageError("epochs and batch_size must be at least 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UsageError(f"lr must be a positive number, not {self.lr}")
        if not 0 <= self.val_fraction < 1:
            raise UsageError(f"val_fraction must be in [0, 1), not {self.val_fraction}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class TrainingSet:
    """Grouped training (or validation) data handed to `fit`.

    diffraction (B, C, N, N) float32 raw amplitudes; positions (B, C, 2) float64 absolute (y, x);
    offsets (B, C, 2) float64 from the group centroid; probe (N, N) complex64; mask (N, N) or
    (B, C, N, N) bool or None; input_scale = 1 / r (training rms amplitude); s0 = rms object
    amplitude implied by the data; canvas_size = side M of the overlap-constraint canvas;
    gt_patches (B, C, N, N) complex64 only for supervised generators.
    """

    diffraction: np.ndarray
    positions: np.ndarray
    offsets: np.ndarray
    probe: np.ndarray
    input_scale: float
    s0: float
    canvas_size: int
    mask: np.ndarray | None = None
    gt_patches: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def n_groups(self) -> int:
        return int(self.diffraction.shape[0])

    @property
    def gridsize(self) -> int:
        return int(round(math.sqrt(self.diffraction.shape[1])))

    @property
    def channels(self) -> int:
        return int(self.diffraction.shape[1])

    @property
    def patch_size(self) -> int:
        return int(self.diffraction.shape[-1])

    def subset(self, index) -> TrainingSet:
        """The groups at `index` (an index array or slice), sharing probe and scales."""
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        mask = self.mask if self.mask is None or self.mask.ndim == 2 else self.mask[index]
        return dataclasses.replace(
            self,
            diffraction=self.diffraction[index],
            positions=self.positions[index],
            offsets=self.offsets[index],
            gt_patches=pick(self.gt_patches),
            mask=mask,
        )


@dataclass
class History:
    """Per-epoch training record; `stopped` says why training ended early, if it did."""

    loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    stopped: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> History:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class NonFiniteLoss(RuntimeError):
    """Raised by trainers when the loss becomes NaN or inf (best weights are kept)."""


@runtime_checkable
class Generator(Protocol):
    """What `factory(**options)` must return for `kind="learned"`."""

    def fit(self, train: TrainingSet, val: TrainingSet, config: TrainConfig, progress: ProgressCallback) -> History: ...

    def predict(self, diffraction: np.ndarray, offsets: np.ndarray) -> np.ndarray: ...

    def save(self, directory) -> Any: ...

    def load(self, directory) -> Any: ...


def groups_per_epoch(n_groups: int, channels: int) -> int:
    """Groups one training epoch draws (at random, without replacement): ceil(n_groups / C).

    Training groups are one per anchor pattern, so every pattern sits in about C groups; drawing
    1/C of them makes an epoch one pass over the patterns at every gridsize, and gridsize C costs
    about what gridsize 1 costs per epoch (DESIGN section 5).
    """
    return max(1, min(n_groups, math.ceil(n_groups / max(1, channels))))


def no_progress(event: dict) -> None:
    """A progress callback that ignores every event."""
