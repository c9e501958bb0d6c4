"""The loader checks: a file written by the loader's own writer (or `save_npz`) reads back as a valid
Dataset holding what was written and holds no pickle; ptycho picks the loader for each of its
extensions; bad files (missing, empty, text, a pickle that would run code if loaded) raise a
one-line PtychoError; and a file whose header declares arrays far larger than it holds (built
from the written file: HDF5 and NPZ; other formats give `lying_sample`) is refused before any
allocation (`ptycho_core.limits.check_declared`)."""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

from ptycho_core.errors import PtychoError
from ptycho_core.registry import LoaderSpec
from ptycho_core.testing.conformance import lies
from ptycho_core.testing.conformance.base import (
    HEAVY_MODULES,
    TINY_SIM,
    CheckResult,
    environment_registry,
    fail,
    find_spec,
    raise_failures,
)
from ptycho_core.testing.conformance.checker import Checker
from ptycho_core.testing.conformance.pickles import pickle_files

LOADER_CHECKS = (
    "spec_is_complete",
    "registration_imports_no_framework",
    "reads_a_valid_dataset",
    "writes_no_pickle",
    "is_picked_for_its_extensions",
    "refuses_bad_files_with_one_line_errors",
    "refuses_a_lying_header",
)

#: Bytes the lying header makes the smallest per-pattern array declare (1 TiB): more than any
#: memory limit, so a loader that does not check declared sizes fails with MemoryError.
LIE_BYTES = 1 << 40


def _default_writer(spec: LoaderSpec) -> Callable | None:
    if ".npz" in spec.extensions:
        from ptycho_core.io.npz import save_npz  # lazy: loaded when listing; the target imports numpy

        return save_npz
    return None


class LoaderChecks(Checker):
    """Loader checks. `write(dataset, path)` writes the loader's format (default: `save_npz` for
    `.npz` loaders); or give `sample`, an existing file the loader must read. `lying_sample`: a
    file of the format whose header declares arrays far larger than memory (needed only when the
    format is neither HDF5 nor NPZ, which the checks forge from the written file)."""

    kind = "loader"
    checks = LOADER_CHECKS

    def __init__(
        self,
        spec: LoaderSpec,
        write: Callable | None = None,
        sample: str | os.PathLike | None = None,
        registry=None,
        lying_sample: str | os.PathLike | None = None,
        heavy_modules: tuple[str, ...] = HEAVY_MODULES,
        plugin_module: str | None = None,
        extra_path: tuple[str, ...] = (),
    ):
        super().__init__(spec, heavy_modules, plugin_module, extra_path)
        self.write = write
        self.sample = sample
        self.registry = registry
        self.lying_sample = lying_sample
        self._written: tuple[Path, object] | None = None

    def load(self, path):
        self.require_available()
        return self.spec.load_factory()(str(path))

    def written(self) -> tuple[Path, object]:
        """(a file of the loader's format in a folder of its own, the Dataset written or None for a sample)."""
        if self._written is not None:
            return self._written
        from ptycho_core.simulate import SimConfig, simulate  # lazy: loaded when listing; the target imports numpy

        if self.sample is not None:
            self._written = (Path(self.sample), None)
            return self._written
        write = self.write or _default_writer(self.spec)
        if write is None:
            raise fail(
                f"loader {self.spec.name!r}: give the checks a writer for its format (write = ...) or a "
                "sample file (sample = ...)"
            )
        original = simulate(SimConfig(**TINY_SIM))
        path = self._tmp("written") / ("sample" + self.spec.extensions[0])
        write(original, path)
        self._written = (path, original)
        return self._written

    def reads_a_valid_dataset(self) -> None:
        import numpy as np  # lazy: loaded when listing: no numpy at import time

        from ptycho_core.data import Dataset  # lazy: loaded when listing; the target imports numpy

        self.require_available()
        path, original = self.written()
        try:
            ds = self.load(path)
        except PtychoError as exc:
            raise fail(f"loading {path.name} failed: {exc}") from None
        if not isinstance(ds, Dataset):
            raise fail(f"the loader returned {type(ds).__name__}, expected ptycho_core.data.Dataset")
        try:
            ds.validate(source=str(path))
        except PtychoError as exc:
            raise fail(f"the loader returned an invalid Dataset: {exc}") from None
        if "source" not in ds.metadata:
            raise fail("the Dataset's metadata has no 'source' (the file it came from)")
        if original is not None:
            for key in ("diffraction", "positions", "probe", "object"):
                want, got = getattr(original, key), getattr(ds, key)
                if got is None and want is not None:
                    continue  # the format may not store ground truth
                if want is None or got.shape != want.shape or not np.allclose(got, want, rtol=1e-6, atol=0):
                    raise fail(f"'{key}' does not read back as written (shape {got.shape} vs {want.shape})")

    def writes_no_pickle(self) -> None:
        """Nothing in the written file (or the sample), nor beside it, needs unpickling."""
        self.require_available()
        path, original = self.written()
        folder = path.parent if original is not None else self._tmp("sample")
        if original is None:
            shutil.copy(path, folder / path.name)
        pickled = pickle_files(folder)
        if pickled:
            raise fail(f"the format holds pickles ({', '.join(pickled)}): store plain arrays (allow_pickle=False)")

    def is_picked_for_its_extensions(self) -> None:
        """`ptycho` (the given registry, else the environment's) picks this loader for every extension."""
        registry = self.registry if self.registry is not None else environment_registry()
        for ext in self.spec.extensions:
            name = "scan" + ext
            try:
                chosen = registry.loader_for(name)
            except PtychoError as exc:
                raise fail(f"ptycho picks no loader for {name}: {exc} (is the plugin installed?)") from None
            if (chosen.name, chosen.distribution) != (self.spec.name, self.spec.distribution):
                raise fail(
                    f"ptycho picks loader {chosen.qualified_name!r} for {name}, not {self.spec.qualified_name!r}: "
                    "another loader claims the same extension, or this one is not installed"
                )

    def refuses_a_lying_header(self) -> None:
        """A file declaring LIE_BYTES per array (chunked, compressed, tiny on disk) is a one-line
        PtychoError raised before anything is allocated, not a MemoryError or an allocation."""
        self.require_available()
        if self.lying_sample is not None:
            lying = Path(self.lying_sample)
        else:
            path, _ = self.written()
            lying = self._tmp("lying") / path.name
            if not lies.forge(path, lying, LIE_BYTES):
                raise fail(
                    f"the checks can forge a lying header in HDF5 and NPZ files only; give lying_sample = a "
                    f"{self.spec.extensions[0]} file whose header declares arrays of 1 TiB"
                )
        try:
            self.load(lying)
        except PtychoError as exc:
            if "\n" in str(exc).strip():
                raise fail(f"a lying header: the error must be one line, got {str(exc)!r}") from None
            return
        except MemoryError:
            raise fail(
                "a file whose header declares 1 TiB ended in MemoryError: compare declared sizes with "
                "ptycho_core.limits.check_declared(path, field, shape, dtype) before reading"
            ) from None
        except Exception as exc:
            raise fail(
                f"a lying header raised {type(exc).__name__} ({exc}); check declared sizes with "
                "ptycho_core.limits.check_declared before reading"
            ) from exc
        raise fail(f"a file whose header declares 1 TiB per array ({lying.name}) was accepted")

    def refuses_bad_files_with_one_line_errors(self) -> None:
        self.require_available()
        tmp = self._tmp()
        ext = self.spec.extensions[0]
        cases = {
            "a missing file": tmp / ("missing" + ext),
            "an empty file": tmp / ("empty" + ext),
            "a file of text": tmp / ("text" + ext),
            "a pickle": tmp / ("pickle" + ext),
        }
        cases["an empty file"].write_bytes(b"")
        cases["a file of text"].write_text("this is not a dataset\n")
        marker = tmp / "unpickled"
        _write_trap(cases["a pickle"], marker, npz=ext.lower().endswith(".npz"))
        for what, path in cases.items():
            try:
                self.load(path)
            except PtychoError as exc:
                _check_trap(marker)
                if "\n" in str(exc).strip():
                    raise fail(f"{what}: the error must be one line, got {str(exc)!r}") from None
                continue
            except Exception as exc:
                _check_trap(marker)
                raise fail(
                    f"{what}: raised {type(exc).__name__} ({exc}); raise ptycho_core.errors.DataError so users see "
                    "one line instead of a traceback"
                ) from exc
            _check_trap(marker)
            raise fail(f"{what} ({path.name}) was accepted")


def _check_trap(marker: Path) -> None:
    if marker.exists():
        raise fail("the loader unpickled a file (that ran code): never unpickle, np.load(..., allow_pickle=False)")


class _Trap:
    """Unpickling it creates the file `marker` (proof that a loader ran a pickle's code)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _write_trap(path: Path, marker: Path, npz: bool) -> None:
    """A pickle that creates `marker` when loaded: raw, or as an object array in an .npz."""
    if not npz:
        path.write_bytes(pickle.dumps(_Trap(marker)))
        return
    import numpy as np  # lazy: the conformance kit is loaded when listing; the target imports numpy

    trap = np.empty(1, dtype=object)
    trap[0] = _Trap(marker)
    with open(path, "wb") as fh:
        np.savez(fh, diffraction=trap, positions=trap, probe=trap, diff3d=trap, xcoords=trap)


def run_loader_checks(spec: LoaderSpec, checks: tuple[str, ...] = LOADER_CHECKS, **kwargs) -> list[CheckResult]:
    """Run loader checks on `spec` (keyword arguments go to `LoaderChecks`: write, sample, ...)."""
    return LoaderChecks(spec, **kwargs).run(checks)


def check_loader(name: str, registry=None, **kwargs) -> list[CheckResult]:
    """Find the installed loader `name` and run every check; raise ConformanceError if any fails."""
    registry = environment_registry() if registry is None else registry
    spec = find_spec("loader", name, registry)
    kwargs.setdefault("registry", registry)
    return raise_failures(f"loader {spec.qualified_name!r}", run_loader_checks(spec, **kwargs))
