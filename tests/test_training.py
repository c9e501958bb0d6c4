"""The one training policy (`ptycho_core.training`), driven by a scripted backend: no framework."""

from __future__ import annotations

import math

import pytest

from ptycho_core.generator import NonFiniteLoss, TrainConfig
from ptycho_core.training import EVENTS_PER_EPOCH, EpochBackend, train


class Scripted(EpochBackend):
    """A backend whose epoch losses and validation losses are given in advance.

    Its "weights" are the epoch number they were snapshotted after; lr changes are recorded.
    """

    def __init__(self, losses, val_losses=None, steps=20, nan_step_at=None, sleep_epoch=None):
        self.losses, self.val_losses, self.n_steps = losses, val_losses, steps
        self.nan_step_at, self.sleep_epoch = nan_step_at, sleep_epoch
        self.epoch = 0
        self.weights = 0
        self.restored = None
        self.lrs = []

    def steps(self):
        return self.n_steps

    def train_epoch(self, epoch, on_step):
        self.epoch = epoch
        for step in range(1, self.n_steps + 1):
            if self.nan_step_at == (epoch, step):
                raise NonFiniteLoss
            self.weights = epoch
            if not on_step(self.losses[epoch - 1], 2):
                return

    def evaluate(self):
        return None if self.val_losses is None else self.val_losses[self.epoch - 1]

    def snapshot(self):
        return self.weights

    def restore(self, state):
        self.restored = state

    def set_lr(self, lr):
        self.lrs.append(lr)


def test_progress_has_step_events_before_the_last_step_and_one_epoch_end_with_val_loss():
    events = []
    backend = Scripted([1.0, 0.5], [0.9, 0.4], steps=20)
    history = train(backend, TrainConfig(epochs=2), events.append)
    ends = [e for e in events if e["step"] == e["steps"]]
    assert [(e["epoch"], e["val_loss"]) for e in ends] == [(1, 0.9), (2, 0.4)]
    steps = [e for e in events if e["step"] < e["steps"]]
    assert len(steps) == 2 * (EVENTS_PER_EPOCH - 1) and all(e["val_loss"] is None for e in steps)
    assert history.loss == [1.0, 0.5] and history.val_loss == [0.9, 0.4] and history.lr == [1e-3, 1e-3]
    assert backend.restored == 2


def test_learning_rate_halves_after_a_plateau_longer_than_half_the_patience():
    backend = Scripted([1.0] * 8, [1.0] * 8)
    history = train(backend, TrainConfig(epochs=8, patience=6, lr=1.0), lambda e: None)
    # patience 6 -> plateau patience 3: the lr drops after the 4th epoch without improvement.
    assert history.lr == [1.0] * 5 + [0.5] * 2
    assert history.stopped == "early stop at epoch 7: no validation improvement in 6 epochs"
    assert backend.restored == 1, "the best weights are restored"


def test_non_finite_loss_stops_and_keeps_the_best_weights():
    backend = Scripted([1.0, 0.5, 0.2], [0.9, 0.4, 0.1], nan_step_at=(3, 4))
    history = train(backend, TrainConfig(epochs=5), lambda e: None)
    assert history.stopped == "non-finite loss at epoch 3"
    assert history.loss == [1.0, 0.5] and backend.restored == 2
    nan_backend = Scripted([1.0, math.nan], None)
    assert train(nan_backend, TrainConfig(epochs=3), lambda e: None).stopped == "non-finite loss at epoch 2"


def test_without_validation_the_training_loss_is_monitored():
    backend = Scripted([1.0, 2.0, 3.0, 4.0], None)
    history = train(backend, TrainConfig(epochs=4, patience=2), lambda e: None)
    assert history.val_loss == [None, None, None]
    assert history.stopped == "early stop at epoch 3: no validation improvement in 2 epochs"
    assert backend.restored == 1


@pytest.mark.parametrize("timeout", [1e-9])
def test_timeout_stops_mid_epoch_gracefully(timeout):
    backend = Scripted([1.0, 0.5], [0.9, 0.4], steps=5)
    history = train(backend, TrainConfig(epochs=2, timeout=timeout), lambda e: None)
    assert history.stopped.startswith("timeout after") and "(epoch 1, step 1/5)" in history.stopped
    assert len(history.loss) == 1 and backend.restored == 1


def test_cosine_schedule_decays_step_by_step_to_the_floor_and_ignores_plateaus():
    from ptycho_core.training import COSINE_FLOOR

    backend = Scripted([1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], steps=10)
    history = train(backend, TrainConfig(epochs=4, lr=2e-3, schedule="cosine", patience=0), lambda e: None)
    assert len(backend.lrs) == 40  # one rate per step
    assert backend.lrs == sorted(backend.lrs, reverse=True)
    assert backend.lrs[-1] == pytest.approx(2e-3 * COSINE_FLOOR)
    assert backend.lrs[19] == pytest.approx(2e-3 * (COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5))  # half way
    assert history.lr[0] == pytest.approx(2e-3) and history.lr[2] == pytest.approx(backend.lrs[19])
    # the plateau rule (flat losses) would have halved the rate: with cosine it does not act
    plateau = Scripted([1.0] * 6, [1.0] * 6, steps=2)
    train(plateau, TrainConfig(epochs=6, patience=0), lambda e: None)
    assert plateau.lrs == [5e-4]


def test_unknown_schedule_is_a_usage_error():
    from ptycho_core.errors import UsageError

    with pytest.raises(UsageError, match="schedule"):
        TrainConfig(schedule="linear")
