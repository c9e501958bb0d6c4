"""The conformance kit: check that a plugin's generators, loaders and stitchers honour ptycho's
contracts (DESIGN sections 3, 6, 7 and 8), from the plugin's own test suite.

One call, from any test or script (raises `ConformanceError`, an AssertionError, listing failures):

    from ptycho_core.testing import check_generator, check_loader, check_stitcher
    check_generator("mynet")

or one test class per component, subclassed in pytest (one test per check):

    from ptycho_core.testing import GeneratorConformance

    class TestMynet(GeneratorConformance):
        generator = "mynet"            # or "ptycho-mynet:mynet"
        options = {"width": 8}         # optional: cheaper than the defaults

Checks for a generator: the spec is complete (name, summary, framework, factory string, typed
options with defaults and help); registration imports no framework (a fresh subprocess imports the
plugin module, calls its hooks with a recording `register` and inspects `sys.modules`); the factory
builds; `predict` returns (B, C, N, N) complex64 for C=1 and C=4; `save` writes no pickle and
`load` on a fresh instance reproduces the predictions; a short fit on tiny simulated data lowers
the loss; the same seed gives the same result. Loaders: a file written by the loader's own writer
(or `ptycho_core.io.npz.save_npz`) reads back as a valid Dataset, and bad files raise a
PtychoError. Stitchers: stitching the true patches recovers the object.

Data are tiny (`TINY_SIM`: N=16, a 48x48 object, 64 patterns; 3 epochs of 8-group batches) so each
check runs in seconds on a CPU. A generator whose framework is missing is skipped (pytest) or
reported as skipped, except under `CI=true`, where it fails.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptycho_core.errors import PtychoError
from ptycho_core.registry import OPTION_TYPES, GeneratorSpec, LoaderSpec, Option, StitcherSpec

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

GENERATOR_CHECKS = (
    "spec_is_complete",
    "registration_imports_no_framework",
    "factory_builds",
    "fit_lowers_loss",
    "predict_returns_patches_for_one_channel",
    "predict_returns_patches_for_four_channels",
    "save_then_load_reproduces_predictions",
    "same_seed_gives_same_result",
)
LOADER_CHECKS = (
    "spec_is_complete",
    "registration_imports_no_framework",
    "reads_a_valid_dataset",
    "refuses_bad_files_with_one_line_errors",
)
STITCHER_CHECKS = (
    "spec_is_complete",
    "registration_imports_no_framework",
    "stitching_true_patches_recovers_object",
)


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


def _fail(message: str) -> ConformanceError:
    return ConformanceError(message)


def _in_ci() -> bool:
    return os.environ.get("CI") == "true"


# --- finding specs --------------------------------------------------------------------------------


def find_spec(kind: str, name: str, registry=None):
    """The registered spec of `kind` ("generator", "loader", "stitcher") called `name` or `dist:name`.

    Without a registry, plugins are discovered as the `ptycho` command would (environment included).
    """
    if registry is None:
        from ptycho_core.plugins import PluginHost

        registry = PluginHost.from_environment().registry()
    try:
        return registry.get(kind, name)
    except PtychoError as exc:
        problems = "; ".join(f"{p.plugin}: {p.message}" for p in registry.problems)
        hint = f" (plugin problems: {problems})" if problems else ""
        load = os.environ.get("PTYCHO_LOAD_PLUGINS")
        if load is not None:
            hint += f" (PTYCHO_LOAD_PLUGINS={load!r} limits discovery)"
        raise _fail(f"{exc}{hint}: is the plugin installed (pip install -e .)?") from None


# --- spec checks ------------------------------------------------------------------------------------


def _check_option(owner: str, key: str, opt) -> None:
    if not isinstance(opt, Option):
        raise _fail(f"{owner}: option {key!r} must be a ptycho_core.registry.Option, not {type(opt).__name__}")
    if not key.isidentifier():
        raise _fail(f"{owner}: option name {key!r} must be a Python identifier (the factory gets it as a keyword)")
    want = OPTION_TYPES[opt.type]
    value = opt.default
    if opt.type == "float":
        good = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif opt.type == "int":
        good = isinstance(value, int) and not isinstance(value, bool)
    else:
        good = isinstance(value, want)
    if not good:
        raise _fail(f"{owner}: option {key!r} is declared {opt.type} but its default {value!r} is not")
    if not str(opt.help).strip():
        raise _fail(f"{owner}: option {key!r} has no help text (it is shown by `ptycho describe`)")
    if opt.choices and value not in opt.choices:
        raise _fail(f"{owner}: option {key!r} default {value!r} is not one of its choices {list(opt.choices)}")


def check_spec(spec, kind: str) -> None:
    """The record is complete: name, one-line summary, factory string, requires, typed options."""
    types = {"generator": GeneratorSpec, "loader": LoaderSpec, "stitcher": StitcherSpec}
    if not isinstance(spec, types[kind]):
        raise _fail(f"expected a {types[kind].__name__}, got {type(spec).__name__}")
    owner = f"{kind} {spec.name!r}"
    summary = str(spec.summary or "")
    if not summary.strip() or "\n" in summary:
        raise _fail(f"{owner}: summary must be one non-empty line (it is a column of the listing)")
    module, _, attr = spec.factory.partition(":")
    if not module or not attr:
        raise _fail(f"{owner}: factory must be 'module:attr', got {spec.factory!r}")
    for req in spec.requires:
        if not isinstance(req, str) or not req or "." in req:
            raise _fail(f"{owner}: requires must list top-level module names, got {req!r}")
    if kind == "generator":
        if not str(spec.framework).strip():
            raise _fail(f"{owner}: framework is empty (say 'torch', 'tensorflow', 'numpy', ...)")
        framework_module = {"torch": "torch", "tensorflow": "tensorflow", "jax": "jax"}.get(spec.framework)
        if framework_module and framework_module not in spec.requires:
            raise _fail(
                f"{owner}: framework {spec.framework!r} is not in requires {list(spec.requires)}: the generator "
                "would be listed as available where the framework is missing"
            )
        if spec.kind not in ("learned", "iterative"):
            raise _fail(f"{owner}: kind must be 'learned' or 'iterative', got {spec.kind!r}")
    if kind == "loader":
        if not spec.extensions:
            raise _fail(f"{owner}: extensions is empty: no file would ever be given to this loader")
        for ext in spec.extensions:
            if not ext.startswith(".") or len(ext) < 2:
                raise _fail(f"{owner}: extension {ext!r} must start with '.' (for example '.h5')")
    for key, opt in getattr(spec, "options", {}).items():
        _check_option(owner, key, opt)


# --- registration must stay cheap --------------------------------------------------------------------

_REGISTRATION_SCRIPT = r"""
import importlib, json, sys
from importlib import metadata
target, heavy = sys.argv[1], sys.argv[2].split(",")
before = sorted(m for m in heavy if m in sys.modules)
kind_of = {"ptycho_register_generators": "generator", "ptycho_register_loaders": "loader",
           "ptycho_register_stitchers": "stitcher"}
if target.startswith("dist="):
    def canon(n):
        import re
        return re.sub(r"[-_.]+", "-", n).lower()
    want = canon(target[5:])
    eps = [ep for ep in metadata.entry_points(group="ptycho") if ep.dist is not None and canon(ep.dist.name) == want]
    if not eps:
        raise SystemExit(f"no 'ptycho' entry point belongs to distribution {target[5:]!r}")
    objs = [(ep.value, ep.load()) for ep in eps]
else:
    objs = [(target[7:], importlib.import_module(target[7:]))]
recorded = {"generator": [], "loader": [], "stitcher": []}
for _, obj in objs:
    for hook, kind in kind_of.items():
        fn = getattr(obj, hook, None)
        if callable(fn):
            fn(register=lambda spec, kind=kind: recorded[kind].append(spec.name))
result = {"plugins": [v for v, _ in objs], "recorded": recorded, "before": before,
          "heavy": sorted(m for m in heavy if m in sys.modules)}
print("@@ptycho-conformance@@" + json.dumps(result))
"""


def registration_imports(
    distribution: str | None = None,
    module: str | None = None,
    heavy_modules: tuple[str, ...] = HEAVY_MODULES,
    extra_path: tuple[str, ...] = (),
    timeout: float = 120.0,
) -> dict:
    """Import a plugin in a fresh interpreter, call its hooks with a recording `register`.

    Give the distribution (its `ptycho` entry points are loaded) or the plugin module's name.
    Returns {"plugins", "recorded": {kind: [names]}, "heavy": heavy modules imported}.
    """
    if (distribution is None) == (module is None):
        raise ValueError("give exactly one of distribution= or module=")
    target = f"dist={distribution}" if distribution is not None else f"module={module}"
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join([*extra_path, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run(
        [sys.executable, "-c", _REGISTRATION_SCRIPT, target, ",".join(heavy_modules)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("@@ptycho-conformance@@"):
            return json.loads(line[len("@@ptycho-conformance@@") :])
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    raise _fail(f"importing the plugin ({target}) and calling its hooks failed: {tail}")


def check_registration(
    spec, kind: str, module: str | None = None, heavy_modules=HEAVY_MODULES, extra_path: tuple[str, ...] = ()
) -> dict:
    """Registering the plugin (what `ptycho list-generators` does) imports none of `heavy_modules`."""
    if module is None:
        if not spec.distribution:
            raise _fail(
                f"{kind} {spec.name!r} has no distribution (registered in-process?): give the plugin module "
                "(plugin_module = 'pkg.plugin')"
            )
        if spec.distribution == "ptycho":
            module = "ptycho_core.default_plugins"
    if module is not None:
        found = registration_imports(module=module, heavy_modules=heavy_modules, extra_path=extra_path)
    else:
        found = registration_imports(distribution=spec.distribution, heavy_modules=heavy_modules, extra_path=extra_path)
    if spec.name not in found["recorded"][kind]:
        raise _fail(
            f"the plugin module(s) {found['plugins']} did not register {kind} {spec.name!r}: {found['recorded']}"
        )
    imported = sorted(set(found["heavy"]) - set(found["before"]))
    if imported:
        raise _fail(
            f"registering {kind} {spec.name!r} imports {', '.join(imported)}: keep plugin.py to specs only and "
            "import frameworks inside the factory (a 'module:attr' string)"
        )
    return found


# --- tiny data ------------------------------------------------------------------------------------------


def tiny_data(gridsize: int = 1, supervised: bool = False, sim: dict | None = None, seed: int = 0):
    """A `ptycho_core.pipeline.Prepared` from the tiny simulation: train/val TrainingSets, test data.

    N=16, 64 training patterns (58 training groups, 6 validation groups), 64 test patterns.
    """
    from ptycho_core import pipeline
    from ptycho_core.simulate import SimConfig, simulate_pair

    cfg = SimConfig(**{**TINY_SIM, **(sim or {})})
    train_ds, test_ds = simulate_pair(cfg)
    return pipeline.prepare(train_ds, test_ds, gridsize=gridsize, seed=seed, val_fraction=0.1, supervised=supervised)


def sample_inputs(prepared, count: int = 11):
    """(diffraction (B, C, N, N) float32, offsets (B, C, 2)) of the first `count` test groups."""
    import numpy as np

    groups = prepared.test_groups
    idx = groups.indices[:count]
    return np.ascontiguousarray(prepared.test.diffraction[idx], dtype=np.float32), groups.offsets[:count]


def _pickle_files(directory: Path) -> list[str]:
    """Files under `directory` that hold a pickle (raw, or torch.save's zip with data.pkl)."""
    found = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        head = path.open("rb").read(2)
        if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
            found.append(path.name)
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                if any(n.endswith(".pkl") for n in zf.namelist()):
                    found.append(path.name)
    return found


def _max_rel_diff(a, b) -> float:
    import numpy as np

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


class GeneratorChecks:
    """Every generator check as a method; expensive fits are shared between checks and cached.

    `options` override the spec's defaults (e.g. small widths), `config` the short training budget
    (`TINY_TRAIN`), `sim` the tiny simulation (`TINY_SIM`). `plugin_module` names the module holding the
    hooks when the spec does not come from an installed distribution.
    """

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
        self.spec = spec
        self.option_overrides = dict(options or {})
        self.config_overrides = dict(config or {})
        self.sim = dict(sim or {})
        self.tolerance = tolerance
        self.heavy_modules = heavy_modules
        self.plugin_module = plugin_module
        self.extra_path = tuple(extra_path)
        self._fits: dict = {}
        self._data: dict = {}
        self._workdir: str | None = None

    # helpers
    def close(self) -> None:
        """Remove temporary checkpoint folders."""
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._fits.clear()

    def _tmp(self, name: str) -> Path:
        if self._workdir is None:
            self._workdir = tempfile.mkdtemp(prefix="ptycho-conformance-")
        path = Path(self._workdir) / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def options(self) -> dict:
        try:
            return self.spec.resolve_options(self.option_overrides)
        except PtychoError as exc:
            raise _fail(f"the options given to the conformance checks are not accepted: {exc}") from None

    def train_config(self, **changes):
        from ptycho_core.generator import TrainConfig

        return TrainConfig(**{**TINY_TRAIN, **self.config_overrides, **changes})

    def require_available(self) -> None:
        missing = self.spec.missing_requirements()
        if missing:
            raise Unavailable(f"generator {self.spec.name!r} is unavailable: missing {', '.join(missing)}")
        if self.spec.kind != "learned":
            raise Unavailable(f"generator {self.spec.name!r} is {self.spec.kind}: fit/predict checks do not apply")

    def build(self):
        self.require_available()
        factory = self.spec.load_factory()
        try:
            return factory(**self.options())
        except Exception as exc:
            raise _fail(f"factory {self.spec.factory}(**{self.options()}) raised {type(exc).__name__}: {exc}") from exc

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
                raise _fail(f"fit raised {type(exc).__name__}: {exc}") from exc
            self._fits[key] = (gen, history, events)
        return self._fits[key]

    def predict(self, gen, gridsize: int):
        import numpy as np

        diffraction, offsets = sample_inputs(self.data(gridsize))
        try:
            with _one_torch_thread(self.spec):
                out = gen.predict(diffraction, offsets)
        except Exception as exc:
            raise _fail(f"predict raised {type(exc).__name__}: {exc}") from exc
        return np.asarray(out), diffraction.shape

    # the checks
    def spec_is_complete(self) -> None:
        check_spec(self.spec, "generator")

    def registration_imports_no_framework(self) -> None:
        check_registration(self.spec, "generator", self.plugin_module, self.heavy_modules, self.extra_path)

    def factory_builds(self) -> None:
        self.require_available()
        try:
            factory = self.spec.load_factory()
        except PtychoError as exc:
            raise _fail(str(exc)) from None
        if not callable(factory):
            raise _fail(f"factory {self.spec.factory} is not callable")
        try:
            params = inspect.signature(factory).parameters.values()
        except (TypeError, ValueError):
            params = None
        if params is not None and not any(p.kind is p.VAR_KEYWORD for p in params):
            accepted = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
            missing = sorted(set(self.spec.options) - accepted)
            if missing:
                raise _fail(f"factory {self.spec.factory} does not accept declared option(s) {', '.join(missing)}")
        gen = self.build()
        lacking = [m for m in ("fit", "predict", "save", "load") if not callable(getattr(gen, m, None))]
        if lacking:
            raise _fail(f"factory returned {type(gen).__name__}, which lacks {', '.join(lacking)} (DESIGN section 7)")

    def fit_lowers_loss(self) -> None:
        _, history, events = self.fit(1)
        loss = list(getattr(history, "loss", None) or [])
        if getattr(history, "stopped", ""):
            raise _fail(f"training stopped early on tiny data: {history.stopped} (losses {loss})")
        epochs = self.train_config().epochs
        if len(loss) != epochs:
            raise _fail(f"History.loss has {len(loss)} entries for {epochs} epochs (one per epoch expected)")
        if len(getattr(history, "val_loss", []) or []) != epochs:
            raise _fail(f"History.val_loss must have one entry per epoch, got {history.val_loss}")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in loss):
            raise _fail(f"History.loss must hold finite floats, got {loss}")
        if not loss[-1] < loss[0]:
            raise _fail(f"a {epochs}-epoch fit on tiny data did not lower the training loss: {loss}")
        if not events:
            raise _fail("fit never called progress(event)")
        bad = [e for e in events if not isinstance(e, dict) or not {"epoch", "epochs", "loss"} <= set(e)]
        if bad:
            raise _fail(f"progress events must be dicts with epoch, epochs, step, steps, loss, val_loss; got {bad[0]}")

    def _check_patches(self, out, shape) -> None:
        import numpy as np

        if out.shape != shape:
            raise _fail(f"predict returned shape {out.shape}, expected {shape} (B, C, N, N)")
        if out.dtype != np.complex64:
            raise _fail(f"predict returned {out.dtype}, expected complex64")
        if not np.isfinite(out).all():
            raise _fail("predict returned NaN or inf")
        if not np.abs(out).any():
            raise _fail("predict returned all zeros")

    def predict_returns_patches_for_one_channel(self) -> None:
        gen, _, _ = self.fit(1)
        self._check_patches(*self.predict(gen, 1))

    def predict_returns_patches_for_four_channels(self) -> None:
        gen, _, _ = self.fit(2, epochs=1)
        self._check_patches(*self.predict(gen, 2))

    def save_then_load_reproduces_predictions(self) -> None:
        gen, _, _ = self.fit(1)
        before, _ = self.predict(gen, 1)
        directory = self._tmp("checkpoint")
        try:
            gen.save(directory)
        except Exception as exc:
            raise _fail(f"save raised {type(exc).__name__}: {exc}") from exc
        if not any(p.is_file() for p in directory.rglob("*")):
            raise _fail("save wrote no file")
        pickled = _pickle_files(directory)
        if pickled:
            raise _fail(f"save wrote pickles ({', '.join(pickled)}): use safetensors or Keras .weights.h5")
        fresh = self.build()
        try:
            fresh.load(directory)
        except Exception as exc:
            raise _fail(f"load on a fresh instance raised {type(exc).__name__}: {exc}") from exc
        after, _ = self.predict(fresh, 1)
        diff = _max_rel_diff(before, after)
        if diff > self.tolerance:
            raise _fail(f"predictions after save/load differ by {diff:.3g} of max |prediction|")

    def same_seed_gives_same_result(self) -> None:
        gen_a, hist_a, _ = self.fit(1)
        gen_b, hist_b, _ = self.fit(1, run=1)
        pred_a, _ = self.predict(gen_a, 1)
        pred_b, _ = self.predict(gen_b, 1)
        diff = _max_rel_diff(pred_a, pred_b)
        if diff > self.tolerance:
            raise _fail(
                f"two fits with seed {self.train_config().seed} differ: predictions by {diff:.3g} of max "
                f"|prediction|, losses {hist_a.loss} vs {hist_b.loss}"
            )


# --- loader checks -----------------------------------------------------------------------------------------


def _default_writer(spec: LoaderSpec) -> Callable | None:
    if ".npz" in spec.extensions:
        from ptycho_core.io.npz import save_npz

        return save_npz
    return None


class LoaderChecks:
    """Loader checks. `write(dataset, path)` writes the loader's format (default: `save_npz` for
    `.npz` loaders); or give `sample`, an existing file the loader must read."""

    def __init__(
        self,
        spec: LoaderSpec,
        write: Callable | None = None,
        sample: str | os.PathLike | None = None,
        registry=None,
        heavy_modules: tuple[str, ...] = HEAVY_MODULES,
        plugin_module: str | None = None,
        extra_path: tuple[str, ...] = (),
    ):
        self.spec = spec
        self.write = write
        self.sample = sample
        self.registry = registry
        self.heavy_modules = heavy_modules
        self.plugin_module = plugin_module
        self.extra_path = tuple(extra_path)
        self._workdir: str | None = None

    def close(self) -> None:
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def _tmp(self) -> Path:
        if self._workdir is None:
            self._workdir = tempfile.mkdtemp(prefix="ptycho-conformance-")
        return Path(self._workdir)

    def require_available(self) -> None:
        missing = self.spec.missing_requirements()
        if missing:
            raise Unavailable(f"loader {self.spec.name!r} is unavailable: missing {', '.join(missing)}")

    def load(self, path):
        self.require_available()
        return self.spec.load_factory()(str(path))

    def spec_is_complete(self) -> None:
        check_spec(self.spec, "loader")

    def registration_imports_no_framework(self) -> None:
        check_registration(self.spec, "loader", self.plugin_module, self.heavy_modules, self.extra_path)

    def reads_a_valid_dataset(self) -> None:
        import numpy as np

        from ptycho_core.data import Dataset
        from ptycho_core.simulate import SimConfig, simulate

        self.require_available()
        original = None
        if self.sample is not None:
            path = Path(self.sample)
        else:
            write = self.write or _default_writer(self.spec)
            if write is None:
                raise _fail(
                    f"loader {self.spec.name!r}: give the checks a writer for its format (write = ...) or a "
                    "sample file (sample = ...)"
                )
            original = simulate(SimConfig(**TINY_SIM))
            path = self._tmp() / ("sample" + self.spec.extensions[0])
            write(original, path)
        try:
            ds = self.load(path)
        except PtychoError as exc:
            raise _fail(f"loading {path.name} failed: {exc}") from None
        if not isinstance(ds, Dataset):
            raise _fail(f"the loader returned {type(ds).__name__}, expected ptycho_core.data.Dataset")
        try:
            ds.validate(source=str(path))
        except PtychoError as exc:
            raise _fail(f"the loader returned an invalid Dataset: {exc}") from None
        if "source" not in ds.metadata:
            raise _fail("the Dataset's metadata has no 'source' (the file it came from)")
        if original is not None:
            for key in ("diffraction", "positions", "probe", "object"):
                want, got = getattr(original, key), getattr(ds, key)
                if got is None and want is not None:
                    continue  # the format may not store ground truth
                if want is None or got.shape != want.shape or not np.allclose(got, want, rtol=1e-6, atol=0):
                    raise _fail(f"'{key}' does not read back as written (shape {got.shape} vs {want.shape})")
        if self.registry is not None:
            chosen = self.registry.loader_for(path)
            if (chosen.name, chosen.distribution) != (self.spec.name, self.spec.distribution):
                raise _fail(
                    f"ptycho picks loader {chosen.qualified_name!r} for {path.name}, not {self.spec.qualified_name!r}: "
                    "another loader claims the same extension"
                )

    def refuses_bad_files_with_one_line_errors(self) -> None:
        self.require_available()
        tmp = self._tmp()
        ext = self.spec.extensions[0]
        cases = {
            "a missing file": tmp / ("missing" + ext),
            "an empty file": tmp / ("empty" + ext),
            "a file of text": tmp / ("text" + ext),
        }
        cases["an empty file"].write_bytes(b"")
        cases["a file of text"].write_text("this is not a dataset\n")
        for what, path in cases.items():
            try:
                self.load(path)
            except PtychoError as exc:
                if "\n" in str(exc).strip():
                    raise _fail(f"{what}: the error must be one line, got {str(exc)!r}") from None
                continue
            except Exception as exc:
                raise _fail(
                    f"{what}: raised {type(exc).__name__} ({exc}); raise ptycho_core.errors.DataError so users see "
                    "one line instead of a traceback"
                ) from exc
            raise _fail(f"{what} ({path.name}) was accepted")


# --- stitcher checks ------------------------------------------------------------------------------------------


class StitcherChecks:
    """Stitcher checks: stitching true patches cut at the scan positions recovers the object."""

    def __init__(
        self,
        spec: StitcherSpec,
        options: dict | None = None,
        tolerance: float = STITCH_TOLERANCE,
        heavy_modules: tuple[str, ...] = HEAVY_MODULES,
        plugin_module: str | None = None,
        extra_path: tuple[str, ...] = (),
    ):
        self.spec = spec
        self.options = dict(options or {})
        self.tolerance = tolerance
        self.heavy_modules = heavy_modules
        self.plugin_module = plugin_module
        self.extra_path = tuple(extra_path)

    def close(self) -> None:
        pass

    def spec_is_complete(self) -> None:
        check_spec(self.spec, "stitcher")

    def registration_imports_no_framework(self) -> None:
        check_registration(self.spec, "stitcher", self.plugin_module, self.heavy_modules, self.extra_path)

    def stitching_true_patches_recovers_object(self) -> None:
        import numpy as np

        from ptycho_core import physics
        from ptycho_core.simulate import SimConfig, simulate

        missing = self.spec.missing_requirements()
        if missing:
            raise Unavailable(f"stitcher {self.spec.name!r} is unavailable: missing {', '.join(missing)}")
        unknown = sorted(set(self.options) - set(self.spec.options))
        if unknown:
            raise _fail(f"options {unknown} are not declared by stitcher {self.spec.name!r}")
        ds = simulate(SimConfig(**TINY_SIM))
        # Integer positions: every weighted average of consistent patches is then exactly the object
        # (at sub-pixel positions bilinear interpolation smooths a few percent away).
        obj, positions, probe = ds.object, np.round(ds.positions), ds.probe
        patches = physics.extract(obj, positions, ds.patch_size).astype(np.complex64)
        options = {k: opt.default for k, opt in self.spec.options.items()} | self.options
        try:
            result = self.spec.load_factory()(patches, positions, obj.shape, probe, **options)
        except Exception as exc:
            raise _fail(f"stitching raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(result, tuple) or len(result) != 2:
            raise _fail("a stitcher returns (object (H, W), weights (H, W))")
        recon, weights = (np.asarray(a) for a in result)
        if recon.shape != obj.shape or weights.shape != obj.shape:
            raise _fail(f"shapes {recon.shape}, {weights.shape}: expected the canvas shape {obj.shape}")
        if not np.iscomplexobj(recon) or np.iscomplexobj(weights):
            raise _fail(f"object must be complex and weights real, got {recon.dtype} and {weights.dtype}")
        if not (np.isfinite(recon).all() and np.isfinite(weights).all() and (weights >= 0).all()):
            raise _fail("object and weights must be finite, weights non-negative")
        lo = np.ceil(positions.min(axis=0)).astype(int)
        hi = np.floor(positions.max(axis=0)).astype(int) + 1
        region = np.zeros(obj.shape, dtype=bool)
        region[lo[0] : hi[0], lo[1] : hi[1]] = True
        region &= weights >= 0.1 * weights.max()
        if region.sum() < 0.5 * (hi - lo).prod():
            raise _fail("weights cover less than half of the scanned region")
        err = np.linalg.norm((recon - obj)[region]) / np.linalg.norm(obj[region])
        if err > self.tolerance:
            raise _fail(f"stitching the true patches gives a relative error {err:.3g} > {self.tolerance} in the scan")


# --- running checks -------------------------------------------------------------------------------------------


def _run(checker, names: tuple[str, ...]) -> list[CheckResult]:
    results = []
    try:
        for name in names:
            start = time.perf_counter()
            try:
                getattr(checker, name)()
                status, detail = "passed", ""
            except Unavailable as exc:
                status, detail = ("failed" if _in_ci() else "skipped"), str(exc)
            except ConformanceError as exc:
                status, detail = "failed", str(exc)
            except Exception as exc:  # a bug in the component under test: report it, keep checking
                status, detail = "failed", f"{type(exc).__name__}: {exc}"
            results.append(CheckResult(name, status, detail, time.perf_counter() - start))
    finally:
        checker.close()
    return results


def _raise_failures(what: str, results: list[CheckResult]) -> list[CheckResult]:
    failed = [r for r in results if not r.ok]
    if failed:
        lines = "\n".join(f"  {r}" for r in results)
        raise ConformanceError(f"{what}: {len(failed)} of {len(results)} checks failed\n{lines}")
    return results


def run_generator_checks(
    spec: GeneratorSpec, checks: tuple[str, ...] = GENERATOR_CHECKS, **kwargs
) -> list[CheckResult]:
    """Run generator checks on `spec`; returns one CheckResult per check (never raises for failures).

    Keyword arguments go to `GeneratorChecks` (options, config, sim, tolerance, plugin_module, ...).
    """
    return _run(GeneratorChecks(spec, **kwargs), checks)


def run_loader_checks(spec: LoaderSpec, checks: tuple[str, ...] = LOADER_CHECKS, **kwargs) -> list[CheckResult]:
    """Run loader checks on `spec` (keyword arguments go to `LoaderChecks`: write, sample, ...)."""
    return _run(LoaderChecks(spec, **kwargs), checks)


def run_stitcher_checks(spec: StitcherSpec, checks: tuple[str, ...] = STITCHER_CHECKS, **kwargs) -> list[CheckResult]:
    """Run stitcher checks on `spec` (keyword arguments go to `StitcherChecks`: options, tolerance)."""
    return _run(StitcherChecks(spec, **kwargs), checks)


def check_generator(name: str, registry=None, **kwargs) -> list[CheckResult]:
    """Find the installed generator `name` and run every check; raise ConformanceError if any fails."""
    spec = find_spec("generator", name, registry)
    return _raise_failures(f"generator {spec.qualified_name!r}", run_generator_checks(spec, **kwargs))


def check_loader(name: str, registry=None, **kwargs) -> list[CheckResult]:
    """Find the installed loader `name` and run every check; raise ConformanceError if any fails."""
    if registry is None:
        from ptycho_core.plugins import PluginHost

        registry = PluginHost.from_environment().registry()
    spec = find_spec("loader", name, registry)
    kwargs.setdefault("registry", registry)
    return _raise_failures(f"loader {spec.qualified_name!r}", run_loader_checks(spec, **kwargs))


def check_stitcher(name: str, registry=None, **kwargs) -> list[CheckResult]:
    """Find the installed stitcher `name` and run every check; raise ConformanceError if any fails."""
    spec = find_spec("stitcher", name, registry)
    return _raise_failures(f"stitcher {spec.qualified_name!r}", run_stitcher_checks(spec, **kwargs))


# --- pytest classes -----------------------------------------------------------------------------------------------


class _Conformance:
    """Shared machinery of the pytest classes: one checker per class, built in setup_class."""

    kind = ""
    plugin_module: str | None = None
    heavy_modules: tuple[str, ...] = HEAVY_MODULES
    _checker: Any = None

    @classmethod
    def _name(cls) -> str:
        raise NotImplementedError

    @classmethod
    def _make_checker(cls, spec, registry):
        raise NotImplementedError

    @classmethod
    def registry(cls):
        """Where the component is looked up: plugins discovered as the `ptycho` command does.

        Override (a classmethod) to check a plugin registered in-process instead.
        """
        from ptycho_core.plugins import PluginHost

        return PluginHost.from_environment().registry()

    @classmethod
    def setup_class(cls):
        name = cls._name()
        if not name:
            raise TypeError(f"{cls.__name__}: set the `{cls.kind}` class attribute to the registered name")
        registry = cls.registry()
        cls._checker = cls._make_checker(find_spec(cls.kind, name, registry), registry)

    @classmethod
    def teardown_class(cls):
        if cls._checker is not None:
            cls._checker.close()
            cls._checker = None

    def _check(self, name: str) -> None:
        try:
            getattr(type(self)._checker, name)()
        except Unavailable as exc:
            if _in_ci():
                raise ConformanceError(f"{exc} (CI=true: unavailable components fail)") from None
            import pytest

            pytest.skip(str(exc))


class GeneratorConformance(_Conformance):
    """Subclass in pytest with `generator = "name"`; one test per generator check.

    Optional class attributes: `options` (override spec defaults, e.g. small widths), `config`
    (TrainConfig fields for the short fits), `sim` (SimConfig fields), `tolerance`, `plugin_module`.
    """

    kind = "generator"
    generator: str = ""
    options: dict = {}
    config: dict = {}
    sim: dict = {}
    tolerance: float = TOLERANCE

    @classmethod
    def _name(cls) -> str:
        return cls.generator

    @classmethod
    def _make_checker(cls, spec, registry):
        return GeneratorChecks(
            spec,
            options=cls.options,
            config=cls.config,
            sim=cls.sim,
            tolerance=cls.tolerance,
            heavy_modules=cls.heavy_modules,
            plugin_module=cls.plugin_module,
        )

    def test_spec_is_complete(self):
        self._check("spec_is_complete")

    def test_registration_imports_no_framework(self):
        self._check("registration_imports_no_framework")

    def test_factory_builds(self):
        self._check("factory_builds")

    def test_fit_lowers_loss(self):
        self._check("fit_lowers_loss")

    def test_predict_returns_patches_for_one_channel(self):
        self._check("predict_returns_patches_for_one_channel")

    def test_predict_returns_patches_for_four_channels(self):
        self._check("predict_returns_patches_for_four_channels")

    def test_save_then_load_reproduces_predictions(self):
        self._check("save_then_load_reproduces_predictions")

    def test_same_seed_gives_same_result(self):
        self._check("same_seed_gives_same_result")


class LoaderConformance(_Conformance):
    """Subclass in pytest with `loader = "name"` and, unless it reads .npz, `write` (a staticmethod
    `write(dataset, path)` in the loader's format) or `sample` (a path to a file it must read)."""

    kind = "loader"
    loader: str = ""
    write: Callable | None = None
    sample: str | None = None

    @classmethod
    def _name(cls) -> str:
        return cls.loader

    @classmethod
    def _make_checker(cls, spec, registry):
        write = inspect.getattr_static(cls, "write", None)
        if isinstance(write, staticmethod):
            write = write.__func__
        return LoaderChecks(
            spec,
            write=write,
            sample=cls.sample,
            registry=registry,
            heavy_modules=cls.heavy_modules,
            plugin_module=cls.plugin_module,
        )

    def test_spec_is_complete(self):
        self._check("spec_is_complete")

    def test_registration_imports_no_framework(self):
        self._check("registration_imports_no_framework")

    def test_reads_a_valid_dataset(self):
        self._check("reads_a_valid_dataset")

    def test_refuses_bad_files_with_one_line_errors(self):
        self._check("refuses_bad_files_with_one_line_errors")


class StitcherConformance(_Conformance):
    """Subclass in pytest with `stitcher = "name"` (optional `options`, `tolerance`)."""

    kind = "stitcher"
    stitcher: str = ""
    options: dict = {}
    tolerance: float = STITCH_TOLERANCE

    @classmethod
    def _name(cls) -> str:
        return cls.stitcher

    @classmethod
    def _make_checker(cls, spec, registry):
        return StitcherChecks(
            spec,
            options=cls.options,
            tolerance=cls.tolerance,
            heavy_modules=cls.heavy_modules,
            plugin_module=cls.plugin_module,
        )

    def test_spec_is_complete(self):
        self._check("spec_is_complete")

    def test_registration_imports_no_framework(self):
        self._check("registration_imports_no_framework")

    def test_stitching_true_patches_recovers_object(self):
        self._check("stitching_true_patches_recovers_object")


__all__ = [
    "HEAVY_MODULES",
    "TINY_SIM",
    "TINY_TRAIN",
    "CheckResult",
    "ConformanceError",
    "GeneratorChecks",
    "GeneratorConformance",
    "LoaderChecks",
    "LoaderConformance",
    "StitcherChecks",
    "StitcherConformance",
    "check_generator",
    "check_loader",
    "check_registration",
    "check_spec",
    "check_stitcher",
    "find_spec",
    "registration_imports",
    "run_generator_checks",
    "run_loader_checks",
    "run_stitcher_checks",
    "sample_inputs",
    "tiny_data",
]
