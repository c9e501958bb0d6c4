"""What every conformance check shares: the tiny budgets, the result record, the error types, the
spec lookup, and `Checker`, the base of the generator, loader and stitcher checkers."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ptycho_core.errors import PtychoError
from ptycho_core.plugins import PluginHost

#: Modules that registration (listing) must never import.
HEAVY_MODULES = ("numpy", "torch", "tensorflow", "keras", "jax")

#: The tiny simulation every check uses (SimConfig fields): N=16, 48x48 object, 8x8 = 64 patterns.
TINY_SIM = {"patch_size": 16, "object_size": 48, "step": 4.0, "train_objects": 1}

#: The short training budget of the checks (TrainConfig fields).
TINY_TRAIN = {"epochs": 3, "batch_size": 8, "lr": 1e-3, "seed": 0, "device": "cpu", "patience": 0}

#: Relative tolerance (of max |prediction|) for "reproduces" and "the same result".
TOLERANCE = 1e-6

#: Relative RMSE within which a stitcher must recover the object from its true patches.
STITCH_TOLERANCE = 1e-3

#: The same at the simulation's sub-pixel positions, on a smooth object whose phase ramps by
#: SUBPIXEL_PHASE_SLOPE rad/px: the core stitchers reach 0.5-0.7 %, the mynet example's Gaussian
#: stitcher 0.2 %; rounding the positions gives 1.2-1.7 %, truncating them 8 %.
SUBPIXEL_STITCH_TOLERANCE = 1e-2
SUBPIXEL_PHASE_SLOPE = 0.1


class ConformanceError(AssertionError):
    """A component breaks a ptycho contract; the message says which and how."""


class Unavailable(Exception):
    """The component's framework is not installed here (skipped, or failed under CI=true)."""


@dataclass
class CheckResult:
    """The outcome of one check: `status` is "passed", "failed" or "skipped"."""

    check: str
    status: str
    detail: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def __str__(self) -> str:
        text = f"{self.status:7s} {self.check} ({self.seconds:.1f} s)"
        return f"{text}: {self.detail}" if self.detail else text


def fail(message: str) -> ConformanceError:
    return ConformanceError(message)


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def environment_registry():
    """The registry the `ptycho` command would see (plugins discovered, environment included)."""
    return PluginHost.from_environment().registry()


def find_spec(kind: str, name: str, registry=None):
    """The registered spec of `kind` ("generator", "loader", "stitcher") called `name` or `dist:name`.

    Without a registry, plugins are discovered as the `ptycho` command would (environment included).
    """
    registry = environment_registry() if registry is None else registry
    try:
        return registry.get(kind, name)
    except PtychoError as exc:
        problems = "; ".join(f"{p.plugin}: {p.message}" for p in registry.problems)
        hint = f" (plugin problems: {problems})" if problems else ""
        load = os.environ.get("PTYCHO_LOAD_PLUGINS")
        if load is not None:
            hint += f" (PTYCHO_LOAD_PLUGINS={load!r} limits discovery)"
        raise fail(f"{exc}{hint}: is the plugin installed (pip install -e .)?") from None


def raise_failures(what: str, results: list[CheckResult]) -> list[CheckResult]:
    """`results`, or a ConformanceError listing every result if any failed."""
    failed = [r for r in results if not r.ok]
    if failed:
        lines = "\n".join(f"  {r}" for r in results)
        raise ConformanceError(f"{what}: {len(failed)} of {len(results)} checks failed\n{lines}")
    return results


#: The keys of every progress event (docs/writing-a-plugin.md, section 5).
PROGRESS_KEYS = ("epoch", "epochs", "step", "steps", "loss", "val_loss")


def check_progress(events: list, val_loss: list) -> None:
    """Every event a dict with PROGRESS_KEYS; one epoch-end event (step == steps) per epoch, carrying
    that epoch's validation loss when History.val_loss has one (`val_loss`: one entry per epoch)."""
    epochs = len(val_loss)
    if not events:
        raise fail("fit never called progress(event)")
    bad = [e for e in events if not isinstance(e, dict) or not set(PROGRESS_KEYS) <= set(e)]
    if bad:
        raise fail(f"progress events must be dicts with {', '.join(PROGRESS_KEYS)}; got {bad[0]}")
    ends = [e for e in events if e["step"] is not None and e["step"] == e["steps"]]
    if [e["epoch"] for e in ends] != list(range(1, epochs + 1)):
        raise fail(f"expected one epoch-end event (step == steps) for each of epochs 1..{epochs}, got {ends}")
    given = [isinstance(e["val_loss"], (int, float)) for e in ends]
    if given != [isinstance(v, (int, float)) for v in val_loss]:
        raise fail(f"epoch-end events must carry the epoch's val_loss (History.val_loss {val_loss}), got {ends}")
