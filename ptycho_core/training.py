"""The one training policy of the bench (docs/design.md#contracts), framework-neutral.

`train(backend, config, progress) -> History` owns everything that must be the same for every
generator of a comparison: the epochs, the stop rules, the learning-rate schedule, the timeout,
the progress events and the History. A framework supplies a small `EpochBackend`: run one
shuffled epoch, evaluate the validation set, snapshot and restore weights, set the learning
rate. `ptycho_core.torch.trainer` and the TensorFlow plugin both train through it.

The policy:
- monitored loss: the validation loss (the training loss when there is no validation set); it
  improves when below best - IMPROVEMENT * |best|; the best weights are kept and restored at
  the end, whatever ends training.
- schedule (`config.schedule`): "plateau" multiplies the learning rate by PLATEAU_FACTOR when the
  monitored loss has not improved for more than `plateau_patience(config)` epochs since the last
  improvement or change; "cosine" sets it before every step to
  lr * (COSINE_FLOOR + (1 - COSINE_FLOOR) * (1 + cos(pi * t)) / 2), t the fraction of the
  `epochs * steps` steps done, so a short budget still ends on small steps.
- stop rules: `config.epochs`; early stop after `config.patience` epochs without improvement
  (0: never); a non-finite loss (the backend raises NonFiniteLoss, or a loss is NaN/inf) stops
  with "non-finite loss at epoch k"; `config.timeout` seconds of training (0: none) stop
  gracefully, mid-epoch or at an epoch's end.
- events: up to EVENTS_PER_EPOCH step events per epoch with the running mean loss (steps before
  the last, `val_loss` None), then one epoch event with step == steps, the epoch's loss, its
  val_loss (None without a validation set) and lr. Epochs and steps count from 1.
"""

from __future__ import annotations

import math
import time
from typing import Any, Protocol

from ptycho_core.generator import History, NonFiniteLoss, ProgressCallback, TrainConfig

#: A monitored loss counts as an improvement when below best - IMPROVEMENT * |best|.
IMPROVEMENT = 1e-4
#: The learning rate is multiplied by this on a plateau.
PLATEAU_FACTOR = 0.5
#: The cosine schedule ends at this fraction of the initial learning rate.
COSINE_FLOOR = 0.01
#: Progress events per epoch, besides the epoch-end event.
EVENTS_PER_EPOCH = 10


class EpochBackend(Protocol):
    """What a framework supplies to `train`. Subclass it (`class MyBackend(EpochBackend)`) to
    inherit `agree` for a backend without replicas."""

    def steps(self) -> int:
        """Training steps (batches) per epoch."""

    def train_epoch(self, epoch: int, on_step) -> None:
        """One pass over the shuffled training groups; after each step call
        `on_step(loss, groups)` (the step's mean loss, the groups in the batch); stop the epoch
        when it returns False. Raise NonFiniteLoss for a non-finite gradient."""

    def evaluate(self) -> float | None:
        """Mean validation loss per group, or None without a validation set."""

    def snapshot(self) -> Any:
        """A copy of the current weights."""

    def restore(self, state: Any) -> None:
        """Put back the weights of a snapshot."""

    def set_lr(self, lr: float) -> None:
        """Change the optimiser's learning rate."""

    def agree(self, flag: bool) -> bool:
        """Whether any replica says so: the timeout, the one decision taken from a clock, goes
        through it so every data-parallel replica stops alike. A backend without replicas returns
        `flag` (`alone`), which is what subclasses inherit."""
        return alone(flag)


def alone(flag: bool) -> bool:
    """`EpochBackend.agree` of a backend without replicas: its own decision."""
    return flag


def plateau_patience(config: TrainConfig) -> int:
    """Epochs without improvement tolerated before the learning rate drops."""
    return max(1, config.patience // 2) if config.patience else 3


class _Epoch:
    """The running state of one epoch: mean loss, step events, mid-epoch timeout."""

    def __init__(self, epoch: int, steps: int, config: TrainConfig, start: float, progress: ProgressCallback, agree):
        self.epoch, self.steps, self.config, self.start, self.progress = epoch, steps, config, start, progress
        self.agree = agree
        self.every = max(1, steps // EVENTS_PER_EPOCH)
        self.step, self.total, self.count = 0, 0.0, 0
        self.stopped = ""

    def on_step(self, loss: float, groups: int) -> bool:
        loss = float(loss)
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"non-finite loss at epoch {self.epoch}")
        self.step += 1
        self.total += loss * groups
        self.count += groups
        if self.step < self.steps and self.step % self.every == 0:
            event = {"epoch": self.epoch, "epochs": self.config.epochs, "step": self.step, "steps": self.steps}
            self.progress({**event, "loss": self.mean, "val_loss": None, "phase": "step"})
        elapsed = time.monotonic() - self.start
        if self.config.timeout and self.agree(elapsed > self.config.timeout) and self.step < self.steps:
            self.stopped = f"timeout after {elapsed:.1f} s (epoch {self.epoch}, step {self.step}/{self.steps})"
            return False
        return True

    @property
    def mean(self) -> float:
        return self.total / max(self.count, 1)


def cosine_lr(config: TrainConfig, done: int, total: int) -> float:
    """The cosine schedule's learning rate after `done` of `total` steps."""
    t = min(1.0, done / max(1, total))
    return config.lr * (COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * t)))


def _stepper(backend: EpochBackend, config: TrainConfig, state: _Epoch, steps: int):
    """`on_step` for one epoch: the epoch's bookkeeping, then (cosine) the next step's rate."""
    if config.schedule != "cosine":
        return state.on_step
    total = config.epochs * steps

    def on_step(loss: float, groups: int) -> bool:
        going = state.on_step(loss, groups)
        backend.set_lr(cosine_lr(config, (state.epoch - 1) * steps + state.step, total))
        return going

    return on_step


def train(backend: EpochBackend, config: TrainConfig, progress: ProgressCallback) -> History:
    """Train with the bench's policy (module docstring); the backend ends with the best weights."""
    history = History()
    best, best_state = math.inf, backend.snapshot()
    bad_epochs = since_change = 0
    lr = float(config.lr)
    start = time.monotonic()
    steps = backend.steps()
    agree = backend.agree if callable(getattr(backend, "agree", None)) else _missing_agree(backend)
    for epoch in range(1, config.epochs + 1):
        t0 = time.monotonic()
        state = _Epoch(epoch, steps, config, start, progress, agree)
        if config.schedule == "cosine":
            lr = cosine_lr(config, (epoch - 1) * steps, config.epochs * steps)
        try:
            backend.train_epoch(epoch, _stepper(backend, config, state, steps))
            val_loss = backend.evaluate()
            if val_loss is not None and not math.isfinite(val_loss):
                raise NonFiniteLoss
        except NonFiniteLoss:
            history.stopped = f"non-finite loss at epoch {epoch}"
            break
        _record(history, state.mean, val_loss, lr, time.monotonic() - t0)
        monitored = val_loss if val_loss is not None else state.mean
        if not math.isfinite(best) or monitored < best - IMPROVEMENT * abs(best):
            best, best_state, bad_epochs, since_change = monitored, backend.snapshot(), 0, 0
        else:
            bad_epochs, since_change = bad_epochs + 1, since_change + 1
            if config.schedule == "plateau" and since_change > plateau_patience(config):
                lr, since_change = lr * PLATEAU_FACTOR, 0
                backend.set_lr(lr)
        event = {"epoch": epoch, "epochs": config.epochs, "step": steps, "steps": steps}
        progress({**event, "loss": state.mean, "val_loss": val_loss, "phase": "epoch", "lr": history.lr[-1]})
        history.stopped = _stop_reason(state.stopped, config, epoch, bad_epochs, time.monotonic() - start, agree)
        if history.stopped:
            break
    backend.restore(best_state)
    return history


def _missing_agree(backend):
    raise TypeError(
        f"{type(backend).__name__} is not a full EpochBackend: it lacks agree(flag) -> bool (subclass "
        "ptycho_core.training.EpochBackend to inherit the single-process one)"
    )


def _record(history: History, loss: float, val_loss: float | None, lr: float, seconds: float) -> None:
    history.loss.append(loss)
    history.val_loss.append(val_loss)
    history.lr.append(lr)
    history.seconds.append(seconds)


def _stop_reason(stopped: str, config: TrainConfig, epoch: int, bad_epochs: int, elapsed: float, agree=alone) -> str:
    """Why training stops after this epoch ("" to go on)."""
    if stopped:
        return stopped
    if epoch >= config.epochs:
        return ""
    if config.timeout and agree(elapsed > config.timeout):
        return f"timeout after {elapsed:.1f} s (epoch {epoch})"
    if config.patience and bad_epochs >= config.patience:
        return f"early stop at epoch {epoch}: no validation improvement in {config.patience} epochs"
    return ""
