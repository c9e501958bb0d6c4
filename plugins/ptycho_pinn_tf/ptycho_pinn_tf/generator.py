"""The `pinn_tf` generator: fit / predict / save / load and the TensorFlow training loop.

Contract (docs/design.md#contracts): arrays cross this boundary channel-first as numpy,
diffraction (B, C, N, N) float32 raw amplitudes, offsets (B, C, 2), patches (B, C, N, N)
complex64 in contract units. The network sees `diffraction * input_scale` in Keras layout.

Training minimises the Poisson NLL (default) or amplitude MAE of the far-field forward model of
the predicted patches, in normalised units, with the overlap constraint when C > 1 (option
`overlap`, canvas side `TrainingSet.canvas_size`). Adam at `config.lr`, gradient clipping at
`config.clip_norm`; the schedule, early stop, timeout, non-finite loss guard, progress events and
best weights are the bench's one policy, `ptycho_core.training` (the same as every torch model's).
Precision is fp32 only: the engine setting `precision` (`ptycho_pinn_tf.settings`) accepts fp32 and
auto (which trains in fp32); bf16 is refused while a comparison is planned, and by `fit` too.
"""

from __future__ import annotations

import contextlib
import json
import math
import warnings
from pathlib import Path

import numpy as np

from ptycho_core import training
from ptycho_core.errors import DataError, PluginError, UsageError
from ptycho_core.generator import (
    History,
    NonFiniteLoss,
    ProgressCallback,
    TrainConfig,
    TrainingSet,
    groups_per_epoch,
    no_progress,
)
from ptycho_core.physics import canvas_size
from ptycho_pinn_tf import physics
from ptycho_pinn_tf.env import keras, tf
from ptycho_pinn_tf.model import build_model, to_keras_layout, to_patches
from ptycho_pinn_tf.settings import PRECISION

WEIGHTS_FILE = "model.weights.h5"
META_FILE = "generator.json"
FORMAT_VERSION = 1


def build_pinn_tf(filter_scale: int = 2, overlap: bool = True, joint_channels: bool = True) -> PinnTF:
    """Factory named by the `pinn_tf` spec: `build_pinn_tf(**options)`."""
    return PinnTF(filter_scale=filter_scale, overlap=overlap, joint_channels=joint_channels)


class PinnTF:
    """PtychoPINN on TensorFlow / Keras 3. The network is built in `fit` or `load`, once C, N and
    s0 are known; until then the instance holds only its options."""

    def __init__(self, filter_scale: int = 2, overlap: bool = True, joint_channels: bool = True):
        if int(filter_scale) < 1:
            raise UsageError(f"pinn_tf.filter_scale must be at least 1, not {filter_scale}")
        self.options = {
            "filter_scale": int(filter_scale),
            "overlap": bool(overlap),
            "joint_channels": bool(joint_channels),
        }
        self.model: keras.Model | None = None
        #: C, N, input_scale, s0, canvas_size of the built model (what `generator.json` stores).
        self.meta: dict = {}
        self._predict_step = None

    # -- building --------------------------------------------------------------------------
    def _build(self, channels: int, n: int, s0: float, input_scale: float, canvas_size: int, seed: int = 0):
        # joint (the default, PtychoPINN's formulation): the C patterns are the network's C channels;
        # per pattern: one network of one channel applied to each of the C patterns
        network_channels = channels if self.options["joint_channels"] else 1
        self.model = build_model(n, network_channels, s0, filter_scale=self.options["filter_scale"], seed=seed)
        self.meta = {
            "C": int(channels),
            "N": int(n),
            "input_scale": float(input_scale),
            "s0": float(s0),
            "canvas_size": int(canvas_size),
        }
        self._predict_step = _predict_fn(self.model, int(channels), int(n), float(input_scale), network_channels)

    def _overlap_canvas(self) -> int:
        """Canvas side for the overlap constraint, or 0 when it is off (C == 1 or option off)."""
        if self.options["overlap"] and self.meta["C"] > 1:
            return self.meta["canvas_size"]
        return 0

    # -- training ----------------------------------------------------------------------------
    def fit(
        self, train: TrainingSet, val: TrainingSet, config: TrainConfig, progress: ProgressCallback = no_progress
    ) -> History:
        """Train from scratch on `train`, validating on `val` only; returns the per-epoch History."""
        if config.engine.get("precision", PRECISION.default) not in PRECISION.choices:  # planning refuses it first
            raise UsageError("pinn_tf supports precision fp32 only (bf16 is not implemented for the TensorFlow PINN)")
        device = _device(config.device)
        _check_training_set(train, "training")
        keras.utils.set_random_seed(int(config.seed))
        tf.config.experimental.enable_op_determinism()
        channels, n = train.channels, train.patch_size
        canvas = int(train.canvas_size)
        if self.options["overlap"] and channels > 1:
            need = canvas_size(train.offsets, n)
            if canvas < need:
                raise DataError(f"canvas_size {canvas} is too small for the group offsets (needs at least {need})")
        with tf.device(device):
            self._build(channels, n, train.s0, train.input_scale, canvas, seed=int(config.seed))
            return training.train(_KerasBackend(self, train, val, config), config, progress or no_progress)

    # -- inference ---------------------------------------------------------------------------
    def predict(self, diffraction: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
        """Object patches (B, C, N, N) complex64 (amplitude and phase, contract units) from raw
        diffraction amplitudes (B, C, N, N); `offsets` (B, C, 2) are accepted for the contract
        but unused (the network sees each group's patterns only). Processes the B groups it is
        given in one call: the caller batches (`ptycho_core.pipeline.predict_groups`)."""
        if self.model is None:
            raise PluginError("pinn_tf: predict called before fit or load")
        diffraction = np.asarray(diffraction, dtype=np.float32)
        c, n = self.meta["C"], self.meta["N"]
        if diffraction.ndim != 4 or diffraction.shape[1:] != (c, n, n):
            raise DataError(f"pinn_tf: expected diffraction (B, {c}, {n}, {n}), got shape {diffraction.shape}")
        if diffraction.shape[0] == 0:
            return np.zeros((0, c, n, n), dtype=np.complex64)
        return self._predict_step(tf.constant(diffraction)).numpy().astype(np.complex64, copy=False)

    def parameter_count(self) -> int:
        """Parameters of the Keras model (`count_params`, the global log-scale included)."""
        if self.model is None:
            raise PluginError("pinn_tf: the network is not built yet: call fit() or load() first")
        return int(self.model.count_params())

    def device_info(self) -> dict:
        """The GPU TensorFlow sees (None on CPU); TensorFlow reports no peak memory here."""
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return {"gpu": None, "peak_gpu_mib": None}
        details = tf.config.experimental.get_device_details(gpus[0])
        return {"gpu": details.get("device_name") or gpus[0].name, "peak_gpu_mib": None}

    # -- checkpoints -------------------------------------------------------------------------
    def save(self, directory) -> dict:
        """Write `model.weights.h5` and `generator.json` (C, N, input_scale, s0, canvas_size) to
        `directory`; returns the JSON-able metadata."""
        if self.model is None:
            raise PluginError("pinn_tf: nothing to save (fit or load first)")
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        with _keras_numpy_warnings_off():
            self.model.save_weights(str(path / WEIGHTS_FILE))
        extra = {
            "generator": "pinn_tf",
            "format_version": FORMAT_VERSION,
            **self.meta,
            "options": dict(self.options),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        }
        (path / META_FILE).write_text(json.dumps(extra, indent=2) + "\n")
        return extra

    def load(self, directory) -> PinnTF:
        """Rebuild the network from `generator.json` and load `model.weights.h5` (nothing unpickled)."""
        path = Path(directory)
        meta_path, weights_path = path / META_FILE, path / WEIGHTS_FILE
        if not meta_path.is_file() or not weights_path.is_file():
            raise DataError(f"{path}: not a pinn_tf model directory (needs {META_FILE} and {WEIGHTS_FILE})")
        try:
            extra = json.loads(meta_path.read_text())
        except ValueError as exc:
            raise DataError(f"{meta_path}: invalid JSON ({exc})") from None
        if extra.get("generator") != "pinn_tf" or extra.get("format_version") != FORMAT_VERSION:
            raise DataError(
                f"{meta_path}: written by generator {extra.get('generator')!r} format "
                f"{extra.get('format_version')!r}; this is pinn_tf format {FORMAT_VERSION}"
            )
        saved = extra.get("options", {})
        if saved and saved != self.options:
            raise UsageError(f"{path}: saved with options {saved}, this instance has {self.options}")
        self._build(extra["C"], extra["N"], extra["s0"], extra["input_scale"], extra["canvas_size"])
        with _keras_numpy_warnings_off():
            self.model.load_weights(str(weights_path))
        return self


# --- helpers ------------------------------------------------------------------------------


@contextlib.contextmanager
def _keras_numpy_warnings_off():
    """Keras 3.15's weight I/O calls `np.array(variable)`, which numpy 2.4 answers with a
    DeprecationWarning about `__array__(copy=...)` once per variable; harmless, hidden here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"__array__ implementation", category=DeprecationWarning)
        yield


def _device(requested: str) -> str:
    if requested == "cuda":
        if not tf.config.list_physical_devices("GPU"):
            raise UsageError("pinn_tf: device 'cuda' requested but TensorFlow sees no GPU (tensorflow-cpu?)")
        return "/GPU:0"
    if requested == "cpu":
        return "/CPU:0"
    return "/GPU:0" if tf.config.list_physical_devices("GPU") else "/CPU:0"


def _check_training_set(ts: TrainingSet, role: str) -> None:
    d = ts.diffraction
    if d.ndim != 4 or d.shape[-1] != d.shape[-2]:
        raise DataError(f"pinn_tf: {role} diffraction must be (B, C, N, N), got shape {d.shape}")
    if d.shape[0] == 0:
        raise DataError(f"pinn_tf: the {role} set is empty")
    if ts.offsets.shape != d.shape[:2] + (2,):
        raise DataError(f"pinn_tf: {role} offsets must be (B, C, 2), got shape {ts.offsets.shape}")
    if not (ts.input_scale > 0 and ts.s0 > 0):
        raise DataError(f"pinn_tf: {role} input_scale and s0 must be positive ({ts.input_scale}, {ts.s0})")


def network_patches(model, diffraction, input_scale: float, network_channels: int, training: bool):
    """Complex patches (B, C, N, N) from raw amplitudes (B, C, N, N): the C patterns of a group go
    through the network together (network_channels == C, the default) or one by one with the same
    weights (network_channels == 1: a patch depends only on its own pattern)."""
    shape = tf.shape(diffraction)
    x = diffraction * input_scale
    if network_channels == 1:
        x = tf.reshape(x, [-1, 1, shape[2], shape[3]])
    amplitude, phase = model(to_keras_layout(x), training=training)
    return tf.reshape(to_patches(amplitude, phase), shape)


def _predict_fn(model, c: int, n: int, input_scale: float, network_channels: int):
    @tf.function(input_signature=[tf.TensorSpec((None, c, n, n), tf.float32)], reduce_retracing=True)
    def step(diffraction):
        return network_patches(model, diffraction, input_scale, network_channels, training=False)

    return step


def _mask_mode(ts: TrainingSet) -> str:
    if ts.mask is None:
        return "none"
    return "shared" if ts.mask.ndim == 2 else "per_group"


def _batches(ts: TrainingSet, order: np.ndarray, batch_size: int):
    """Yield (diffraction, offsets[, mask]) tensors for consecutive slices of `order`."""
    per_group = _mask_mode(ts) == "per_group"
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        args = [tf.constant(ts.diffraction[idx], tf.float32), tf.constant(ts.offsets[idx], tf.float64)]
        if per_group:
            args.append(tf.constant(ts.mask[idx], tf.bool))
        yield len(idx), args


def _make_steps(gen: PinnTF, train: TrainingSet, config: TrainConfig, optimizer):
    """The tf.function train and evaluation steps (closures over this fit's model and data).

    train_step returns (loss, gradient global norm before clipping); eval_step returns the loss.
    """
    model = gen.model
    c, n = gen.meta["C"], gen.meta["N"]
    input_scale = gen.meta["input_scale"]
    canvas = gen._overlap_canvas()
    probe = tf.constant(train.probe, tf.complex64)
    mode = _mask_mode(train)
    shared_mask = tf.constant(train.mask, tf.bool) if mode == "shared" else None
    signature = [tf.TensorSpec((None, c, n, n), tf.float32), tf.TensorSpec((None, c, 2), tf.float64)]
    if mode == "per_group":
        signature.append(tf.TensorSpec((None, c, n, n), tf.bool))
    clip = float(config.clip_norm or 0.0)
    variables = model.trainable_variables

    network_channels = 1 if not gen.options["joint_channels"] else c

    def loss_of(diffraction, offsets, mask, training):
        patches = network_patches(model, diffraction, input_scale, network_channels, training)
        return physics.physics_loss(config.loss, patches, probe, diffraction, input_scale, mask, offsets, canvas)

    @tf.function(input_signature=signature)
    def train_step(diffraction, offsets, *mask):
        with tf.GradientTape() as tape:
            loss = loss_of(diffraction, offsets, mask[0] if mask else shared_mask, True)
        grads = tape.gradient(loss, variables)
        norm = tf.linalg.global_norm(grads)
        if clip > 0:
            grads, _ = tf.clip_by_global_norm(grads, clip, use_norm=norm)
        optimizer.apply_gradients(zip(grads, variables))
        return loss, norm

    @tf.function(input_signature=signature)
    def eval_step(diffraction, offsets, *mask):
        return loss_of(diffraction, offsets, mask[0] if mask else shared_mask, False)

    return train_step, eval_step


class _KerasBackend(training.EpochBackend):
    """The TensorFlow side of one `fit` (`ptycho_core.training.EpochBackend`): the compiled steps,
    shuffled batches, validation loss, weight snapshots and the optimiser's learning rate. The
    policy (schedule, stop rules, events, History) is the bench's own, `ptycho_core.training`."""

    def __init__(self, gen: PinnTF, train: TrainingSet, val: TrainingSet | None, config: TrainConfig):
        self.model = gen.model
        self.optimizer = keras.optimizers.Adam(learning_rate=float(config.lr))
        self.optimizer.build(self.model.trainable_variables)
        self.train_step, self.eval_step = _make_steps(gen, train, config, self.optimizer)
        self.train, self.val = train, (val if val is not None and val.n_groups > 0 else None)
        if self.val is not None:
            _check_training_set(self.val, "validation")
        self.rng = np.random.default_rng(int(config.seed))
        self.batch_size = int(config.batch_size)

    def steps(self) -> int:
        return math.ceil(groups_per_epoch(self.train.n_groups, self.train.channels) / self.batch_size)

    def train_epoch(self, epoch: int, on_step) -> None:
        order = self.rng.permutation(self.train.n_groups)[: groups_per_epoch(self.train.n_groups, self.train.channels)]
        for size, args in _batches(self.train, order, self.batch_size):
            loss, norm = self.train_step(*args)
            if not (math.isfinite(float(loss)) and math.isfinite(float(norm))):
                raise NonFiniteLoss
            if not on_step(float(loss), size):
                return

    def evaluate(self) -> float | None:
        if self.val is None:
            return None
        total, count = 0.0, 0
        for size, args in _batches(self.val, np.arange(self.val.n_groups), self.batch_size):
            total += float(self.eval_step(*args)) * size
            count += size
        return total / count

    def snapshot(self) -> list[np.ndarray]:
        return [np.array(v.numpy(), copy=True) for v in self.model.weights]

    def restore(self, state: list[np.ndarray]) -> None:
        for variable, value in zip(self.model.weights, state):
            variable.assign(value)

    def set_lr(self, lr: float) -> None:
        self.optimizer.learning_rate = lr
