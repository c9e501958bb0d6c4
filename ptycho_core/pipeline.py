"""The one train / predict / reconstruct path, shared by `ptycho train`, `ptycho reconstruct` and the
compare worker, whatever the generator's framework.

Checkpoints (docs/design.md#contracts): a directory holding the core's `config.json` and whatever the
generator's `save` writes (`weights.safetensors` for torch, `model.weights.h5` for Keras, plus an
optional JSON of its own). Loading is `factory(**config["options"]).load(directory)`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ptycho_core import __version__, data, metrics, physics, ranks, rundir, stitch
from ptycho_core.data import Dataset, Groups
from ptycho_core.errors import DataError, PtychoError, UsageError
from ptycho_core.generator import (
    Generator,
    History,
    IterativeGenerator,
    Reconstruction,
    TrainConfig,
    TrainingSet,
    no_progress,
)
from ptycho_core.metric_registry import finite
from ptycho_core.registry import GeneratorSpec, resolve_factory

CHECKPOINT_FORMAT = 1
CONFIG_NAME = "config.json"
#: Groups per `predict` call: prediction's batch, and the timed inference of a comparison (the same
#: for every generator, `harness.worker.predict_timed`).
PREDICT_BATCH = 64


@dataclass
class Prepared:
    """Everything a generator is trained and tested on: the same for every generator compared.

    train / val: grouped TrainingSets (val holds a seeded fraction of the training groups, by anchor);
    test / test_groups: the held-out dataset and its deterministic groups (None when not given);
    info: split, grouping and scale parameters, recorded in checkpoints and reports.
    """

    train: TrainingSet
    val: TrainingSet
    test: Dataset | None
    test_groups: Groups | None
    gridsize: int
    info: dict = field(default_factory=dict)


def prepare(
    train_ds: Dataset,
    test_ds: Dataset | None = None,
    gridsize: int = 1,
    seed: int = 0,
    val_fraction: float = 0.1,
    supervised: bool = False,
) -> Prepared:
    """Group the training data (seeded), split off validation groups and group the test data.

    Scales come from the training data only: input_scale = 1 / rms amplitude, s0 = rms object
    amplitude implied by the data; the overlap canvas side is fixed from the training offsets.
    """
    if supervised and not train_ds.has_ground_truth:
        raise DataError("a supervised generator needs ground truth (an object) in the training data")
    n = train_ds.patch_size
    groups = data.group(train_ds.positions, gridsize, train=True, seed=seed)
    input_scale, s0 = data.scales(train_ds)
    canvas = physics.canvas_size(groups.offsets, n)
    full = data.training_set(
        train_ds, groups, input_scale=input_scale, s0=s0, canvas_size=canvas, supervised=supervised
    )
    train_idx, val_idx = data.validation_split(groups.n_groups, val_fraction, seed)
    test_groups = data.group(test_ds.positions, gridsize, train=False) if test_ds is not None else None
    info = {
        "gridsize": gridsize,
        "patch_size": n,
        "seed": seed,
        "val_fraction": val_fraction,
        "train_groups": int(len(train_idx)),
        "val_groups": int(len(val_idx)),
        "test_groups": 0 if test_groups is None else test_groups.n_groups,
        "input_scale": input_scale,
        "s0": s0,
        "canvas_size": canvas,
        "grouping": {"train": "anchor + C-1 of its 2C nearest neighbours (seeded)", "test": "anchor + C-1 nearest"},
    }
    return Prepared(
        train=full.subset(train_idx),
        val=full.subset(val_idx),
        test=test_ds,
        test_groups=test_groups,
        gridsize=gridsize,
        info=info,
    )


def require_available(spec: GeneratorSpec) -> None:
    """Refuse, before any work, a generator whose required modules are missing."""
    missing = spec.missing_requirements()
    if missing:
        raise UsageError(
            f"generator {spec.name!r} is unavailable: missing {', '.join(missing)} "
            f"(install the framework, or see `ptycho describe {spec.name}`)"
        )


def check_usable(spec: GeneratorSpec, has_ground_truth: bool = True) -> None:
    """Refuse, before any work, a generator that cannot run here or on this data."""
    require_available(spec)
    if spec.kind != "learned":
        raise UsageError(f"generator {spec.name!r} is {spec.kind}; only learned generators can be trained")
    if spec.supervised and not has_ground_truth:
        raise UsageError(f"generator {spec.name!r} is supervised and the data has no ground-truth object")


def fit_generator(
    spec: GeneratorSpec,
    options: dict | None,
    prepared: Prepared,
    config: TrainConfig,
    model_dir: str | os.PathLike,
    progress=no_progress,
) -> tuple[Generator, History]:
    """Build `factory(**options)`, fit it, save its weights and the core's config.json in model_dir
    (under torchrun: rank 0 alone writes, `ptycho_core.ranks`)."""
    options = spec.resolve_options(options)
    generator = build_generator(spec, options)
    start = time.perf_counter()
    history = generator.fit(prepared.train, prepared.val, config, progress)
    seconds = time.perf_counter() - start
    if not ranks.is_writer():
        return generator, history
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    generator.save(model_dir)
    rundir.write_json(model_dir / CONFIG_NAME, checkpoint_config(spec, options, prepared, config, seconds))
    return generator, history


def training_numbers(history: History, model_dir: str | os.PathLike | None = None) -> dict:
    """The registry's "training" numbers of a fit or an iterative run (`ptycho_core.metric_registry`):
    epochs_run, final_loss, best_val_loss; with `model_dir` (the checkpoint `fit_generator` wrote)
    also train_seconds, the wall time of the generator's `fit`, the one meaning it has everywhere."""
    val = [v for v in history.val_loss if finite(v)]
    out = {
        "epochs_run": len(history.loss),
        "final_loss": history.loss[-1] if history.loss else None,
        "best_val_loss": min(val) if val else None,
    }
    if model_dir is not None:
        out["train_seconds"] = rundir.read_json(Path(model_dir) / CONFIG_NAME).get("training_seconds")
    return out


def build_generator(spec: GeneratorSpec, options: dict) -> Generator | IterativeGenerator:
    """`factory(**options)`; a factory refusing an option value (ValueError or TypeError raised by
    the call itself) is a UsageError naming the generator."""
    factory = resolve_factory(spec.factory)
    try:
        return factory(**options)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{spec.name}: bad option value: {exc}") from None


def checkpoint_config(
    spec: GeneratorSpec, options: dict, prepared: Prepared, config: TrainConfig, seconds: float
) -> dict:
    """The core's part of a checkpoint (docs/design.md#contracts)."""
    return {
        "format_version": CHECKPOINT_FORMAT,
        "generator": spec.name,
        "factory": spec.factory,
        "framework": spec.framework,
        "supervised": spec.supervised,
        "plugin": {"distribution": spec.distribution, "version": spec.version},
        "core_version": __version__,
        "options": options,
        "train_config": config.to_dict(),
        "gridsize": prepared.gridsize,
        "patch_size": prepared.info["patch_size"],
        "input_scale": prepared.info["input_scale"],
        "s0": prepared.info["s0"],
        "canvas_size": prepared.info["canvas_size"],
        "grouping": prepared.info["grouping"],
        "training_seconds": seconds,
        "python": platform.python_version(),
    }


def read_checkpoint_config(model_dir: str | os.PathLike) -> dict:
    """Read and check a checkpoint's config.json."""
    path = Path(model_dir) / CONFIG_NAME
    if not path.is_file():
        raise UsageError(f"{model_dir}: not a ptycho checkpoint (no {CONFIG_NAME})")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable checkpoint config: {exc}") from None
    version = config.get("format_version")
    if version != CHECKPOINT_FORMAT:
        raise UsageError(f"{path}: checkpoint format_version {version!r}, this ptycho reads {CHECKPOINT_FORMAT}")
    for key in ("generator", "factory", "options", "gridsize", "patch_size"):
        if key not in config:
            raise UsageError(f"{path}: checkpoint config lacks {key!r}")
    return config


def load_generator(
    model_dir: str | os.PathLike, expected_generator: str | None = None, registry=None
) -> tuple[Generator, dict]:
    """Rebuild a trained generator: `factory(**options).load(model_dir)`. Returns (generator, config).

    With a registry, the factory is taken from the registered spec of the same name (refusing a
    generator that is no longer installed); `expected_generator` refuses a different generator.
    """
    config = read_checkpoint_config(model_dir)
    name = config["generator"]
    if expected_generator is not None and expected_generator.rpartition(":")[2] != name:
        raise UsageError(f"{model_dir}: checkpoint is for generator {name!r}, not {expected_generator!r}")
    factory = config["factory"]
    if registry is not None:
        spec = registry.generator(name)
        check_usable(spec)
        factory = spec.factory
    generator = resolve_factory(factory)(**config["options"])
    generator.load(model_dir)
    return generator, config


def predict_groups(
    generator,
    diffraction: np.ndarray,
    offsets: np.ndarray,
    batch_size: int = PREDICT_BATCH,
    channels: slice | None = None,
) -> np.ndarray:
    """Predict (B, C, N, N) complex64 patches in batches (bounded memory).

    `channels` keeps only some channels of the result (e.g. slice(0, 1) for the anchors).
    """
    b = diffraction.shape[0]
    keep = slice(None) if channels is None else channels
    out = None
    for start in range(0, b, batch_size):
        stop = min(b, start + batch_size)
        batch = np.asarray(
            generator.predict(np.ascontiguousarray(diffraction[start:stop], dtype=np.float32), offsets[start:stop])
        )
        expected = (stop - start,) + diffraction.shape[1:]
        if batch.shape != expected:
            raise PtychoError(f"generator returned shape {batch.shape}, expected {expected}")
        batch = batch[:, keep].astype(np.complex64, copy=False)
        if out is None:
            out = np.empty((b,) + batch.shape[1:], dtype=np.complex64)
        out[start:stop] = batch
    if out is None:
        raise DataError("nothing to predict: no test groups")
    return out


def predict_anchors(generator, ds: Dataset, groups: Groups, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """Patches (n, N, N) for every test pattern: channel 0 (the anchor) of its test group."""
    return predict_groups(generator, ds.diffraction[groups.indices], groups.offsets, batch_size, slice(0, 1))[:, 0]


def prediction_groups(ds: Dataset, gridsize: int, per_pattern: bool) -> Groups:
    """The groups `predict_patterns` feeds the generator: each pattern once (`data.pack`) for a
    per-pattern generator, else the test groups (`data.group`, one per anchor)."""
    if per_pattern:
        return data.pack(ds.positions, gridsize)
    return data.group(ds.positions, gridsize, train=False)


def predict_patterns(
    generator, ds: Dataset, groups: Groups, per_pattern: bool, batch_size: int = PREDICT_BATCH
) -> np.ndarray:
    """One patch (n, N, N) complex64 per pattern of `ds`, from `groups` (`prediction_groups`).

    per_pattern (the generator contract's `per_pattern`: the network maps each pattern alone): `groups` hold
    each pattern once, and its one prediction is its patch. Otherwise (a joint-channel network) every
    channel of every group is used: a pattern's patch is the mean of its predictions in all the
    groups it belongs to (as anchor and as neighbour).
    """
    out = predict_groups(generator, ds.diffraction[groups.indices], groups.offsets, batch_size)
    flat = out.reshape((-1,) + out.shape[2:])
    index = groups.indices.reshape(-1)
    if per_pattern:
        patches = np.empty((ds.n,) + out.shape[2:], dtype=np.complex64)
        patches[index] = flat  # padding repeats a pattern with the same prediction
        return patches
    total = np.zeros((ds.n,) + out.shape[2:], dtype=np.complex128)
    np.add.at(total, index, flat)
    counts = np.bincount(index, minlength=ds.n)
    if (counts == 0).any():
        raise PtychoError(f"{int((counts == 0).sum())} pattern(s) belong to no prediction group")
    return (total / counts[:, None, None]).astype(np.complex64)


def object_grid(ds: Dataset) -> tuple[tuple[int, int], np.ndarray, tuple[float, float]]:
    """The object grid a dataset is reconstructed and scored on: (shape (H, W), positions on it,
    shift). The ground truth's grid when the data has one, else the smallest canvas covering every
    patch (`stitch.canvas_for`; the whole-pixel shift is recorded)."""
    shape, shift = stitch.canvas_for(ds.positions, ds.patch_size, ds.object_shape)
    return shape, ds.positions + np.asarray(shift, dtype=np.float64), shift


def stitch_on_grid(
    patches: np.ndarray, ds: Dataset, stitcher="probe_weighted", registry=None, probe=None, indices=None, **options
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
    """Stitch anchor patches on `object_grid(ds)`: (object, weights, positions, shift).

    probe: the row's own probe (default the dataset's); indices: the patterns the patches belong
    to (a half-set, `ptycho_core.agreement`), stitched at their positions on the whole scan's grid.
    """
    shape, positions, shift = object_grid(ds)
    positions = positions if indices is None else positions[indices]
    probe = ds.probe if probe is None else probe
    obj, weights = stitch.stitch(stitcher, patches, positions, shape, probe, registry=registry, **options)
    return obj, weights, positions, shift


def stitch_and_score(
    patches: np.ndarray, ds: Dataset, stitcher="probe_weighted", registry=None, probe=None, **stitch_options
) -> Reconstruction:
    """Stitch anchor patches (n, N, N) at the dataset's positions and score them (docs/design.md#scoring).

    `stitcher` is a name, `dist:name` or a StitcherSpec; options are checked against its spec.
    probe: the probe the row was trained with (stitching weights and data error; default the
    dataset's).
    """
    obj, weights, positions, shift = stitch_on_grid(patches, ds, stitcher, registry, probe, **stitch_options)
    return score_object(obj, weights, positions, shift, ds, patches, probe=probe)


def whole_object(obj: np.ndarray, ds: Dataset, probe=None, positions=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An iterative generator's object on `object_grid(ds)` checked and masked to its illumination:
    (object, weights, positions). probe / positions: the engine's final ones (default the
    dataset's; positions on the object grid)."""
    shape, grid_positions, _ = object_grid(ds)
    positions = grid_positions if positions is None else np.asarray(positions, dtype=np.float64)
    probe = ds.probe if probe is None else probe
    obj = np.asarray(obj)
    if obj.shape != tuple(shape):
        raise PtychoError(f"the generator returned an object of shape {obj.shape}, expected {tuple(shape)}")
    if not np.isfinite(obj).all():
        raise PtychoError("the generator returned an object with NaN or inf")
    weights = stitch.illumination(positions, shape, np.abs(probe) ** 2)
    return np.where(weights > 0, obj, 0).astype(np.complex64), weights, positions


def score_whole_object(obj: np.ndarray, ds: Dataset, probe=None, positions=None) -> Reconstruction:
    """Score a whole object (an iterative generator's, on `object_grid(ds)`) exactly as a stitched
    one: the weights are the probe-weighted stitcher's (the illumination, splat |P|^2) and the
    patches for the twin share are cut from the object at the positions. probe / positions: the
    engine's final (refined) ones when it refined them: the data error is computed with them."""
    _, _, shift = object_grid(ds)
    obj, weights, positions = whole_object(obj, ds, probe, positions)
    patches = physics.extract(obj, positions, ds.patch_size)
    return score_object(obj, weights, positions, shift, ds, patches, probe=probe)


def score_object(obj, weights, positions, shift, ds: Dataset, patches, probe=None) -> Reconstruction:
    """The one scoring path (docs/design.md#scoring) for stitched and whole objects on the object grid.

    probe: the row's own final probe (default the dataset's): the data error (issue 21 item 5a)
    is computed with it and the row's `positions`."""
    probe = ds.probe if probe is None else probe
    scores = metrics.score(obj, weights, ds.object, positions, probe, ds.diffraction, mask=ds.mask)
    values = {k: float(v) for k, v in scores.as_dict().items() if isinstance(v, (int, float))}
    if ds.object is not None:
        values["twin_share"] = metrics.twin_share(patches, ds.gt_patches(), ds.probe)
    return Reconstruction(
        object=obj,
        weights=weights,
        positions=positions,
        shift=tuple(float(v) for v in shift),
        metrics=values,
        frc=scores.frc,
        region=list(scores.region),
    )


# --- iterative generators (docs/design.md#contracts) -------------------------------------------------------


def scan_for(ds: Dataset, indices=None) -> Dataset:
    """The scan an iterative generator gets: `ds` on its object grid (`object_grid`: positions
    shifted onto it, `object_shape` set) without the ground truth (generators never see it); with
    `indices`, only those patterns (a half-set) on the whole scan's grid."""
    shape, positions, _ = object_grid(ds)
    if indices is not None:
        ds = ds.subset(indices)
        positions = positions[indices]
    return dataclasses.replace(
        ds,
        diffraction=np.ascontiguousarray(ds.diffraction, dtype=np.float32),
        positions=positions,
        probe=np.asarray(ds.probe, dtype=np.complex64),
        object=None,
        object_shape=tuple(int(v) for v in shape),
        metadata=dict(ds.metadata or {}),
    )


def check_iterative(spec: GeneratorSpec) -> None:
    """Refuse, before any work, a generator that is not an available iterative one."""
    require_available(spec)
    if spec.kind != "iterative":
        raise UsageError(
            f"generator {spec.name!r} is {spec.kind}: train it first (`ptycho train`), then reconstruct with --model"
        )


def _start(start: tuple, scan: Dataset) -> Reconstruction:
    """(initial object, initial probe or None) checked against the scan's grid and probe."""
    obj = np.asarray(start[0], dtype=np.complex64)
    if obj.shape != scan.object_shape:
        raise PtychoError(f"the initial object has shape {obj.shape}, expected the grid's {scan.object_shape}")
    probe = None if start[1] is None else np.asarray(start[1], dtype=np.complex64)
    if probe is not None and probe.shape != np.shape(scan.probe):
        raise PtychoError(f"the initial probe has shape {probe.shape}, expected {np.shape(scan.probe)}")
    return Reconstruction(object=obj, probe=probe)


def check_warm_start(spec: GeneratorSpec) -> None:
    """Refuse, in one line, an engine that cannot start from a given object and probe."""
    if not spec.warm_start:
        raise UsageError(
            f"generator {spec.name!r} cannot refine: it does not start from a given object and probe "
            "(its plugin does not declare warm_start)"
        )


def reconstruct_scan(
    spec: GeneratorSpec,
    options: dict | None,
    ds: Dataset,
    config: TrainConfig,
    progress=no_progress,
    indices=None,
    start: tuple | None = None,
    snapshot_iterations=(),
) -> tuple[IterativeGenerator, Reconstruction, float]:
    """Build `factory(**options)` and run its `reconstruct` on `ds` (only the patterns at
    `indices` when given, on the whole scan's grid); returns (generator, its Reconstruction,
    seconds of `reconstruct`). `start` = (initial object on the object grid, initial probe or
    None): only for a `warm_start` generator (UsageError otherwise), which also gets
    `snapshot_iterations` (the iterations whose object it keeps); others get neither.

    The object is checked: the grid's shape, finite values (PtychoError otherwise).
    """
    if start is not None:
        check_warm_start(spec)
    generator = build_generator(spec, spec.resolve_options(options))
    scan = scan_for(ds, indices)
    keywords = {}
    if spec.warm_start:
        keywords["snapshot_iterations"] = tuple(int(k) for k in snapshot_iterations)
        keywords["start"] = None if start is None else _start(start, scan)
    clock = time.perf_counter()
    estimate = generator.reconstruct(scan, config, progress, **keywords)
    seconds = time.perf_counter() - clock
    obj = np.asarray(getattr(estimate, "object", None))
    if obj.shape != scan.object_shape:
        raise PtychoError(
            f"{spec.name}: reconstruct returned an object of shape {obj.shape}, expected {scan.object_shape}"
        )
    if not np.isfinite(obj).all():
        raise PtychoError(f"{spec.name}: reconstruct returned an object with NaN or inf")
    estimate.object = obj.astype(np.complex64, copy=False)
    estimate.snapshots = {
        int(k): np.asarray(v, dtype=np.complex64)
        for k, v in (getattr(estimate, "snapshots", None) or {}).items()
        if np.shape(v) == scan.object_shape and np.isfinite(v).all()
    }
    return generator, estimate, seconds
