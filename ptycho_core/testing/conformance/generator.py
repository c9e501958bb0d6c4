"""The generator checks: the factory builds, a short fit on tiny simulated data lowers the loss,
`predict` returns (B, C, N, N) complex64 for C=1 and C=4, `save` writes no pickle and `load` on a
fresh instance reproduces the predictions, the same seed gives the same result."""

from __future__ import annotations

import contextlib
import inspect
import math
import sys

from ptycho_core.errors import PtychoError
from ptycho_core.generator import TrainConfig
from ptycho_core.registry import GeneratorSpec
from ptycho_core.testing.conformance.base import (
    HEAVY_MODULES,
    TINY_SIM,
    TINY_TRAIN,
    TOLERANCE,
    CheckResult,
    check_progress,
    fail,
)
from ptycho_core.testing.conformance.checker import Checker
from ptycho_core.testing.conformance.pickles import pickle_files

GENERATOR_CHECKS = (
    "spec_is_complete",
    "registration_imports_no_framework",
    "factory_builds",
    "fit_lowers_loss",
    "predict_returns_patches_for_one_channel",
    "predict_returns_patches_for_four_channels",
    "per_pattern_is_declared_truthfully",
    "save_then_load_reproduces_predictions",
    "same_seed_gives_same_result",
)


def tiny_data(gridsize: int = 1, supervised: bool = False, sim: dict | None = None, seed: int = 0):
    """A `ptycho_core.pipeline.Prepared` from the tiny simulation: train/val TrainingSets, test data.

    N=16, 64 training patterns (58 training groups, 6 validation groups), 64 test patterns.
    """
    from ptycho_core import pipeline  # lazy: loaded when listing; the target imports numpy
    from ptycho_core.simulate import SimConfig, simulate_pair  # lazy: loaded when listing; the target imports numpy

    cfg = SimConfig(**{**TINY_SIM, **(sim or {})})
    train_ds, test_ds = simulate_pair(cfg)
    return pipeline.prepare(train_ds, test_ds, gridsize=gridsize, seed=seed, val_fraction=0.1, supervised=supervised)


def sample_inputs(prepared, count: int = 11):
    """(diffraction (B, C, N, N) float32, offsets (B, C, 2)) of the first `count` test groups."""
    import numpy as np  # lazy: loaded when listing: no numpy at import time

    groups = prepared.test_groups
    idx = groups.indices[:count]
    return np.ascontiguousarray(prepared.test.diffraction[idx], dtype=np.float32), groups.offsets[:count]


def _max_rel_diff(a, b) -> float:
    import numpy as np  # lazy: loaded when listing: no numpy at import time

    a, b = np.asarray(a), np.asarray(b)
    scale = float(np.abs(a).max()) or 1.0
    return float(np.abs(a - b).max()) / scale


@contextlib.contextmanager
def _one_torch_thread(spec):
    """Run torch generators single-threaded during the checks: on tiny tensors intra-op threads
    only cost time (on a loaded 2-core machine a step of a small CNN took 0.1-0.4 s with 2 threads,
    10 ms with 1). The previous thread count is restored."""
    torch = sys.modules.get("torch") if spec.framework == "torch" else None
    if torch is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# --- generator checks ------------------------------------------------------------------------------------


class GeneratorChecks(Checker):
    """Every generator check as a method; expensive fits are shared between checks and cached.

    `options` override the spec's defaults (e.g. small widths), `config` the short training budget
    (`TINY_TRAIN`), `sim` the tiny simulation (`TINY_SIM`). `plugin_module` names the module holding the
    hooks when the spec does not come from an installed distribution.
    """

    kind = "generator"
    checks = GENERATOR_CHECKS
    #: The generator kind these checks apply to, and the methods its factory's object must have.
    generator_kind = "learned"
    methods = ("fit", "predict", "save", "load")

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
        self.config_overrides = dict(config or {})
        self.sim = dict(sim or {})
        self.tolerance = tolerance
        self._fits: dict = {}
        self._data: dict = {}

    def close(self) -> None:
        """Remove temporary checkpoint folders and cached fits."""
        super().close()
        self._fits.clear()

    def options(self) -> dict:
        try:
            return self.spec.resolve_options(self.option_overrides)
        except PtychoError as exc:
            raise fail(f"the options given to the conformance checks are not accepted: {exc}") from None

    def train_config(self, **changes):
        return TrainConfig(**{**TINY_TRAIN, **self.config_overrides, **changes})

    def require_available(self) -> None:
        super().require_available()
        if self.spec.kind != self.generator_kind:
            other = "GeneratorConformance" if self.spec.kind == "learned" else "IterativeConformance"
            raise fail(f"generator {self.spec.name!r} is {self.spec.kind}: these checks do not apply (use {other})")

    def build(self):
        self.require_available()
        factory = self.spec.load_factory()
        try:
            return factory(**self.options())
        except Exception as exc:
            raise fail(f"factory {self.spec.factory}(**{self.options()}) raised {type(exc).__name__}: {exc}") from exc

    def data(self, gridsize: int):
        if gridsize not in self._data:
            self._data[gridsize] = tiny_data(gridsize, supervised=self.spec.supervised, sim=self.sim)
        return self._data[gridsize]

    def fit(self, gridsize: int = 1, run: int = 0, **config_changes):
        """(generator, history, progress events) of a cached fit on the tiny data."""
        key = (gridsize, run, tuple(sorted(config_changes.items())))
        if key not in self._fits:
            gen = self.build()
            prepared = self.data(gridsize)
            events: list = []
            config = self.train_config(**config_changes)
            try:
                with _one_torch_thread(self.spec):
                    history = gen.fit(prepared.train, prepared.val, config, events.append)
            except Exception as exc:
                raise fail(f"fit raised {type(exc).__name__}: {exc}") from exc
            self._fits[key] = (gen, history, events)
        return self._fits[key]

    def predict(self, gen, gridsize: int):
        import numpy as np  # lazy: loaded when listing: no numpy at import time

        diffraction, offsets = sample_inputs(self.data(gridsize))
        try:
            with _one_torch_thread(self.spec):
                out = gen.predict(diffraction, offsets)
        except Exception as exc:
            raise fail(f"predict raised {type(exc).__name__}: {exc}") from exc
        return np.asarray(out), diffraction.shape

    # the checks
    def factory_builds(self) -> None:
        self.require_available()
        try:
            factory = self.spec.load_factory()
        except PtychoError as exc:
            raise fail(str(exc)) from None
        if not callable(factory):
            raise fail(f"factory {self.spec.factory} is not callable")
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
        lacking = [m for m in self.methods if not callable(getattr(gen, m, None))]
        if lacking:
            raise fail(
                f"factory returned {type(gen).__name__}, which lacks {', '.join(lacking)} (docs/design.md#contracts)"
            )

    def fit_lowers_loss(self) -> None:
        _, history, events = self.fit(1)
        loss = list(getattr(history, "loss", None) or [])
        if getattr(history, "stopped", ""):
            raise fail(f"training stopped early on tiny data: {history.stopped} (losses {loss})")
        epochs = self.train_config().epochs
        if len(loss) != epochs:
            raise fail(f"History.loss has {len(loss)} entries for {epochs} epochs (one per epoch expected)")
        if len(getattr(history, "val_loss", []) or []) != epochs:
            raise fail(f"History.val_loss must have one entry per epoch, got {history.val_loss}")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in loss):
            raise fail(f"History.loss must hold finite floats, got {loss}")
        if not loss[-1] < loss[0]:
            raise fail(f"a {epochs}-epoch fit on tiny data did not lower the training loss: {loss}")
        check_progress(events, list(history.val_loss))

    def _check_patches(self, out, shape) -> None:
        import numpy as np  # lazy: loaded when listing: no numpy at import time

        if out.shape != shape:
            raise fail(f"predict returned shape {out.shape}, expected {shape} (B, C, N, N)")
        if out.dtype != np.complex64:
            raise fail(f"predict returned {out.dtype}, expected complex64")
        if not np.isfinite(out).all():
            raise fail("predict returned NaN or inf")
        if not np.abs(out).any():
            raise fail("predict returned all zeros")
        if np.abs(out - out[:1]).max() <= TOLERANCE * np.abs(out).max():
            raise fail(f"predict returned the same patches for all {out.shape[0]} inputs (a constant output)")

    def predict_returns_patches_for_one_channel(self) -> None:
        gen, _, _ = self.fit(1)
        self._check_patches(*self.predict(gen, 1))

    def predict_returns_patches_for_four_channels(self) -> None:
        gen, _, _ = self.fit(2, epochs=1)
        self._check_patches(*self.predict(gen, 2))

    def per_pattern_is_declared_truthfully(self) -> None:
        """A generator declaring `per_pattern = True` gives each pattern the same patch whatever group
        and channel it sits in (the core then predicts each test pattern once)."""
        import numpy as np  # lazy: loaded when listing: no numpy at import time

        gen, _, _ = self.fit(2, epochs=1)
        declared = getattr(gen, "per_pattern", False)
        if not isinstance(declared, (bool, np.bool_)):
            raise fail(f"per_pattern must be a bool, got {type(declared).__name__} {declared!r}")
        if not declared:
            return
        out, shape = self.predict(gen, 2)
        diffraction, offsets = sample_inputs(self.data(2))
        flat = diffraction.reshape((-1,) + shape[2:])
        order = np.random.default_rng(0).permutation(len(flat))
        try:
            with _one_torch_thread(self.spec):
                moved = np.asarray(gen.predict(np.ascontiguousarray(flat[order].reshape(shape)), offsets))
        except Exception as exc:
            raise fail(f"predict raised {type(exc).__name__}: {exc}") from exc
        back = np.empty_like(moved.reshape((-1,) + shape[2:]))
        back[order] = moved.reshape((-1,) + shape[2:])
        diff = _max_rel_diff(out.reshape(back.shape), back)
        if diff > self.tolerance:
            raise fail(
                f"per_pattern is True but a pattern's patch changes by {diff:.3g} of max |prediction| when it "
                "moves to another group or channel: declare per_pattern = False (the default)"
            )

    def save_then_load_reproduces_predictions(self) -> None:
        gen, _, _ = self.fit(1)
        before, _ = self.predict(gen, 1)
        directory = self._tmp("checkpoint")
        try:
            gen.save(directory)
        except Exception as exc:
            raise fail(f"save raised {type(exc).__name__}: {exc}") from exc
        if not any(p.is_file() for p in directory.rglob("*")):
            raise fail("save wrote no file")
        pickled = pickle_files(directory)
        if pickled:
            raise fail(f"save wrote pickles ({', '.join(pickled)}): use safetensors or Keras .weights.h5")
        fresh = self.build()
        try:
            fresh.load(directory)
        except Exception as exc:
            raise fail(f"load on a fresh instance raised {type(exc).__name__}: {exc}") from exc
        after, _ = self.predict(fresh, 1)
        diff = _max_rel_diff(before, after)
        if diff > self.tolerance:
            raise fail(f"predictions after save/load differ by {diff:.3g} of max |prediction|")

    def same_seed_gives_same_result(self) -> None:
        gen_a, hist_a, _ = self.fit(1)
        gen_b, hist_b, _ = self.fit(1, run=1)
        pred_a, _ = self.predict(gen_a, 1)
        pred_b, _ = self.predict(gen_b, 1)
        diff = _max_rel_diff(pred_a, pred_b)
        if diff > self.tolerance:
            raise fail(
                f"two fits with seed {self.train_config().seed} differ: predictions by {diff:.3g} of max "
                f"|prediction|, losses {hist_a.loss} vs {hist_b.loss}"
            )


def run_generator_checks(
    spec: GeneratorSpec, checks: tuple[str, ...] = GENERATOR_CHECKS, **kwargs
) -> list[CheckResult]:
    """Run generator checks on `spec`; returns one CheckResult per check (never raises for failures).

    Keyword arguments go to `GeneratorChecks` (options, config, sim, tolerance, plugin_module, ...).
    """
    return GeneratorChecks(spec, **kwargs).run(checks)
