"""`TorchGenerator`: turns any torch network into a ptycho generator (DESIGN section 7).

A network is a pure `nn.Module` built by `build(channels C, patch_size N)`. Its `forward(x)` takes
normalised amplitudes x (B, C, N, N) float32 (raw amplitudes times `input_scale`) and returns
complex patches (B, C, N, N) complex64 in units of s0 (roughly unit object amplitude). Under bf16
autocast a network should build its complex output from float32 parts (`torch.polar(a.float(),
p.float())`). The engine multiplies the output by one learnable global amplitude scale
`exp(log_scale)`, `log_scale` initialised at `log(s0)`, so predictions come out in contract units.

One training loop serves both kinds of generator:
    supervised=False  physics loss (PINN): optional overlap constraint for C > 1, the forward
                      model, Poisson NLL or amplitude MAE in normalised units over valid pixels
    supervised=True   MAE of amplitude (units of s0) and wrapped phase of ground-truth patches
with Adam, ReduceLROnPlateau on the validation loss, gradient clipping, early stop, a non-finite
loss guard, a wall-clock timeout, seeding, device and precision handling. The best weights (by
validation loss) are kept in memory and are what the generator holds after `fit`.

Checkpoint files written by `save(directory)`: `weights.safetensors` (network + log_scale) and
`generator.json` (channels, patch size, scales, canvas size, supervised, ...).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ptycho_core.errors import PtychoError, UsageError
from ptycho_core.generator import (
    History,
    ProgressCallback,
    TrainConfig,
    TrainingSet,
    groups_per_epoch,
    no_progress,
)
from ptycho_core.torch import losses
from ptycho_core.torch.weights import WEIGHTS_FILE, load_weights, save_weights

GENERATOR_FILE = "generator.json"
FORMAT = "ptycho-torch-generator"
FORMAT_VERSION = 1
#: Default batch size (groups) of `predict` before `fit` sets one.
PREDICT_BATCH_SIZE = 64
#: Training data up to this many bytes are moved to the device once, larger sets per batch.
PRELOAD_BYTES = 1 << 30
#: A validation loss counts as an improvement when below best - IMPROVEMENT * |best|.
IMPROVEMENT = 1e-4
#: Progress events per epoch, besides the epoch-end event.
EVENTS_PER_EPOCH = 10

NetworkBuilder = Callable[[int, int], nn.Module]


class ScaledNetwork(nn.Module):
    """A network plus the learnable global amplitude scale: output = exp(log_scale) * network(x)."""

    def __init__(self, network: nn.Module, s0: float = 1.0):
        super().__init__()
        self.network = network
        self.log_scale = nn.Parameter(torch.tensor(math.log(s0), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, N, N) normalised amplitudes -> (B, C, N, N) complex64 patches in contract units."""
        out = self.network(x)
        if not torch.is_tensor(out) or not out.is_complex():
            raise TypeError(f"{type(self.network).__name__}.forward must return a complex tensor (B, C, N, N)")
        with torch.autocast(x.device.type, enabled=False):
            return out.to(torch.complex64) * torch.exp(self.log_scale.float())


def resolve_device(device: str) -> torch.device:
    """ "auto" -> cuda when available else cpu; "cuda" without a GPU is a UsageError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("device 'cuda' requested but no CUDA GPU is available to torch")
    return torch.device(device)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """Seed python, numpy and torch; on CPU enable deterministic algorithms (warn only) for the block."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


class _Tensors:
    """A TrainingSet as torch tensors, sliced into batches of groups on the training device."""

    def __init__(self, data: TrainingSet, device: torch.device, supervised: bool):
        self.device = device
        self.n = data.n_groups
        arrays = {
            "diffraction": torch.from_numpy(np.ascontiguousarray(data.diffraction, dtype=np.float32)),
            "offsets": torch.from_numpy(np.ascontiguousarray(data.offsets, dtype=np.float64)),
        }
        mask = None if data.mask is None else torch.from_numpy(np.ascontiguousarray(data.mask, dtype=bool))
        self.shared_mask = mask if mask is not None and mask.ndim == 2 else None
        if mask is not None and mask.ndim == 4:
            arrays["mask"] = mask
        if supervised:
            arrays["gt"] = torch.from_numpy(np.ascontiguousarray(data.gt_patches, dtype=np.complex64))
        preload = sum(t.numel() * t.element_size() for t in arrays.values()) <= PRELOAD_BYTES
        target = device if preload else torch.device("cpu")
        self.arrays = {k: v.to(target) for k, v in arrays.items()}
        if self.shared_mask is not None:
            self.shared_mask = self.shared_mask.to(device)

    def batch(self, index: torch.Tensor) -> dict:
        out = {k: v[index.to(v.device)].to(self.device, non_blocking=True) for k, v in self.arrays.items()}
        out.setdefault("mask", self.shared_mask)
        return out

    def batches(self, batch_size: int, order: torch.Tensor | None = None):
        order = torch.arange(self.n) if order is None else order
        for start in range(0, len(order), batch_size):
            yield self.batch(order[start : start + batch_size])


class TorchGenerator:
    """A generator (DESIGN section 7) around a torch network built by `build(C, N)`.

    `name` is the generator's registered name (checked on load); `supervised` selects the
    supervised loss (ground-truth patches) instead of the physics loss.
    """

    def __init__(self, build: NetworkBuilder, *, name: str, supervised: bool = False):
        self.build = build
        self.name = name
        self.supervised = supervised
        self.model: ScaledNetwork | None = None
        self.meta: dict = {}
        self.device = torch.device("cpu")
        self.predict_batch_size = PREDICT_BATCH_SIZE
        self.history: History | None = None

    # --- the generator contract -------------------------------------------------------------

    @property
    def network(self) -> nn.Module:
        """The network (without the global scale) after `fit` or `load`."""
        return self._require_model().network

    def parameter_count(self) -> int:
        """Trainable parameters of the network plus the global log-scale."""
        return sum(p.numel() for p in self._require_model().parameters() if p.requires_grad)

    def fit(
        self, train: TrainingSet, val: TrainingSet, config: TrainConfig, progress: ProgressCallback = no_progress
    ) -> History:
        """Train on `train`, select weights on `val` (never the test set); returns the History.

        Training problems (non-finite loss, timeout, early stop) end training gracefully and are
        stated in `History.stopped`; the generator then holds the best weights seen.
        """
        progress = progress or no_progress
        self._check_data(train, "training")
        if val is not None and val.n_groups:
            self._check_data(val, "validation")
            if (val.channels, val.patch_size) != (train.channels, train.patch_size):
                raise PtychoError("validation groups must have the training set's gridsize and patch size")
        else:
            val = None
        device = resolve_device(config.device)
        with seeded(config.seed, device):
            self.meta = {
                "channels": train.channels,
                "patch_size": train.patch_size,
                "input_scale": float(train.input_scale),
                "s0": float(train.s0),
                "canvas_size": int(train.canvas_size),
            }
            self.model = ScaledNetwork(self.build(train.channels, train.patch_size), train.s0).to(device)
            self.device = device
            self.predict_batch_size = config.batch_size
            loop = _TrainingLoop(self, train, val, config, device, progress)
            self.history = loop.run()
        return self.history

    def predict(self, diffraction: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
        """Raw amplitudes (B, C, N, N) float32 -> patches (B, C, N, N) complex64 in contract units.

        Streams in batches of `predict_batch_size` groups under inference mode (memory bounded by
        one batch plus the output). `offsets` (B, C, 2) are accepted for the contract; the
        per-channel patches are returned before any overlap averaging.
        """
        model = self._require_model()
        diffraction = np.asarray(diffraction)
        c, n = self.meta["channels"], self.meta["patch_size"]
        if diffraction.ndim != 4 or diffraction.shape[1:] != (c, n, n):
            raise PtychoError(f"{self.name}: expected diffraction (B, {c}, {n}, {n}), got shape {diffraction.shape}")
        out = np.empty(diffraction.shape, dtype=np.complex64)
        scale = self.meta["input_scale"]
        model.eval()
        with torch.inference_mode():
            for start in range(0, len(diffraction), self.predict_batch_size):
                chunk = np.ascontiguousarray(diffraction[start : start + self.predict_batch_size], dtype=np.float32)
                x = torch.from_numpy(chunk).to(self.device) * scale
                out[start : start + len(chunk)] = model(x).to("cpu").numpy()
        return out

    def save(self, directory) -> dict:
        """Write `weights.safetensors` and `generator.json` to `directory`; returns the JSON `extra`."""
        model = self._require_model()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        extra = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "generator": self.name,
            "supervised": self.supervised,
            **self.meta,
            "parameters": self.parameter_count(),
        }
        save_weights(model, directory / WEIGHTS_FILE, metadata={"format": FORMAT, "generator": self.name})
        (directory / GENERATOR_FILE).write_text(json.dumps(extra, indent=2) + "\n")
        return extra

    def load(self, directory, device: str = "auto") -> TorchGenerator:
        """Read `generator.json`, build the network and load `weights.safetensors` (on a fresh instance).

        A different generator name, format version, or weights that do not fit the network are
        refused with a PtychoError.
        """
        directory = Path(directory)
        path = directory / GENERATOR_FILE
        try:
            extra = json.loads(path.read_text())
        except FileNotFoundError:
            raise PtychoError(f"{directory}: no {GENERATOR_FILE}: not a saved torch generator") from None
        except json.JSONDecodeError as exc:
            raise PtychoError(f"{path}: invalid JSON ({exc})") from None
        if extra.get("format") != FORMAT or extra.get("format_version") != FORMAT_VERSION:
            raise PtychoError(
                f"{path}: format {extra.get('format')!r} version {extra.get('format_version')!r} is not "
                f"{FORMAT!r} version {FORMAT_VERSION}"
            )
        if extra.get("generator") != self.name:
            raise PtychoError(f"{path}: saved by generator {extra.get('generator')!r}, not {self.name!r}")
        if bool(extra.get("supervised")) != self.supervised:
            raise PtychoError(f"{path}: supervised={extra.get('supervised')} does not match {self.supervised}")
        try:
            self.meta = {k: extra[k] for k in ("channels", "patch_size", "input_scale", "s0", "canvas_size")}
        except KeyError as exc:
            raise PtychoError(f"{path}: missing key {exc}") from None
        model = ScaledNetwork(self.build(self.meta["channels"], self.meta["patch_size"]), self.meta["s0"])
        load_weights(model, directory / WEIGHTS_FILE)
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        return self

    # --- helpers ----------------------------------------------------------------------------

    def _require_model(self) -> ScaledNetwork:
        if self.model is None:
            raise PtychoError(f"{self.name}: the network is not built yet: call fit() or load() first")
        return self.model

    def _check_data(self, data: TrainingSet, role: str) -> None:
        if data.diffraction.ndim != 4 or data.diffraction.shape[-1] != data.diffraction.shape[-2]:
            raise PtychoError(f"{role} diffraction must be (B, C, N, N), got shape {data.diffraction.shape}")
        if self.supervised and data.gt_patches is None:
            raise PtychoError(
                f"{self.name} is a supervised generator: its {role} data need ground-truth patches "
                "(a dataset with a ground-truth object)"
            )

    def _loss(self, model: ScaledNetwork, batch: dict, ctx: dict) -> torch.Tensor:
        """The training loss of one batch (float32 scalar)."""
        x = batch["diffraction"] * ctx["input_scale"]
        with torch.autocast(ctx["device"].type, dtype=torch.bfloat16, enabled=ctx["bf16"]):
            patches = model(x)
        if self.supervised:
            return losses.supervised_loss(patches, batch["gt"], ctx["s0"])
        return losses.physics_loss(
            patches,
            batch["diffraction"],
            ctx["probe"],
            ctx["input_scale"],
            offsets=batch["offsets"],
            canvas_size=ctx["canvas_size"],
            mask=batch["mask"],
            kind=ctx["loss"],
        )


class _NonFinite(Exception):
    pass


class _TrainingLoop:
    """One `fit` call: optimiser, schedule, clipping, validation, best weights, stop rules."""

    def __init__(self, gen: TorchGenerator, train: TrainingSet, val, config: TrainConfig, device, progress):
        self.gen, self.config, self.device, self.progress = gen, config, device, progress
        self.model = gen.model
        self.train = _Tensors(train, device, gen.supervised)
        self.val = _Tensors(val, device, gen.supervised) if val is not None else None
        self.ctx = {
            "device": device,
            "bf16": config.precision == "bf16",
            "input_scale": float(train.input_scale),
            "s0": float(train.s0),
            "canvas_size": int(train.canvas_size),
            "probe": torch.from_numpy(np.ascontiguousarray(train.probe, dtype=np.complex64)).to(device),
            "loss": config.loss,
        }
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        plateau = max(1, config.patience // 2) if config.patience else 3
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, factor=0.5, patience=plateau)
        self.shuffle = torch.Generator().manual_seed(config.seed)
        self.groups_per_epoch = groups_per_epoch(train.n_groups, train.channels)
        self.steps_per_epoch = math.ceil(self.groups_per_epoch / config.batch_size)

    def _snapshot(self) -> dict:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def _evaluate(self, data: _Tensors) -> float:
        self.model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for batch in data.batches(self.config.batch_size):
                b = batch["diffraction"].shape[0]
                total += float(self.gen._loss(self.model, batch, self.ctx)) * b
                count += b
        return total / max(count, 1)

    def _train_epoch(self, epoch: int, start: float) -> tuple[float, str]:
        """One pass over shuffled training groups; returns (mean loss, stop reason or "")."""
        cfg = self.config
        steps = self.steps_per_epoch
        every = max(1, steps // EVENTS_PER_EPOCH)
        order = torch.randperm(self.train.n, generator=self.shuffle)[: self.groups_per_epoch]
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.model.train()
        total, count = 0.0, 0
        for step, batch in enumerate(self.train.batches(cfg.batch_size, order), start=1):
            loss = self.gen._loss(self.model, batch, self.ctx)
            if not torch.isfinite(loss):
                raise _NonFinite
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_norm and cfg.clip_norm > 0:
                norm = torch.nn.utils.clip_grad_norm_(params, cfg.clip_norm)
                if not torch.isfinite(norm):
                    raise _NonFinite
            self.optimizer.step()
            b = batch["diffraction"].shape[0]
            value = float(loss.detach())
            total += value * b
            count += b
            if step % every == 0 or step == steps:
                event = {"epoch": epoch, "epochs": cfg.epochs, "step": step, "steps": steps}
                self.progress({**event, "loss": total / count, "val_loss": None, "phase": "step"})
            elapsed = time.monotonic() - start
            if cfg.timeout and elapsed > cfg.timeout and step < steps:
                return total / count, f"timeout after {elapsed:.1f} s (epoch {epoch}, step {step}/{steps})"
        return total / max(count, 1), ""

    def run(self) -> History:
        cfg = self.config
        history = History()
        best_state, best = self._snapshot(), math.inf
        bad_epochs = 0
        start = time.monotonic()
        steps = self.steps_per_epoch
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.monotonic()
            lr = self.optimizer.param_groups[0]["lr"]
            try:
                loss, stopped = self._train_epoch(epoch, start)
                val_loss = self._evaluate(self.val) if self.val is not None else loss
                if not math.isfinite(val_loss):
                    raise _NonFinite
            except _NonFinite:
                history.stopped = f"non-finite loss at epoch {epoch}"
                break
            history.loss.append(loss)
            history.val_loss.append(val_loss if self.val is not None else None)
            history.lr.append(lr)
            history.seconds.append(time.monotonic() - t0)
            self.scheduler.step(val_loss)
            if not math.isfinite(best) or val_loss < best - IMPROVEMENT * abs(best):
                best, best_state, bad_epochs = val_loss, self._snapshot(), 0
            else:
                bad_epochs += 1
            event = {"epoch": epoch, "epochs": cfg.epochs, "step": steps, "steps": steps}
            self.progress({**event, "loss": loss, "val_loss": history.val_loss[-1], "phase": "epoch", "lr": lr})
            elapsed = time.monotonic() - start
            if not stopped and cfg.timeout and elapsed > cfg.timeout and epoch < cfg.epochs:
                stopped = f"timeout after {elapsed:.1f} s (epoch {epoch})"
            if stopped:
                history.stopped = stopped
                break
            if cfg.patience and bad_epochs >= cfg.patience and epoch < cfg.epochs:
                history.stopped = f"early stop at epoch {epoch}: no validation improvement in {cfg.patience} epochs"
                break
        self.model.load_state_dict(best_state)
        self.model.eval()
        return history
