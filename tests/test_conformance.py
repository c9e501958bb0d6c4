"""The conformance kit (`ptycho_core.testing`) passes conforming components and catches each broken
contract with a message that says what to fix.

Components under test are the numpy dummies (`ptycho_core.testing.dummies`), the core's own loader
and stitchers, and small broken plugins written to a temporary folder (so that the registration
check can import them in a fresh interpreter).
"""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from ptycho_core.plugins import PluginHost
from ptycho_core.registry import GeneratorSpec, LoaderSpec, Option, StitcherSpec
from ptycho_core.testing import (
    ConformanceError,
    GeneratorConformance,
    LoaderConformance,
    StitcherConformance,
    check_generator,
    check_loader,
    check_stitcher,
    conformance,
    dummies,
    run_generator_checks,
    run_loader_checks,
    run_stitcher_checks,
)

DUMMIES = "ptycho_core.testing.dummies"

#: A plugin module with one generator per way of breaking the runtime contract. Every class wraps
#: the working numpy dummy and breaks exactly one thing.
BROKEN_GENERATORS = """
import os
import pickle
from pathlib import Path

from ptycho_core.generator import History
from ptycho_core.hookspecs import hookimpl
from ptycho_core.registry import GeneratorSpec
from ptycho_core.testing import dummies


class Wrapped:
    def __init__(self):
        self.inner = dummies.build_intensity()

    def fit(self, train, val, config, progress):
        return self.inner.fit(train, val, config, progress)

    def predict(self, diffraction, offsets):
        return self.inner.predict(diffraction, offsets)

    def save(self, directory):
        self.inner.save(directory)

    def load(self, directory):
        self.inner.load(directory)
        return self


class WrongDtype(Wrapped):
    def predict(self, diffraction, offsets):
        return self.inner.predict(diffraction, offsets).astype("complex128")


class DropsChannels(Wrapped):
    def predict(self, diffraction, offsets):
        return self.inner.predict(diffraction, offsets)[:, :1]


class MixesChannels(Wrapped):
    per_pattern = True  # but each patch also takes in the group's mean pattern

    def predict(self, diffraction, offsets):
        mixed = 0.5 * (diffraction + diffraction.mean(axis=1, keepdims=True))
        return self.inner.predict(mixed.astype(diffraction.dtype), offsets)


class Pickles(Wrapped):
    def save(self, directory):
        Path(directory, "model.pkl").write_bytes(pickle.dumps(self.inner.params))


class ForgetsOnLoad(Wrapped):
    def load(self, directory):
        self.inner.load(directory)
        self.inner.params["s0"] *= 2
        return self


class Unseeded(Wrapped):
    def predict(self, diffraction, offsets):
        noise = int.from_bytes(os.urandom(2), "little") / 65536.0
        return (self.inner.predict(diffraction, offsets) * (1 + noise)).astype("complex64")


class Stalls(Wrapped):
    def fit(self, train, val, config, progress):
        self.inner.fit(train, val, config, progress)
        return History(loss=[1.0] * config.epochs, val_loss=[1.0] * config.epochs)


class Constant(Wrapped):
    def predict(self, diffraction, offsets):
        import numpy as np

        return np.ones(diffraction.shape, np.complex64)


class QuietProgress(Wrapped):
    def fit(self, train, val, config, progress):
        keep = ("epoch", "epochs", "loss")
        return self.inner.fit(train, val, config, lambda e: progress({k: e[k] for k in keep}))


class NoEpochEnd(Wrapped):
    def fit(self, train, val, config, progress):
        return self.inner.fit(train, val, config, lambda e: progress({**e, "steps": e["steps"] + 1}))


class PicklesProtocol0(Wrapped):
    def save(self, directory):
        self.inner.save(directory)
        Path(directory, "state.bin").write_bytes(pickle.dumps(self.inner.params, protocol=0))


class PicklesProtocol1(Wrapped):
    def save(self, directory):
        self.inner.save(directory)
        Path(directory, "state.bin").write_bytes(pickle.dumps(self.inner.params, protocol=1))


class ObjectNpy(Wrapped):
    def save(self, directory):
        import numpy as np

        self.inner.save(directory)
        np.save(Path(directory, "state.npy"), np.array([self.inner.params], dtype=object), allow_pickle=True)


class ObjectNpz(Wrapped):
    def save(self, directory):
        import numpy as np

        self.inner.save(directory)
        np.savez(Path(directory, "state.npz"), ok=np.zeros(3), params=np.array([self.inner.params], dtype=object))


BROKEN = {
    "constant": "Constant",
    "quiet_progress": "QuietProgress",
    "no_epoch_end": "NoEpochEnd",
    "pickles_protocol_0": "PicklesProtocol0",
    "pickles_protocol_1": "PicklesProtocol1",
    "object_npy": "ObjectNpy",
    "object_npz": "ObjectNpz",
    "wrong_dtype": "WrongDtype",
    "drops_channels": "DropsChannels",
    "mixes_channels": "MixesChannels",
    "pickles": "Pickles",
    "forgets_on_load": "ForgetsOnLoad",
    "unseeded": "Unseeded",
    "stalls": "Stalls",
}


@hookimpl
def ptycho_register_generators(register):
    for name, cls in BROKEN.items():
        register(GeneratorSpec(name=name, summary="a broken test generator", factory=f"{__name__}:{cls}"))
"""

HEAVY_PLUGIN = """
import numpy  # a plugin module must not do this: listing generators would import numpy

from ptycho_core.hookspecs import hookimpl
from ptycho_core.registry import GeneratorSpec


@hookimpl
def ptycho_register_generators(register):
    register(GeneratorSpec(name="heavy", summary="imports numpy at registration",
                           factory="ptycho_core.testing.dummies:build_intensity"))
"""

BAD_LOADER = '''
import numpy as np

from ptycho_core.data import Dataset


def load_raw(path):
    """Lets numpy's exceptions escape: users would see a traceback."""
    with np.load(path, allow_pickle=False) as z:
        return Dataset(z["diffraction"], z["positions"], z["probe"], metadata={"source": str(path)})


def load_csv(path):
    raise NotImplementedError


def load_trusting(path):
    """One-line errors, but reads whatever the header declares, and unpickles."""
    from ptycho_core.errors import DataError

    try:
        with np.load(path, allow_pickle=True) as z:
            arrays = {k: z[k] for k in ("diffraction", "positions", "probe")}
    except Exception as exc:
        raise DataError(f"{path}: unreadable ({type(exc).__name__})") from None
    return Dataset(arrays["diffraction"], arrays["positions"], arrays["probe"], metadata={"source": str(path)})


def save_with_pickle(ds, path):
    np.savez(path, diffraction=ds.diffraction, positions=ds.positions, probe=ds.probe,
             extra=np.array([{"pickled": True}], dtype=object))


def load_h5_whole(path):
    """Reads every array whole, as h5py allows: a header declaring 1 TiB is a MemoryError."""
    import h5py

    from ptycho_core.errors import DataError

    try:
        with h5py.File(path, "r") as h5:
            arrays = {k: h5[k][()] for k in ("diffraction", "positions", "probe")}
    except (OSError, KeyError) as exc:
        raise DataError(f"{path}: unreadable ({type(exc).__name__})") from None
    return Dataset(arrays["diffraction"], arrays["positions"], arrays["probe"], metadata={"source": str(path)})


def save_h5(ds, path):
    import h5py

    with h5py.File(path, "w") as h5:
        for key in ("diffraction", "positions", "probe"):
            h5[key] = getattr(ds, key)
'''

BAD_STITCHER = '''
def off_by_one(patches, positions, shape, probe):
    """Splats one pixel off: the stitched object is shifted."""
    from ptycho_core import stitch

    return stitch.probe_weighted(patches, positions + 1.0, shape, probe)


def rounds_positions(patches, positions, shape, probe):
    """Ignores the sub-pixel part of the positions."""
    import numpy as np
    from ptycho_core import stitch

    return stitch.probe_weighted(patches, np.round(positions), shape, probe)


def truncates_positions(patches, positions, shape, probe):
    import numpy as np
    from ptycho_core import stitch

    return stitch.probe_weighted(patches, np.floor(positions), shape, probe)


def misses_a_corner(patches, positions, shape, probe):
    """Exact, but leaves the top rows of the scanned region uncovered (zero weight, zero object)."""
    import numpy as np
    from ptycho_core import stitch

    obj, weights = stitch.probe_weighted(patches, positions, shape, probe)
    top = int(np.ceil(positions[:, 0].min())) + 3
    obj[:top], weights[:top] = 0, 0
    return obj, weights


def no_weights(patches, positions, shape, probe):
    from ptycho_core import stitch

    return stitch.probe_weighted(patches, positions, shape, probe)[0]
'''


@pytest.fixture
def dummy_registry():
    """A registry with the built-ins and the numpy dummies (registered in-process)."""
    host = PluginHost(load="")
    with host.registered(dummies, "ptycho-dummies"):
        yield host.registry()


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A folder on sys.path (here and in the registration subprocess) for throwaway plugin modules."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(module: str, text: str):
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(text))
        sys.modules.pop(module, None)
        importlib.invalidate_caches()
        return str(tmp_path)

    return write


@pytest.fixture
def broken_registry(plugin_dir):
    path = plugin_dir("broken_generators", BROKEN_GENERATORS)
    import broken_generators

    host = PluginHost(load="")
    with host.registered(broken_generators, "broken-generators"):
        yield host.registry(), path


def _by_check(results):
    return {r.check: r for r in results}


# --- generators ------------------------------------------------------------------------------------------


def test_conforming_numpy_generator_passes_every_check(dummy_registry):
    results = check_generator("dummy_intensity", registry=dummy_registry, plugin_module=DUMMIES)
    assert [r.check for r in results] == list(conformance.GENERATOR_CHECKS)
    assert all(r.status == "passed" for r in results), [str(r) for r in results]


def test_supervised_generator_is_trained_on_ground_truth_and_passes(dummy_registry):
    results = check_generator("dummy_supervised", registry=dummy_registry, plugin_module=DUMMIES)
    assert all(r.status == "passed" for r in results), [str(r) for r in results]


def test_generator_that_raises_in_fit_fails_the_training_checks_only(dummy_registry):
    spec = dummy_registry.generator("dummy_raising")
    results = _by_check(run_generator_checks(spec, plugin_module=DUMMIES))
    for name in ("spec_is_complete", "registration_imports_no_framework", "factory_builds"):
        assert results[name].status == "passed"
    assert results["fit_lowers_loss"].status == "failed"
    assert "fit raised RuntimeError" in results["fit_lowers_loss"].detail


def test_check_generator_raises_listing_every_check(dummy_registry):
    with pytest.raises(ConformanceError) as info:
        check_generator("dummy_raising", registry=dummy_registry, plugin_module=DUMMIES)
    message = str(info.value)
    assert "6 of 9 checks failed" in message
    assert "passed  spec_is_complete" in message and "failed  fit_lowers_loss" in message


def test_unknown_generator_names_what_is_installed(dummy_registry):
    with pytest.raises(ConformanceError, match="dummy_intensity"):
        check_generator("no_such_generator", registry=dummy_registry)


@pytest.mark.parametrize(
    "kind, check, words",
    [
        ("wrong_dtype", "predict_returns_patches_for_one_channel", "expected complex64"),
        ("drops_channels", "predict_returns_patches_for_four_channels", "expected (11, 4, 16, 16)"),
        ("mixes_channels", "per_pattern_is_declared_truthfully", "per_pattern is True but a pattern's patch changes"),
        ("pickles", "save_then_load_reproduces_predictions", "save wrote pickles (model.pkl)"),
        ("forgets_on_load", "save_then_load_reproduces_predictions", "after save/load differ"),
        ("unseeded", "same_seed_gives_same_result", "two fits with seed 0 differ"),
        ("stalls", "fit_lowers_loss", "did not lower the training loss"),
        ("constant", "predict_returns_patches_for_one_channel", "the same patches for all 11 inputs"),
        ("quiet_progress", "fit_lowers_loss", "dicts with epoch, epochs, step, steps, loss, val_loss"),
        ("no_epoch_end", "fit_lowers_loss", "one epoch-end event (step == steps)"),
        ("pickles_protocol_0", "save_then_load_reproduces_predictions", "save wrote pickles (state.bin)"),
        ("pickles_protocol_1", "save_then_load_reproduces_predictions", "save wrote pickles (state.bin)"),
        ("object_npy", "save_then_load_reproduces_predictions", "save wrote pickles (state.npy)"),
        ("object_npz", "save_then_load_reproduces_predictions", "save wrote pickles (state.npz)"),
    ],
)
def test_each_broken_runtime_contract_is_caught(broken_registry, kind, check, words):
    registry, path = broken_registry
    result = run_generator_checks(registry.generator(kind), checks=(check,))[0]
    assert result.status == "failed", str(result)
    assert words in result.detail


def test_registration_that_imports_numpy_is_caught(plugin_dir):
    path = plugin_dir("heavy_plugin", HEAVY_PLUGIN)
    spec = GeneratorSpec(name="heavy", summary="s", factory=f"{DUMMIES}:build_intensity")
    with pytest.raises(ConformanceError, match="registering generator 'heavy' imports numpy"):
        conformance.check_registration(spec, "generator", module="heavy_plugin", extra_path=(path,))


def test_registration_that_does_not_register_the_name_is_caught():
    spec = GeneratorSpec(name="elsewhere", summary="s", factory=f"{DUMMIES}:build_intensity")
    with pytest.raises(ConformanceError, match="did not register generator 'elsewhere'"):
        conformance.check_registration(spec, "generator", module=DUMMIES)


def test_registration_of_an_unknown_distribution_says_so():
    with pytest.raises(ConformanceError, match="no 'ptycho' entry point belongs to distribution"):
        conformance.registration_imports(distribution="ptycho-nonexistent-xyz")


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"options": {"width": Option("int", 8, "")}}, "has no help text"),
        ({"options": {"width": Option("int", 0.5, "channels")}}, "declared int but its default 0.5"),
        ({"options": {"rate": Option("float", True, "step")}}, "declared float but its default True"),
        ({"options": {"act": Option("str", "relu", "activation", choices=("gelu",))}}, "not one of its choices"),
        ({"framework": "torch", "requires": ("safetensors",)}, "framework 'torch' is not in requires"),
        ({"summary": "two\nlines"}, "summary must be one non-empty line"),
        ({"requires": ("neuralop.layers",)}, "top-level module names"),
    ],
)
def test_incomplete_spec_is_caught(changes, words):
    fields = {"name": "g", "summary": "a generator", "factory": "m:build", "framework": "numpy", **changes}
    with pytest.raises(ConformanceError, match=words.replace("(", r"\(").replace(")", r"\)")):
        conformance.check_spec(GeneratorSpec(**fields), "generator")


def test_missing_framework_is_skipped_locally_and_fails_under_ci(monkeypatch):
    spec = GeneratorSpec(
        name="far",
        summary="needs a framework that is not here",
        factory="far_away:build",
        framework="jaxx",
        requires=("no_such_framework_xyz",),
    )
    checks = ("spec_is_complete", "factory_builds", "fit_lowers_loss")
    monkeypatch.delenv("CI", raising=False)
    statuses = [r.status for r in run_generator_checks(spec, checks=checks)]
    assert statuses == ["passed", "skipped", "skipped"]
    monkeypatch.setenv("CI", "true")
    statuses = [r.status for r in run_generator_checks(spec, checks=checks)]
    assert statuses == ["passed", "failed", "failed"]


def test_options_given_to_the_checks_are_typed_by_the_spec(dummy_registry):
    spec = dummy_registry.generator("dummy_intensity")
    results = _by_check(run_generator_checks(spec, checks=("factory_builds",), options={"nope": 1}))
    assert "unknown option(s) nope" in results["factory_builds"].detail


# --- loaders and stitchers ------------------------------------------------------------------------------


def test_core_npz_loader_passes_every_check(core_host):
    results = check_loader("npz", registry=core_host.registry())
    assert [r.status for r in results] == ["passed"] * len(conformance.LOADER_CHECKS)


def test_loader_whose_errors_are_tracebacks_is_caught(plugin_dir):
    plugin_dir("bad_loader", BAD_LOADER)
    spec = LoaderSpec(name="raw", summary="s", factory="bad_loader:load_raw", extensions=(".npz",))
    result = run_loader_checks(spec, checks=("refuses_bad_files_with_one_line_errors",))[0]
    assert result.status == "failed"
    assert "raise ptycho_core.errors.DataError" in result.detail


def test_loader_that_reads_what_a_header_declares_or_unpickles_is_caught(plugin_dir):
    plugin_dir("bad_loader", BAD_LOADER)
    spec = LoaderSpec(name="trusting", summary="s", factory="bad_loader:load_trusting", extensions=(".npz",))
    results = _by_check(run_loader_checks(spec))
    assert results["reads_a_valid_dataset"].status == "passed"
    assert "the loader unpickled a file (that ran code)" in results["refuses_bad_files_with_one_line_errors"].detail
    assert results["refuses_a_lying_header"].status == "passed"  # its catch-all makes numpy's MemoryError one line
    assert "not 'ptycho-trusting" not in results["is_picked_for_its_extensions"].detail
    assert "ptycho picks loader 'ptycho:npz' for scan.npz" in results["is_picked_for_its_extensions"].detail

    from bad_loader import save_with_pickle

    result = run_loader_checks(spec, checks=("writes_no_pickle",), write=save_with_pickle)[0]
    assert result.status == "failed" and "the format holds pickles (sample.npz)" in result.detail

    spec = LoaderSpec(name="whole", summary="s", factory="bad_loader:load_h5_whole", extensions=(".whole.h5",))
    from bad_loader import save_h5

    results = _by_check(run_loader_checks(spec, write=save_h5))
    assert results["reads_a_valid_dataset"].status == "passed"
    assert "ended in MemoryError: compare declared sizes with" in results["refuses_a_lying_header"].detail


def test_loader_of_an_unknown_format_asks_for_a_writer(plugin_dir):
    plugin_dir("bad_loader", BAD_LOADER)
    spec = LoaderSpec(name="csv", summary="s", factory="bad_loader:load_csv", extensions=(".csv",))
    result = run_loader_checks(spec, checks=("reads_a_valid_dataset",))[0]
    assert result.status == "failed" and "give the checks a writer" in result.detail


def test_core_stitchers_recover_the_object(core_host):
    for name in ("probe_weighted", "mean"):
        results = check_stitcher(name, registry=core_host.registry())
        assert all(r.status == "passed" for r in results), [str(r) for r in results]


@pytest.mark.parametrize(
    "factory, words",
    [
        ("off_by_one", "relative error"),
        ("no_weights", "returns (object (H, W), weights (H, W))"),
        ("rounds_positions", "sub-pixel positions: stitching the true patches gives a relative error"),
        ("truncates_positions", "sub-pixel positions: stitching the true patches gives a relative error"),
        ("misses_a_corner", "weights are zero on part of the scanned region"),
    ],
)
def test_stitcher_that_does_not_recover_the_object_is_caught(plugin_dir, factory, words):
    plugin_dir("bad_stitcher", BAD_STITCHER)
    spec = StitcherSpec(name=factory, summary="s", factory=f"bad_stitcher:{factory}")
    result = run_stitcher_checks(spec, checks=("stitching_true_patches_recovers_object",))[0]
    assert result.status == "failed" and words in result.detail


# --- the pytest classes, used as a plugin author uses them -----------------------------------------------


def _dummy_registry():
    host = PluginHost(load="")
    host.register(dummies, "ptycho-dummies", distribution="ptycho-dummies")
    return host.registry()


class TestDummyIntensityConformance(GeneratorConformance):
    generator = "dummy_intensity"
    plugin_module = DUMMIES
    options = {"rate": 0.5}

    @classmethod
    def registry(cls):
        return _dummy_registry()


class TestNpzLoaderConformance(LoaderConformance):
    loader = "npz"

    @classmethod
    def registry(cls):
        return PluginHost(load="").registry()


class TestMeanStitcherConformance(StitcherConformance):
    stitcher = "mean"
    options = {"crop": 6}

    @classmethod
    def registry(cls):
        return PluginHost(load="").registry()


def test_the_plugin_guide_documents_every_exported_check_function_and_loader_check():
    from pathlib import Path

    import ptycho_core.testing as kit

    guide = (Path(__file__).resolve().parents[1] / "docs" / "writing-a-plugin.md").read_text()
    exported = [n for n in dir(kit) if n.startswith("check_") or (n.startswith("run_") and n.endswith("_checks"))]
    assert {"check_loader", "run_loader_checks", "check_stitcher", "run_stitcher_checks"} <= set(exported)
    for name in exported:
        assert f"`{name}" in guide, name
    for check in (*conformance.LOADER_CHECKS, *conformance.STITCHER_CHECKS):
        assert f"`{check}`" in guide, check
