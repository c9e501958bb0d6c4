"""The iterative generator checks (`kind="iterative"`, DESIGN section 10): the factory builds an
object with `reconstruct`; on the tiny simulated test scan it returns an `ObjectEstimate` whose
object is (H, W) complex64 on the scan's object grid, finite and not constant; its History has one
finite loss per iteration with one epoch-end progress event each; the object explains the data
better than a flat object does (the data-space error of DESIGN section 8, the metric every row
is scored by); the same seed gives the same object; the core scores it like any row."""

from __future__ import annotations

import inspect
import math

from ptycho_core.errors import PtychoError
from ptycho_core.registry import GeneratorSpec
from ptycho_core.testing.conformance.base import (
    HEAVY_MODULES,
    TINY_SIM,
    TOLERANCE,
    Checker,
    CheckResult,
    fail,
    find_spec,
    raise_failures,
)

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
    """(the tiny simulation's test Dataset, its Scan): 64 patterns of 16 x 16 on a 48 x 48 grid."""
    from ptycho_core import pipeline
    from ptycho_core.simulate import SimConfig, simulate_pair

    _, test = simulate_pair(SimConfig(**{**TINY_SIM, **(sim or {})}))
    return test, pipeline.scan_for(test)


class IterativeChecks(Checker):
    """Every iterative check as a method; the reconstruction is shared between checks and cached.

    `options` override the spec's defaults (e.g. fewer iterations), `config` the TrainConfig fields
    (`TINY_RUN`), `sim` the tiny simulation (`TINY_SIM`).
    """

    kind = "generator"
    checks = ITERATIVE_CHECKS

    def __init__(
        self,
        spec: GeneratorSpec,
        options: dict | None = None,
        config: dict | None = None,
        sim: dict | None = None,
        tolerance: float = TOLERANCE,
        heavy_modules: tuple[str, ...] = HEAVY_MODULES,
        plugin_module: str | None = None,
        extra_path: tuple[str, ...] = (),
    ):
        super().__init__(spec, heavy_modules, plugin_module, extra_path)
        self.option_overrides = dict(options or {})
        self.config = dict(config or {})
        self.sim = dict(sim or {})
        self.tolerance = tolerance
        self._runs: dict = {}
        self._data = None

    def close(self) -> None:
        super().close()
        self._runs.clear()

    def require_available(self) -> None:
        super().require_available()
        if self.spec.kind != "iterative":
            raise fail(f"generator {self.spec.name!r} is {self.spec.kind}: use GeneratorConformance for it")

    def build(self):
        self.require_available()
        try:
            options = self.spec.resolve_options(self.option_overrides)
        except PtychoError as exc:
            raise fail(f"the options given to the conformance checks are not accepted: {exc}") from None
        try:
            return self.spec.load_factory()(**options)
        except Exception as exc:
            raise fail(f"factory {self.spec.factory}(**{options}) raised {type(exc).__name__}: {exc}") from exc

    def data(self):
        if self._data is None:
            self._data = tiny_scan(self.sim)
        return self._data

    def run_once(self, run: int = 0):
        """(estimate, progress events) of a cached reconstruction of the tiny scan."""
        if run not in self._runs:
            from ptycho_core.generator import TrainConfig

            gen = self.build()
            _, scan = self.data()
            events: list = []
            try:
                estimate = gen.reconstruct(scan, TrainConfig(**{**TINY_RUN, **self.config}), events.append)
            except Exception as exc:
                raise fail(f"reconstruct raised {type(exc).__name__}: {exc}") from exc
            self._runs[run] = (estimate, events)
        return self._runs[run]

    # the checks
    def factory_builds(self) -> None:
        self.require_available()
        factory = self.spec.load_factory()
        try:
            params = inspect.signature(factory).parameters.values()
        except (TypeError, ValueError):
            params = None
        if params is not None and not any(p.kind is p.VAR_KEYWORD for p in params):
            accepted = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
            missing = sorted(set(self.spec.options) - accepted)
            if missing:
                raise fail(f"factory {self.spec.factory} does not accept declared option(s) {', '.join(missing)}")
        gen = self.build()
        if not callable(getattr(gen, "reconstruct", None)):
            raise fail(f"factory returned {type(gen).__name__}, which lacks reconstruct (DESIGN section 10)")

    def reconstruct_returns_the_object_grid(self) -> None:
        import numpy as np

        estimate, _ = self.run_once()
        _, scan = self.data()
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
        from ptycho_core.testing.conformance.generator import _check_progress

        estimate, events = self.run_once()
        loss = list(getattr(estimate.history, "loss", None) or [])
        if not loss or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in loss):
            raise fail(f"History.loss must hold one finite float per iteration, got {loss}")
        if estimate.history.stopped:
            raise fail(f"the reconstruction stopped early on tiny data: {estimate.history.stopped}")
        _check_progress(events, list(estimate.history.val_loss))

    def reconstruction_explains_the_data(self) -> None:
        import numpy as np

        from ptycho_core import metrics, physics

        estimate, _ = self.run_once()
        _, scan = self.data()
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
        import numpy as np

        a, _ = self.run_once()
        b, _ = self.run_once(run=1)
        scale = float(np.abs(a.object).max()) or 1.0
        diff = float(np.abs(np.asarray(a.object) - np.asarray(b.object)).max()) / scale
        if diff > self.tolerance:
            raise fail(f"two reconstructions with the same seed differ by {diff:.3g} of max |object|")

    def core_scores_the_object(self) -> None:
        from ptycho_core import pipeline

        estimate, _ = self.run_once()
        test, _ = self.data()
        try:
            result = pipeline.score_whole_object(estimate.object, test)
        except PtychoError as exc:
            raise fail(f"the core cannot score the object: {exc}") from None
        if not math.isfinite(result.metrics.get("amp_ssim", math.nan)):
            raise fail(f"scoring gave no amplitude SSIM: {result.metrics}")


def run_iterative_checks(
    spec: GeneratorSpec, checks: tuple[str, ...] = ITERATIVE_CHECKS, **kwargs
) -> list[CheckResult]:
    """Run iterative checks on `spec`; one CheckResult per check (never raises for failures)."""
    return IterativeChecks(spec, **kwargs).run(checks)


def check_iterative(name: str, registry=None, **kwargs) -> list[CheckResult]:
    """Find the installed iterative generator `name`, run every check; raise ConformanceError if any fails."""
    spec = find_spec("generator", name, registry)
    return raise_failures(f"generator {spec.qualified_name!r}", run_iterative_checks(spec, **kwargs))
