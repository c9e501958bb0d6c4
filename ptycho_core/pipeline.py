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


def object_grid(ds: Dataset) -> tuple[tuple[int, int], np.ndarray, tuple[float, float]]:
    """The object grid a dataset is reconstructed and scored on: (shape (H, W), positions on it,
    shift). The ground truth's grid when the data has one, else the smallest canvas covering every
    patch (`stitch.canvas_for`; the whole-pixel shift is recorded)."""
    shape, shift = stitch.canvas_for(ds.positions, ds.patch_size, ds.object_shape)
    return shape, ds.positions + np.asarray(shift, dtype=np.float64), shift


def stitch_and_score(
    patches: np.ndarray, ds: Dataset, stitcher="probe_weighted", registry=None, **stitch_options
) -> Reconstruction:
    """Stitch anchor patches (n, N, N) at the dataset's positions and score them (docs/design.md#scoring).

    `stitcher` is a name, `dist:name` or a StitcherSpec; options are checked against its spec.
    """
    shape, positions, shift = object_grid(ds)
    obj, weights = stitch.stitch(stitcher, patches, positions, shape, ds.probe, registry=registry, **stitch_options)
    return score_object(obj, weights, positions, shift, ds, patches)


def score_whole_object(obj: np.ndarray, ds: Dataset) -> Reconstruction:
    """Score a whole object (an iterative generator's, on `object_grid(ds)`) exactly as a stitched
    one: the weights are the probe-weighted stitcher's (the illumination, splat |P|^2) and the
    patches for the twin share are cut from the object at the positions."""
    shape, positions, shift = object_grid(ds)
    obj = np.asarray(obj)
    if obj.shape != tuple(shape):
        raise PtychoError(f"the generator returned an object of shape {obj.shape}, expected {tuple(shape)}")
    if not np.isfinite(obj).all():
        raise PtychoError("the generator returned an object with NaN or inf")
    weights = stitch.illumination(positions, shape, np.abs(ds.probe) ** 2)
    obj = np.where(weights > 0, obj, 0).astype(np.complex64)
    return score_object(obj, weights, positions, shift, ds, physics.extract(obj, positions, ds.patch_size))


def score_object(obj, weights, positions, shift, ds: Dataset, patches) -> Reconstruction:
    """The one scoring path (docs/design.md#scoring) for stitched and whole objects on the object grid."""
    scores = metrics.score(obj, weights, ds.object, positions, ds.probe, ds.diffraction, mask=ds.mask)
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


def scan_for(ds: Dataset) -> Dataset:
    """The scan an iterative generator gets: `ds` on its object grid (`object_grid`: positions
    shifted onto it, `object_shape` set) without the ground truth (generators never see it)."""
    shape, positions, _ = object_grid(ds)
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


def reconstruct_scan(
    spec: GeneratorSpec, options: dict | None, ds: Dataset, config: TrainConfig, progress=no_progress
) -> tuple[IterativeGenerator, Reconstruction, float]:
    """Build `factory(**options)` and run its `reconstruct` on `ds`; returns (generator, its
    Reconstruction, seconds of `reconstruct`).

    The object is checked: the grid's shape, finite values (PtychoError otherwise).
    """
    generator = build_generator(spec, spec.resolve_options(options))
    scan = scan_for(ds)
    start = time.perf_counter()
    estimate = generator.reconstruct(scan, config, progress)
    seconds = time.perf_counter() - start
    obj = np.asarray(getattr(estimate, "object", None))
    if obj.shape != scan.object_shape:
        raise PtychoError(
            f"{spec.name}: reconstruct returned an object of shape {obj.shape}, expected {scan.object_shape}"
        )
    if not np.isfinite(obj).all():
        raise PtychoError(f"{spec.name}: reconstruct returned an object with NaN or inf")
    estimate.object = obj.astype(np.complex64, copy=False)
    return generator, estimate, seconds
