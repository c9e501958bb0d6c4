"""What every conformance check shares: the tiny budgets, the result record, the error types, the
spec lookup, and `Checker`, the base of the generator, loader and stitcher checkers."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ptycho_core.errors import PtychoError

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
    from ptycho_core.plugins import PluginHost

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


class Checker:
    """The checks every component kind shares (spec, cheap registration), its temporary folder, and
    `run`, which runs named checks and records each outcome. Subclasses set `kind` and `checks`."""

    kind = ""
    checks: tuple[str, ...] = ()

    def __init__(
        self,
        spec,
        heavy_modules: tuple[str, ...] = HEAVY_MODULES,
        plugin_module: str | None = None,
        extra_path: tuple[str, ...] = (),
    ):
        self.spec = spec
        self.heavy_modules = heavy_modules
        self.plugin_module = plugin_module
        self.extra_path = tuple(extra_path)
        self._workdir: str | None = None

    def close(self) -> None:
        """Remove the temporary folder."""
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def _tmp(self, name: str = "") -> Path:
        if self._workdir is None:
            self._workdir = tempfile.mkdtemp(prefix="ptycho-conformance-")
        path = Path(self._workdir) / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def require_available(self) -> None:
        missing = self.spec.missing_requirements()
        if missing:
            raise Unavailable(f"{self.kind} {self.spec.name!r} is unavailable: missing {', '.join(missing)}")

    def spec_is_complete(self) -> None:
        from ptycho_core.testing.conformance.spec import check_spec

        check_spec(self.spec, self.kind)

    def registration_imports_no_framework(self) -> None:
        from ptycho_core.testing.conformance.registration import check_registration

        check_registration(self.spec, self.kind, self.plugin_module, self.heavy_modules, self.extra_path)

    def run(self, names: tuple[str, ...] | None = None) -> list[CheckResult]:
        """Run the checks `names` (default: all of this kind) and close; never raises for failures."""
        results = []
        try:
            for name in self.checks if names is None else names:
                start = time.perf_counter()
                status, detail = self._outcome(name)
                results.append(CheckResult(name, status, detail, time.perf_counter() - start))
        finally:
            self.close()
        return results

    def _outcome(self, name: str) -> tuple[str, str]:
        try:
            getattr(self, name)()
        except Unavailable as exc:
            return ("failed" if in_ci() else "skipped"), str(exc)
        except ConformanceError as exc:
            return "failed", str(exc)
        except Exception as exc:  # a bug in the component under test: report it, keep checking
            return "failed", f"{type(exc).__name__}: {exc}"
        return "passed", ""


def raise_failures(what: str, results: list[CheckResult]) -> list[CheckResult]:
    """`results`, or a ConformanceError listing every result if any failed."""
    failed = [r for r in results if not r.ok]
    if failed:
        lines = "\n".join(f"  {r}" for r in results)
        raise ConformanceError(f"{what}: {len(failed)} of {len(results)} checks failed\n{lines}")
    return results
