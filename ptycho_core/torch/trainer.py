"""`TorchGenerator`: turns any torch network into a ptycho generator (docs/design.md#contracts).

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
with Adam, gradient clipping, seeding, device and precision handling here, and the bench's one
training policy (schedule, early stop, non-finite loss guard, timeout, events, best weights)
from `ptycho_core.training`. The best weights (by validation loss) are what the generator holds
after `fit`.

Checkpoint files written by `save(directory)`: `weights.safetensors` (network + log_scale) and
`generator.json` (channels, patch size, scales, canvas size, supervised, ...).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ptycho_core import training
from ptycho_core.errors import PtychoError, UsageError
from ptycho_core.generator import (
    History,
    NonFiniteLoss,
    ProgressCallback,
    TrainConfig,
    TrainingSet,
    groups_per_epoch,
    no_progress,
)
from ptycho_core.torch import distributed, losses
from ptycho_core.torch import settings as engine
from ptycho_core.torch.weights import WEIGHTS_FILE, load_weights, save_weights

GENERATOR_FILE = "generator.json"
#: Pixels per CPU forward pass in `predict` (16 patterns of 64x64, 64 of 32x32): the inner batch
#: whose activations stay in cache, measured with benchmarks/bench_train.py (see docs/speed.md).
CPU_INFERENCE_PIXELS = 16 * 64 * 64
FORMAT = "ptycho-torch-generator"
FORMAT_VERSION = 1
#: Training data up to this many bytes are moved to the device once, larger sets per batch.
PRELOAD_BYTES = 1 << 30

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


def resolve_precision(precision: str, device: torch.device) -> str:
    """ "auto" -> "bf16" where `device` computes bf16 natively (CUDA with bf16 support; a CPU with
    AVX512-BF16 or AMX tiles), else "fp32"; "fp32" and "bf16" are kept as asked."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    native = (
        getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    )
    return "bf16" if native else "fp32"


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
    """A generator (docs/design.md#contracts) around a torch network built by `build(C, N)`.

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
        replicas = distributed.replicas(device)  # None unless under torchrun
        device = replicas.device if replicas is not None else device
        with seeded(config.seed, device):
            self.meta = {
                "channels": train.channels,
                "patch_size": train.patch_size,
                "input_scale": float(train.input_scale),
                "s0": float(train.s0),
                "canvas_size": int(train.canvas_size),
                "precision": resolve_precision(engine.value(config, engine.PRECISION), device),
            }
            self.model = ScaledNetwork(self.build(train.channels, train.patch_size), train.s0).to(device)
            self.device = device
            backend = _TorchBackend(self, train, val, config, device, replicas)
            self.history = training.train(backend, config, progress)
        return self.history

    def predict(self, diffraction: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
        """Raw amplitudes (B, C, N, N) float32 -> patches (B, C, N, N) complex64 in contract units.

        Processes the B groups it is given under inference mode (the caller batches:
        `ptycho_core.pipeline.predict_groups`); on the CPU in forward passes of about
        CPU_INFERENCE_PIXELS pixels whatever B is (activations stay in cache), under bf16 autocast
        when `inference_precision` is bf16. `offsets` (B, C, 2) are accepted for the contract; the
        per-channel patches are returned before any overlap averaging.
        """
        model = self._require_model()
        diffraction = np.asarray(diffraction)
        c, n = self.meta["channels"], self.meta["patch_size"]
        if diffraction.ndim != 4 or diffraction.shape[1:] != (c, n, n):
            raise PtychoError(f"{self.name}: expected diffraction (B, {c}, {n}, {n}), got shape {diffraction.shape}")
        model.eval()
        step = self.inference_batch(len(diffraction))
        bf16 = self.inference_precision == "bf16"
        out = np.empty(diffraction.shape, dtype=np.complex64)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            for start in range(0, len(diffraction), step):
                chunk = np.ascontiguousarray(diffraction[start : start + step], dtype=np.float32)
                x = torch.from_numpy(chunk).to(self.device)
                out[start : start + len(chunk)] = model(x * self.meta["input_scale"]).to("cpu").numpy()
        return out

    def inference_batch(self, groups: int) -> int:
        """Groups per forward pass of `predict` when it is given `groups` groups: about
        CPU_INFERENCE_PIXELS pixels on a CPU, all of them in one pass on a GPU."""
        if self.device.type != "cpu":
            return max(1, groups)
        c, n = self.meta["channels"], self.meta["patch_size"]
        return max(1, CPU_INFERENCE_PIXELS // (c * n * n))

    @property
    def inference_precision(self) -> str:
        """ "bf16" when the network was trained in bf16 and this device computes bf16 natively
        (`resolve_precision("auto")`), else "fp32" (bench_train.py --quality-epochs measures both)."""
        trained = self.meta.get("precision", "fp32")
        return "bf16" if trained == "bf16" and resolve_precision("auto", self.device) == "bf16" else "fp32"

    def device_info(self) -> dict:
        """The GPU this generator uses (None on CPU) and torch's peak GPU memory in MiB."""
        if self.device.type != "cuda":
            return {"gpu": None, "peak_gpu_mib": None}
        return {
            "gpu": torch.cuda.get_device_name(self.device),
            "peak_gpu_mib": torch.cuda.max_memory_allocated(self.device) / 1024**2,
        }

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
        self.meta["precision"] = "bf16" if extra.get("precision") == "bf16" else "fp32"
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

    def _loss(self, model: Callable, batch: dict, ctx: dict) -> torch.Tensor:
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


class _TorchBackend(training.EpochBackend):
    """The torch side of one `fit` (`ptycho_core.training.EpochBackend`): Adam, clipping, shuffled
    batches on the device, validation loss, weight snapshots. The policy lives in `training.train`.

    With `replicas` (torchrun, `ptycho_core.torch.distributed`) the network trains under DDP on this
    rank's share of each epoch's global order, and step losses, validation sums and stop decisions
    are all-reduced: every rank reports and decides the same."""

    def __init__(self, gen: TorchGenerator, train: TrainingSet, val, config: TrainConfig, device, replicas=None):
        self.gen, self.config, self.replicas = gen, config, replicas
        self.model = gen.model
        self.net = replicas.wrap(self.model) if replicas is not None else self.model  # what trains
        self.train = _Tensors(train, device, gen.supervised)
        self.val = _Tensors(val, device, gen.supervised) if val is not None else None
        self.ctx = {
            "device": device,
            "bf16": resolve_precision(engine.value(config, engine.PRECISION), device) == "bf16",
            "input_scale": float(train.input_scale),
            "s0": float(train.s0),
            "canvas_size": int(train.canvas_size),
            "probe": torch.from_numpy(np.ascontiguousarray(train.probe, dtype=np.complex64)).to(device),
            "loss": config.loss,
        }
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        # the training steps' forward: compiled on request (evaluation and predict stay eager)
        self.forward = torch.compile(self.net) if engine.value(config, engine.COMPILE) == "on" else self.net
        self.shuffle = torch.Generator().manual_seed(config.seed)
        self.groups_per_epoch = groups_per_epoch(train.n_groups, train.channels)

    def steps(self) -> int:
        share = math.ceil(self.groups_per_epoch / (self.replicas.world_size if self.replicas else 1))
        return math.ceil(share / self.config.batch_size)

    def agree(self, flag: bool) -> bool:
        """Whether any replica says so (a stop decision taken on every rank alike)."""
        return self.replicas.any(flag) if self.replicas is not None else flag

    def snapshot(self) -> dict:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state)
        self.model.eval()

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def evaluate(self) -> float | None:
        if self.val is None:
            return None
        self.model.eval()
        total, count = 0.0, 0
        share = (
            None if self.replicas is None else torch.arange(self.val.n)[self.replicas.rank :: self.replicas.world_size]
        )
        with torch.no_grad():
            for batch in self.val.batches(self.config.batch_size, share):
                b = batch["diffraction"].shape[0]
                total += float(self.gen._loss(self.model, batch, self.ctx)) * b
                count += b
        if self.replicas is not None:
            total, count = self.replicas.sum(total, count)
        return total / max(count, 1)

    def train_epoch(self, epoch: int, on_step) -> None:
        """One epoch: `groups_per_epoch` groups drawn at random (every pattern about once), in
        batches, reporting each step's loss to `on_step`."""
        clip = self.config.clip_norm
        order = torch.randperm(self.train.n, generator=self.shuffle)[: self.groups_per_epoch]
        if self.replicas is not None:
            order = self.replicas.shard(order)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.model.train()
        for batch in self.train.batches(self.config.batch_size, order):
            loss = self.gen._loss(self.forward, batch, self.ctx)
            value, groups = float(loss.detach()), batch["diffraction"].shape[0]
            if self.replicas is not None:  # the global batch's mean loss, on every rank
                total, groups = self.replicas.sum(value * groups, groups)
                value = total / groups
            if not math.isfinite(value):
                raise NonFiniteLoss
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip and clip > 0 and not torch.isfinite(torch.nn.utils.clip_grad_norm_(params, clip)):
                raise NonFiniteLoss
            self.optimizer.step()
            if not on_step(value, int(groups)):
                return
