"""The iterative generator checks (`kind="iterative"`, docs/design.md#contracts): the factory builds an
object with `reconstruct`; on the tiny simulated test scan it returns a `Reconstruction` whose
object is (H, W) complex64 on the scan's object grid, finite and not constant; its History has one
finite loss per iteration with one epoch-end progress event each; the object explains the data
better than a flat object does (the data-space error of docs/design.md#scoring, the metric every row
is scored by); the same seed gives the same object; the core scores it like any row."""

from __future__ import annotations

import math

from ptycho_core.errors import PtychoError
from ptycho_core.generator import TrainConfig
from ptycho_core.registry import GeneratorSpec
from ptycho_core.testing.conformance.base import (
    TINY_SIM,
    TOLERANCE,
    CheckResult,
    check_progress,
    fail,
    find_spec,
    raise_failures,
)
from ptycho_core.testing.conformance.generator import GeneratorChecks, run_generator_checks

ITERATIVE_CHECKS = (
    "spec_is_complete",
    "registration_imports_no_framework",
    "factory_builds",
    "reconstruct_returns_the_object_grid",
    "history_has_one_loss_per_iteration",
    "reconstruction_explains_the_data",
    "same_seed_gives_same_result",
    "core_scores_the_object",
)

#: The short budget of the checks (TrainConfig fields): seed, CPU.
TINY_RUN = {"seed": 0, "device": "cpu"}


def tiny_scan(sim: dict | None = None):
    """(the tiny simulation's test Dataset, its scan: `pipeline.scan_for`): 64 patterns of 16 x 16 on a 48 x 48 grid."""
    from ptycho_core import pipeline  # lazy: loaded when listing; the target imports numpy
    from ptycho_core.simulate import SimConfig, simulate_pair  # lazy: loaded when listing; the target imports numpy

    _, test = simulate_pair(SimConfig(**{**TINY_SIM, **(sim or {})}))
    return test, pipeline.scan_for(test)


class IterativeChecks(GeneratorChecks):
    """Every iterative check as a method; the reconstruction is shared between checks and cached.

    `options` override the spec's defaults (e.g. fewer iterations), `config` the TrainConfig fields
    (`TINY_RUN`), `sim` the tiny simulation (`TINY_SIM`). The spec, registration and factory checks
    and the option handling are the learned generators' (`GeneratorChecks`).
    """

    checks = ITERATIVE_CHECKS
    generator_kind = "iterative"
    methods = ("reconstruct",)

    def close(self) -> None:
        super().close()
        self._data.clear()

    def scan(self):
        """(the tiny simulation's test Dataset, its scan: `pipeline.scan_for`), cached."""
        if "scan" not in self._data:
            self._data["scan"] = tiny_scan(self.sim)
        return self._data["scan"]

    def run_once(self, run: int = 0):
        """(estimate, progress events) of a cached reconstruction of the tiny scan."""
        if run not in self._fits:
            gen = self.build()
            _, scan = self.scan()
            events: list = []
            try:
                estimate = gen.reconstruct(scan, TrainConfig(**{**TINY_RUN, **self.config_overrides}), events.append)
            except Exception as exc:
                raise fail(f"reconstruct raised {type(exc).__name__}: {exc}") from exc
            self._fits[run] = (estimate, events)
        return self._fits[run]

    # the checks
    def reconstruct_returns_the_object_grid(self) -> None:
        import numpy as np  # lazy: loaded when listing: no numpy at import time

        estimate, _ = self.run_once()
        _, scan = self.scan()
        obj = np.asarray(getattr(estimate, "object", None))
        if obj.shape != tuple(scan.object_shape):
            raise fail(f"the object has shape {obj.shape}, expected the scan's object grid {scan.object_shape}")
        if obj.dtype != np.complex64:
            raise fail(f"the object is {obj.dtype}, expected complex64")
        if not np.isfinite(obj).all():
            raise fail("the object holds NaN or inf")
        if np.abs(obj - obj.flat[0]).max() <= TOLERANCE * np.abs(obj).max():
            raise fail("the object is constant")
        for name, shape in (("probe", scan.probe.shape), ("positions", scan.positions.shape)):
            value = getattr(estimate, name, None)
            if value is not None and np.shape(value) != shape:
                raise fail(f"the refined {name} has shape {np.shape(value)}, expected {shape} (or None)")

    def history_has_one_loss_per_iteration(self) -> None:
        estimate, events = self.run_once()
        loss = list(getattr(estimate.history, "loss", None) or [])
        if not loss or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in loss):
            raise fail(f"History.loss must hold one finite float per iteration, got {loss}")
        if estimate.history.stopped:
            raise fail(f"the reconstruction stopped early on tiny data: {estimate.history.stopped}")
        check_progress(events, list(estimate.history.val_loss))

    def reconstruction_explains_the_data(self) -> None:
        import numpy as np  # lazy: loaded when listing: no numpy at import time

        from ptycho_core import metrics, physics  # lazy: loaded when listing; the target imports numpy

        estimate, _ = self.run_once()
        _, scan = self.scan()
        flat = np.full(scan.object_shape, physics.amplitude_scale(scan.diffraction, scan.probe), np.complex64)
        probe = scan.probe if estimate.probe is None else estimate.probe
        errors = [
            metrics.data_space_error(estimate.object, scan.positions, probe, scan.diffraction, scan.mask),
            metrics.data_space_error(flat, scan.positions, scan.probe, scan.diffraction, scan.mask),
        ]
        if not errors[0] < 0.5 * errors[1]:
            raise fail(
                f"the reconstruction's data-space error {errors[0]:.3g} is not under half a flat object's "
                f"{errors[1]:.3g}: it does not explain the diffraction"
            )

    def same_seed_gives_same_result(self) -> None:
        import numpy as np  # lazy: loaded when listing: no numpy at import time

        a, _ = self.run_once()
        b, _ = self.run_once(run=1)
        scale = float(np.abs(a.object).max()) or 1.0
        diff = float(np.abs(np.asarray(a.object) - np.asarray(b.object)).max()) / scale
        if diff > self.tolerance:
            raise fail(f"two reconstructions with the same seed differ by {diff:.3g} of max |object|")

    def core_scores_the_object(self) -> None:
        from ptycho_core import metric_registry, pipeline  # lazy: loaded when listing; the target imports numpy

        estimate, _ = self.run_once()
        test, _ = self.scan()
        try:
            result = pipeline.score_whole_object(estimate.object, test)
        except PtychoError as exc:
            raise fail(f"the core cannot score the object: {exc}") from None
        if not metric_registry.finite(result.metrics.get(metric_registry.HEADLINE)):
            raise fail(f"scoring gave no {metric_registry.HEADLINE}: {result.metrics}")


def run_iterative_checks(
    spec: GeneratorSpec, checks: tuple[str, ...] = ITERATIVE_CHECKS, **kwargs
) -> list[CheckResult]:
    """Run iterative checks on `spec`; one CheckResult per check (never raises for failures)."""
    return IterativeChecks(spec, **kwargs).run(checks)


def check_iterative(name: str, registry=None, **kwargs) -> list[CheckResult]:
    """Find the installed iterative generator `name`, run every check; raise ConformanceError if any fails."""
    spec = find_spec("generator", name, registry)
    return raise_failures(f"generator {spec.qualified_name!r}", run_iterative_checks(spec, **kwargs))


def check_generator(name: str, registry=None, **kwargs) -> list[CheckResult]:
    """Find the installed generator `name` and run every check (an iterative one: the iterative
    checks); raise ConformanceError if any fails."""
    spec = find_spec("generator", name, registry)
    if spec.kind == "iterative":
        return raise_failures(f"generator {spec.qualified_name!r}", run_iterative_checks(spec, **kwargs))
    return raise_failures(f"generator {spec.qualified_name!r}", run_generator_checks(spec, **kwargs))
