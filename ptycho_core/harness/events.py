"""Events a comparison emits while it runs: `run(request, on_event)` calls `on_event(event)`.

The core never prints; a front end (the CLI's `ptycho_cli.progress.CompareDisplay`) renders
these. Every event is a small frozen dataclass; `run` names a (generator, seed) run folder.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Note:
    """A line worth showing: the plan, a skipped generator, a reused or redone run."""

    text: str


@dataclass(frozen=True)
class ChildrenStarting:
    """Children are about to run, for these run names (in order)."""

    runs: tuple


@dataclass(frozen=True)
class RunStarted:
    run: str


@dataclass(frozen=True)
class RunProgress:
    """A trainer's progress event (docs/design.md#contracts); step == steps ends an epoch."""

    run: str
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int = 0
    loss: float | None = None
    val_loss: float | None = None

    @property
    def epoch_end(self) -> bool:
        return self.step == self.steps


@dataclass(frozen=True)
class RunPredicting:
    run: str


@dataclass(frozen=True)
class RunFinished:
    run: str
    ok: bool
    reason: str
    seconds: float


@dataclass(frozen=True)
class ChildrenDone:
    """Every child has ended."""


def ignore(event) -> None:
    """An `on_event` that drops every event."""
