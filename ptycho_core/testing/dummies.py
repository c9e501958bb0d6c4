"""Tiny numpy generators for testing the harness: real ones that learn a trivial mapping, and
broken ones that fail in each way a comparison must survive.

They run in spawned children, so they live in this importable module and are referred to by
factory string (`ptycho_core.testing.dummies:build_intensity`). Register them in a test with

    host = PluginHost(load="")
    with host.registered(dummies, "ptycho-dummies"):
        compare.run(["dummy_intensity", "dummy_raising"], host=host, ...)

Learned dummies (`kind="learned"`, framework "numpy"):
    dummy_intensity    unsupervised: a flat patch per pattern whose amplitude is the pattern's rms
                       object amplitude times one learned gain (gradient descent on the physics loss),
                       phase proportional to that amplitude. Refuses to see ground truth.
    dummy_supervised   supervised: the same flat patches, amplitude and phase fitted as affine functions
                       of the pattern's rms amplitude against the ground-truth patches (gradient descent).
Broken dummies, failing inside `fit`:
    dummy_raising      raises RuntimeError (option error="memory": MemoryError)
    dummy_dying        the process exits at once with os._exit(code)
    dummy_sleeping     sleeps `seconds` (past any sensible --timeout)
    dummy_nan          returns History.stopped = "non-finite loss at epoch 1"
Iterative dummy (`kind="iterative"`, no training), for core tests that need no pty-chi:
    dummy_iterative    a real solver in numpy: full-batch PIE (every pattern's Fourier-magnitude
                       projection, then one preconditioned object update) on the core's physics;
                       option error="runtime" raises in reconstruct, error="nan" ends on a NaN loss.
A broken stitcher factory, `raising_stitcher`, raises RuntimeError (register it in a test).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from ptycho_core.hookspecs import hookimpl
from ptycho_core.registry import GeneratorSpec, Option

PARAMS_FILE = "dummy.json"


def _pattern_amplitude(diffraction, probe_power: float, s0: float):
    """Per-pattern rms object amplitude in units of s0: sqrt(sum A^2 / sum |P|^2) / s0.

    diffraction (..., N, N) raw amplitudes, probe_power = sum |P|^2 -> (...,) float64.
    """
    import numpy as np  # lazy: a plugin module: registering it must not import numpy

    a2 = (np.asarray(diffraction, dtype=np.float64) ** 2).sum(axis=(-2, -1))
    return np.sqrt(a2 / probe_power) / s0


def _flat_patches(amplitude, phase, n: int):
    """(...,) amplitudes and phases -> (..., n, n) complex64 flat patches."""
    import numpy as np  # lazy: a plugin module: registering it must not import numpy

    value = (amplitude * np.exp(1j * phase)).astype(np.complex64)
    return np.broadcast_to(value[..., None, None], value.shape + (n, n)).copy()


class _FlatPatchGenerator:
    """Base: flat patches from per-pattern features; subclasses learn the coefficients."""

    name = "flat"

    def __init__(self, **options):
        self.options = dict(options)
        self.params: dict = {}

    # -- contract ---------------------------------------------------------------------------
    def fit(self, train, val, config, progress):
        raise NotImplementedError

    def predict(self, diffraction, offsets):
        """diffraction (B, C, N, N) float32 raw amplitudes -> (B, C, N, N) complex64 patches."""
        if not self.params:
            raise RuntimeError(f"{self.name}: predict before fit/load")
        t = _pattern_amplitude(diffraction, self.params["probe_power"], self.params["s0"])
        amplitude, phase = self._amplitude_phase(t)
        return _flat_patches(amplitude, phase, diffraction.shape[-1])

    def save(self, directory):
        Path(directory, PARAMS_FILE).write_text(json.dumps({"name": self.name, **self.params}))

    def load(self, directory):
        params = json.loads(Path(directory, PARAMS_FILE).read_text())
        if params.pop("name", None) != self.name:
            raise ValueError(f"{directory}: not a {self.name} checkpoint")
        self.params = params
        return self

    def parameter_count(self) -> int:
        return len(self._learned)

    # -- helpers ----------------------------------------------------------------------------
    _learned: tuple = ()

    def _remember(self, train):
        import numpy as np  # lazy: a plugin module: registering it must not import numpy

        self.params.update({"s0": float(train.s0), "probe_power": float((np.abs(train.probe) ** 2).sum())})

    def _amplitude_phase(self, t):
        raise NotImplementedError

    @staticmethod
    def _history():
        from ptycho_core.generator import History  # lazy: a plugin module: registering it must not import numpy

        return History()

    @staticmethod
    def _report(progress, history, epoch, epochs, loss, val_loss, lr, start):
        history.loss.append(float(loss))
        history.val_loss.append(None if val_loss is None else float(val_loss))
        history.lr.append(float(lr))
        history.seconds.append(time.perf_counter() - start)
        progress({"epoch": epoch, "epochs": epochs, "step": 1, "steps": 1, "loss": float(loss), "val_loss": val_loss})


class IntensityGenerator(_FlatPatchGenerator):
    """Unsupervised: amplitude = gain * t * s0, phase = phase_per_amplitude * amplitude / s0.

    The gain is learned by gradient descent on the mean squared error of normalised forward
    amplitudes (prediction and measurement both times input_scale): a real, decreasing loss.
    """

    name = "dummy_intensity"
    _learned = ("gain",)

    def fit(self, train, val, config, progress):
        import numpy as np  # lazy: a plugin module: registering it must not import numpy

        from ptycho_core import physics  # lazy: a plugin module: registering it must not import numpy

        if train.gt_patches is not None or (val is not None and val.gt_patches is not None):
            raise RuntimeError("an unsupervised generator was given ground truth")
        self._remember(train)
        gain = float(self.options.get("init_gain", 0.5))
        rate = float(self.options.get("rate", 0.5))
        start = time.perf_counter()
        history = self._history()
        flat_pattern = physics.forward(train.probe, np.ones(train.probe.shape, np.complex64)).astype(np.float64)

        def terms(ts):
            # q: forward amplitudes of the flat patch with gain 1, m: measured, both normalised.
            t = _pattern_amplitude(ts.diffraction, self.params["probe_power"], train.s0)
            q = (t * train.s0)[..., None, None] * flat_pattern * ts.input_scale
            m = ts.diffraction.astype(np.float64) * ts.input_scale
            return q, m

        q, m = terms(train)
        qq, qm = float((q * q).mean()), float((q * m).mean())
        val_terms = terms(val) if val is not None and val.n_groups else None
        for epoch in range(1, config.epochs + 1):
            # One normalised gradient step per epoch: the error in gain shrinks by (1 - rate).
            gain -= rate * (gain * qq - qm) / qq
            loss = float(((gain * q - m) ** 2).mean())
            val_loss = None if val_terms is None else float(((gain * val_terms[0] - val_terms[1]) ** 2).mean())
            self._report(progress, history, epoch, config.epochs, loss, val_loss, rate, start)
        self.params["gain"] = gain
        return history

    def _amplitude_phase(self, t):
        amplitude = self.params["gain"] * t * self.params["s0"]
        return amplitude, float(self.options.get("phase_per_amplitude", 0.5)) * amplitude / self.params["s0"]


class SupervisedGenerator(_FlatPatchGenerator):
    """Supervised: amplitude = a1 * t + a0, phase = b1 * t + b0 (amplitude in units of s0),
    fitted to the ground-truth patches' mean amplitude and mean phase by gradient descent."""

    name = "dummy_supervised"
    _learned = ("a1", "a0", "b1", "b0")

    def fit(self, train, val, config, progress):
        import numpy as np  # lazy: a plugin module: registering it must not import numpy

        if train.gt_patches is None:
            raise RuntimeError("dummy_supervised needs ground-truth patches")
        self._remember(train)
        s0 = float(train.s0)

        def terms(ts):
            t = _pattern_amplitude(ts.diffraction, self.params["probe_power"], s0).ravel()
            gt = ts.gt_patches.reshape(len(t), -1)
            return t, np.abs(gt).mean(axis=1) / s0, np.angle(gt).mean(axis=1)

        t, amp, phase = terms(train)
        x = np.stack([t, np.ones_like(t)], axis=1)
        hessian = x.T @ x / len(t)
        step = float(self.options.get("rate", 0.5)) * np.linalg.inv(hessian)
        coef = np.zeros((2, 2))  # columns: amplitude, phase
        target = np.stack([amp, phase], axis=1)
        val_terms = terms(val) if val is not None and val.n_groups else None
        history = self._history()
        start = time.perf_counter()
        for epoch in range(1, config.epochs + 1):
            coef -= step @ (x.T @ (x @ coef - target) / len(t))
            loss = float(((x @ coef - target) ** 2).mean())
            val_loss = None
            if val_terms is not None:
                vx = np.stack([val_terms[0], np.ones_like(val_terms[0])], axis=1)
                val_loss = float(((vx @ coef - np.stack(val_terms[1:], axis=1)) ** 2).mean())
            self._report(progress, history, epoch, config.epochs, loss, val_loss, config.lr, start)
        self.params.update({"a1": coef[0, 0], "a0": coef[1, 0], "b1": coef[0, 1], "b0": coef[1, 1]})
        return history

    def _amplitude_phase(self, t):
        p = self.params
        return (p["a1"] * t + p["a0"]) * p["s0"], p["b1"] * t + p["b0"]


class RaisingGenerator(IntensityGenerator):
    name = "dummy_raising"

    def fit(self, train, val, config, progress):
        if self.options.get("error") == "memory":
            raise MemoryError("dummy allocation failed")
        raise RuntimeError("dummy failure in fit")


class DyingGenerator(IntensityGenerator):
    name = "dummy_dying"

    def fit(self, train, val, config, progress):
        os._exit(int(self.options.get("code", 3)))


class SleepingGenerator(IntensityGenerator):
    name = "dummy_sleeping"

    def fit(self, train, val, config, progress):
        time.sleep(float(self.options.get("seconds", 3600.0)))
        return super().fit(train, val, config, progress)


class NanGenerator(IntensityGenerator):
    name = "dummy_nan"

    def fit(self, train, val, config, progress):
        history = super().fit(train, val, config, progress)
        history.loss[0] = math.nan
        history.loss, history.val_loss = history.loss[:1], history.val_loss[:1]
        history.stopped = "non-finite loss at epoch 1"
        return history


def build_intensity(init_gain: float = 0.5, rate: float = 0.5, phase_per_amplitude: float = 0.5):
    if not rate > 0:
        raise ValueError(f"rate must be positive, not {rate}")  # a factory refusing an option value
    return IntensityGenerator(init_gain=init_gain, rate=rate, phase_per_amplitude=phase_per_amplitude)


def build_supervised(rate: float = 0.5):
    return SupervisedGenerator(rate=rate)


def build_raising(error: str = "runtime"):
    return RaisingGenerator(error=error)


def build_dying(code: int = 3):
    return DyingGenerator(code=code)


def build_sleeping(seconds: float = 3600.0):
    return SleepingGenerator(seconds=seconds)


def build_nan():
    return NanGenerator()


class IterativeDummy:
    """Full-batch PIE in numpy (`kind="iterative"`): o <- o + step * splat(P* (psi' - psi)) /
    (splat(|P|^2) + 1e-3 max), psi' the exit waves with their Fourier magnitudes replaced by the
    measured amplitudes (invalid mask pixels keep the model's). Starts from a flat object of the
    data's rms amplitude s0; the probe and positions stay fixed."""

    name = "dummy_iterative"

    def __init__(self, iterations: int = 20, step: float = 1.0, error: str = "none"):
        self.options = {"iterations": iterations, "step": step, "error": error}

    def reconstruct(self, scan, config, progress):
        import numpy as np  # lazy: a plugin module: registering it must not import numpy

        from ptycho_core import physics  # lazy: a plugin module: registering it must not import numpy

        # lazy: a plugin module: registering it must not import numpy
        from ptycho_core.generator import History, Reconstruction

        if self.options["error"] == "runtime":
            raise RuntimeError("dummy failure in reconstruct")
        n, probe, positions = scan.patch_size, scan.probe.astype(np.complex128), scan.positions
        measured = np.asarray(scan.diffraction, dtype=np.float64)
        valid = np.ones(measured.shape, bool) if scan.mask is None else np.broadcast_to(scan.mask, measured.shape)
        obj = np.full(scan.object_shape, physics.amplitude_scale(measured, probe), dtype=np.complex128)
        weight = physics.splat(np.broadcast_to(np.abs(probe) ** 2, measured.shape), positions, scan.object_shape).real
        weight = weight + 1e-3 * weight.max()
        history, start, iterations = History(), time.perf_counter(), self.options["iterations"]
        for k in range(1, iterations + 1):
            psi = probe * physics.extract(obj, positions, n)
            far = np.fft.fftshift(np.fft.fft2(psi, norm="ortho"), axes=(-2, -1))
            loss = float(((np.abs(far) - measured)[valid] ** 2).mean() / (measured[valid] ** 2).mean())
            fixed = np.where(valid, measured * np.exp(1j * np.angle(far)), far)
            new = np.fft.ifft2(np.fft.ifftshift(fixed, axes=(-2, -1)), norm="ortho")
            obj = (
                obj + self.options["step"] * physics.splat(np.conj(probe) * (new - psi), positions, obj.shape) / weight
            )
            if self.options["error"] == "nan" and k == 2:
                loss = math.nan
            _FlatPatchGenerator._report(progress, history, k, iterations, loss, None, self.options["step"], start)
            if not math.isfinite(loss):
                history.stopped = f"non-finite loss at epoch {k}"
                break
        return Reconstruction(object=obj.astype(np.complex64), history=history)


def build_iterative(iterations: int = 20, step: float = 1.0, error: str = "none") -> IterativeDummy:
    return IterativeDummy(iterations=iterations, step=step, error=error)


def raising_stitcher(patches, positions, shape, probe, **options):
    """A stitcher factory that fails (a broken stitcher plugin, for the scoring guard)."""
    raise RuntimeError("dummy stitcher failure")


def specs() -> list[GeneratorSpec]:
    """The dummy generator specs (framework "numpy", requires numpy only)."""
    here = "ptycho_core.testing.dummies"
    common = {"framework": "numpy", "requires": ("numpy",)}
    rate = Option("float", 0.5, "fraction of the gain error removed per epoch")
    return [
        GeneratorSpec(
            name="dummy_intensity",
            summary="flat patches scaled by a learned gain (unsupervised test dummy)",
            factory=f"{here}:build_intensity",
            options={
                "init_gain": Option("float", 0.5, "initial gain", min=0.0),
                "rate": rate,
                "phase_per_amplitude": Option(
                    "float", 0.5, "phase in rad per unit amplitude / s0", min=-100.0, max=100.0
                ),
            },
            **common,
        ),
        GeneratorSpec(
            name="dummy_supervised",
            summary="flat patches fitted to ground truth (supervised test dummy)",
            factory=f"{here}:build_supervised",
            supervised=True,
            options={"rate": rate},
            **common,
        ),
        GeneratorSpec(
            name="dummy_raising",
            summary="raises in fit",
            factory=f"{here}:build_raising",
            options={"error": Option("str", "runtime", "runtime or memory", choices=("runtime", "memory"))},
            **common,
        ),
        GeneratorSpec(
            name="dummy_dying",
            summary="the process exits in fit",
            factory=f"{here}:build_dying",
            options={"code": Option("int", 3, "exit code", min=0, max=255)},
            **common,
        ),
        GeneratorSpec(
            name="dummy_sleeping",
            summary="sleeps in fit",
            factory=f"{here}:build_sleeping",
            options={"seconds": Option("float", 3600.0, "seconds to sleep", min=0.0)},
            **common,
        ),
        GeneratorSpec(name="dummy_nan", summary="non-finite loss", factory=f"{here}:build_nan", **common),
        GeneratorSpec(
            name="dummy_iterative",
            summary="full-batch PIE in numpy (iterative test dummy, no training)",
            factory=f"{here}:build_iterative",
            kind="iterative",
            options={
                "iterations": Option("int", 20, "object updates", min=1),
                "step": Option("float", 1.0, "relaxation of each object update", min=0.0),
                "error": Option("str", "none", "none, runtime or nan", choices=("none", "runtime", "nan")),
            },
            **common,
        ),
    ]


@hookimpl
def ptycho_register_generators(register):
    """Register every dummy: `host.registered(ptycho_core.testing.dummies, "ptycho-dummies")`."""
    for spec in specs():
        register(spec)


# --- the oracle: a known answer for scoring ---------------------------------------------------------

ORACLE_MODES = ("true", "shifted", "reordered", "twin")


class OracleGenerator:
    """Returns the true object patches of the dataset file `truth` (numpy; no learning).

    Each diffraction pattern it is asked about is looked up, byte for byte, among the file's
    patterns; the patch under that pattern's position is cut from the file's object. `mode` spoils
    the answer in a known way: "shifted" cuts 3 pixels off in y and x, "reordered" hands each group
    the next group's patches, "twin" returns the patch whose exit wave is the twin conj(psi(-r)).
    """

    name = "dummy_oracle"

    def __init__(self, truth: str, mode: str = "true"):
        self.params = {"truth": str(truth), "mode": mode}

    def fit(self, train, val, config, progress=None):
        from ptycho_core.generator import History  # lazy: a plugin module: registering it must not import numpy

        return History(loss=[0.0] * config.epochs, val_loss=[0.0] * config.epochs, lr=[config.lr] * config.epochs)

    def predict(self, diffraction, offsets=None):
        import numpy as np  # lazy: a plugin module: registering it must not import numpy

        from ptycho_core import physics  # lazy: a plugin module: registering it must not import numpy
        from ptycho_core.io.npz import load_npz  # lazy: a plugin module: registering it must not import numpy

        truth = load_npz(self.params["truth"])
        where = {pattern.tobytes(): i for i, pattern in enumerate(truth.diffraction)}
        diffraction = np.asarray(diffraction, dtype=np.float32)
        index = np.array([[where[p.tobytes()] for p in group] for group in diffraction])
        positions = truth.positions[index] + (3.0 if self.params["mode"] == "shifted" else 0.0)
        n = diffraction.shape[-1]
        patches = physics.extract(truth.object, positions.reshape(-1, 2), n).reshape(diffraction.shape)
        if self.params["mode"] == "reordered":
            patches = np.roll(patches, 1, axis=0)
        if self.params["mode"] == "twin":  # the exit wave's twin conj(psi(-r)), divided by the probe again
            from ptycho_core.metrics import reflect  # lazy: a plugin module: registering it must not import numpy

            probe = np.where(np.abs(truth.probe) > 1e-6 * np.abs(truth.probe).max(), truth.probe, 1)
            patches = np.conj(reflect(patches * truth.probe)) / probe
        return patches.astype(np.complex64)

    def save(self, directory):
        Path(directory, PARAMS_FILE).write_text(json.dumps({"name": self.name, **self.params}))

    def load(self, directory):
        params = json.loads(Path(directory, PARAMS_FILE).read_text())
        params.pop("name", None)
        self.params = params


def build_oracle(truth: str = "", mode: str = "true") -> OracleGenerator:
    return OracleGenerator(truth, mode)


class OraclePlugin:
    """Registers `dummy_oracle` and one spoiled oracle per mode (`dummy_oracle_shifted`, ...), kept
    apart from `specs()`: they need a `truth` file (option) to run."""

    @hookimpl
    def ptycho_register_generators(self, register):
        for mode in ORACLE_MODES:
            register(
                GeneratorSpec(
                    name="dummy_oracle" if mode == "true" else f"dummy_oracle_{mode}",
                    summary=f"the true patches of a dataset file, {mode} (known-answer test dummy)",
                    factory="ptycho_core.testing.dummies:build_oracle",
                    framework="numpy",
                    requires=("numpy",),
                    options={
                        "truth": Option("str", "", "the .npz dataset (with its object) the answers come from"),
                        "mode": Option("str", mode, "how the answer is spoiled", choices=ORACLE_MODES),
                    },
                )
            )
