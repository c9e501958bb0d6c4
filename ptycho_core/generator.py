"""The generator runtime contract (docs/design.md#contracts): what a generator is given and returns.

    gen = factory(**options)
    gen.fit(train: TrainingSet, val: TrainingSet, config: TrainConfig, progress) -> History
    gen.predict(diffraction (B, C, N, N) float32, offsets (B, C, 2)) -> (B, C, N, N) complex64
    gen.save(directory)   writes weights (+ optional JSON-able `extra`) only
    gen.load(directory)   on a freshly built instance

Inputs are raw amplitudes in contract units; the generator applies `TrainingSet.input_scale`
itself. `predict` returns per-channel patches before any overlap averaging, in contract units.

Iterative generators (`kind="iterative"`, docs/design.md#contracts) have no fit: the core hands them one
`Dataset` (the test data on its object grid, `object_shape` set, no ground truth: see
`pipeline.scan_for`) and they return a `Reconstruction`:

    gen = factory(**options)
    gen.reconstruct(scan: Dataset, config: TrainConfig, progress) -> Reconstruction
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ptycho_core.errors import UsageError
from ptycho_core.settings import Setting, check_fields, declared, setting

if TYPE_CHECKING:  # numpy only for annotations: this module is imported by the light CLI
    import numpy as np

    from ptycho_core.data import Dataset

ProgressCallback = Callable[[dict], None]

LOSSES = ("poisson", "mae")
DEVICES = ("auto", "cpu", "cuda")
SCHEDULES = ("plateau", "cosine")


@dataclass
class TrainConfig:
    """Training budget and settings, the same for every generator of a comparison.

    batch_size counts groups; timeout is in seconds (0: none); patience counts epochs without
    validation improvement before early stop (0: never stop early). Each field is a declared
    `Setting` (help, range and command-line name live here, once: `train_settings()`); `ptycho
    train`, `ptycho compare` and the API all derive their options from them.

    `engine` holds the settings of the framework engine that trains the generator, by name
    ({"precision": "bf16", "compile": "on"} for the torch engine): the engine declares them
    (`GeneratorSpec.engine_settings`, e.g. `ptycho_core.torch.settings.SETTINGS`) and
    `resolve_train_config` checks them against that declaration. `to_dict` writes them beside the
    neutral fields (flat, as run records and checkpoints have always stored them).
    """

    epochs: int = setting(20, "Training epochs.", min=1)
    batch_size: int = setting(16, "Groups per training step.", min=1)
    lr: float = setting(1e-3, "Initial learning rate.", min=1e-12)
    schedule: str = setting(
        "plateau",
        "Learning-rate schedule: plateau (halve when the validation loss stalls) or cosine (decay to 1 % "
        "of lr over the epochs, step by step; suits short budgets).",
        choices=SCHEDULES,
    )
    loss: str = setting("poisson", "Physics loss of the PINNs; supervised generators use their own.", choices=LOSSES)
    seed: int = setting(0, "Seed of the grouping, split and weights (compare: of the first run).", min=0, max=2**32 - 1)
    device: str = setting("auto", "Device.", choices=DEVICES)
    val_fraction: float = setting(0.1, "Fraction of training groups held out for validation.", min=0.0, max=0.9)
    patience: int = setting(5, "Early stop after this many epochs without validation improvement (0: never).", min=0)
    clip_norm: float = setting(1.0, "Gradient clipping norm (0: off).", min=0.0)
    timeout: float = setting(
        0.0,
        "Seconds of training after which training stops gracefully, keeping the best weights: the same "
        "wall-clock budget for every generator (0: no limit).",
        name="train_timeout",
        min=0.0,
    )
    engine: dict = field(default_factory=dict)

    def __post_init__(self):
        check_fields(self)
        if not isinstance(self.engine, dict):
            raise UsageError(f"engine settings must be a dict, not {type(self.engine).__name__}")

    def to_dict(self) -> dict:
        out = {s.field: getattr(self, s.field) for s in train_settings()}
        return {**out, **self.engine}

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """The inverse of `to_dict`: declared fields by name, every other key an engine setting."""
        names = {s.field for s in train_settings()}
        engine = {k: v for k, v in d.items() if k not in names and k != "engine"}
        engine.update(d.get("engine") or {})
        return cls(**{k: v for k, v in d.items() if k in names}, engine=engine)


def train_settings() -> list[Setting]:
    """Every neutral TrainConfig field as a Setting, in declaration order (`Setting.field` is the
    attribute, `Setting.name` the option's name)."""
    return declared(TrainConfig)


#: TrainConfig fields a plugin may not set in `GeneratorSpec.train_defaults`: the split and the
#: grouping are made once for every generator of a comparison (docs/design.md#splits).
SHARED_SETTINGS = frozenset({"seed", "val_fraction"})


def resolve_train_config(
    given: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    engine_settings: Sequence[Setting] = (),
    owner: str = "",
) -> TrainConfig:
    """The TrainConfig of one generator: explicit values (`given`, by field name) over the plugin's
    `defaults` (`GeneratorSpec.train_defaults`) over TrainConfig's own defaults.

    Names that are not TrainConfig fields are engine settings: each must be one of
    `engine_settings` (the generator's engine declares it) and is parsed by it; the engine's
    defaults fill the rest. UsageError (naming `owner`, the generator) otherwise.
    """
    merged = {**dict(defaults or {}), **{k: v for k, v in (given or {}).items() if v is not None}}
    fields_ = {s.field for s in train_settings()}
    declared_engine = {s.name: s for s in engine_settings}
    engine = {name: s.default for name, s in declared_engine.items()}
    for key, value in merged.items():
        if key in fields_:
            continue
        if key not in declared_engine:
            who = f"{owner}'s engine" if owner else "this engine"
            known = ", ".join(declared_engine) or "none"
            raise UsageError(
                f"--{key.replace('_', '-')}: {who} has no such setting (its engine settings: {known}); "
                f"drop the flag{f' or leave {owner} out (-g)' if owner else ''}"
            )
        engine[key] = declared_engine[key].parse(value, f"{owner + ' ' if owner else ''}--{key.replace('_', '-')}")
    return TrainConfig(**{k: v for k, v in merged.items() if k in fields_}, engine=engine)


def train_fields(values: Mapping[str, Any], engine_settings: Sequence[Setting] = ()) -> dict:
    """{option name: value} (as the CLI and the API name them, e.g. `train_timeout`) -> {field
    name: value} for the settings in `values` whose value is not None (None: not given); engine
    settings (e.g. the torch engine's `precision`) keep their names."""
    out = {s.field: values[s.name] for s in train_settings() if values.get(s.name) is not None}
    out.update({s.name: values[s.name] for s in engine_settings if values.get(s.name) is not None})
    return out


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


@dataclass
class Reconstruction:
    """A reconstructed object, one type from the generator to the file (docs/design.md#contracts).

    An iterative generator's `reconstruct` returns one with `object` (H, W) complex64 on the
    scan's object grid (`Dataset.object_shape`), `history` (one entry per iteration: `loss` the
    engine's data error, `val_loss` entries None) and, when the engine refined them, `probe` (N, N)
    and `positions` (n, 2) (else None). Scoring (`pipeline.score_object`) fills in `weights` (H, W)
    on the grid, `positions` on it, `shift` (the whole-pixel shift of the grid, non-zero only
    without a known grid), `metrics` (plain floats), `frc` and `region` (the scored box). Read from
    a file (`io.reconstruction.read`), it carries the file's probe and `geometry` when it has them.
    """

    object: np.ndarray
    history: History | None = None
    probe: np.ndarray | None = None
    positions: np.ndarray | None = None
    weights: np.ndarray | None = None
    shift: tuple = (0.0, 0.0)
    metrics: dict = field(default_factory=dict)
    frc: dict = field(default_factory=dict)
    region: list = field(default_factory=list)
    geometry: Any = None


@runtime_checkable
class IterativeGenerator(Protocol):
    """What `factory(**options)` must return for `kind="iterative"`: no training, no checkpoint.

    `config` carries the seed, the device and `timeout` (stop iterating after that many seconds,
    keeping the current estimate); the number of iterations is the generator's own option.
    `progress` gets the same events as `fit`'s, one epoch per iteration.
    """

    def reconstruct(self, scan: Dataset, config: TrainConfig, progress: ProgressCallback) -> Reconstruction: ...


def groups_per_epoch(n_groups: int, channels: int) -> int:
    """Groups one training epoch draws (at random, without replacement): ceil(n_groups / C).

    Training groups are one per anchor pattern, so every pattern sits in about C groups; drawing
    1/C of them makes an epoch one pass over the patterns at every gridsize, and gridsize C costs
    about what gridsize 1 costs per epoch (docs/design.md#splits).
    """
    return max(1, min(n_groups, math.ceil(n_groups / max(1, channels))))


def no_progress(event: dict) -> None:
    """A progress callback that ignores every event."""
