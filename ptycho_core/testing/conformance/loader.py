"""The loader checks: a file written by the loader's own writer (or `save_npz`) reads back as a valid
Dataset holding what was written, and bad files raise a one-line PtychoError."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ptycho_core.errors import PtychoError
from ptycho_core.registry import LoaderSpec
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

LOADER_CHECKS = (
    "spec_is_complete",
    "registration_imports_no_framework",
    "reads_a_valid_dataset",
    "refuses_bad_files_with_one_line_errors",
)


def _default_writer(spec: LoaderSpec) -> Callable | None:
    if ".npz" in spec.extensions:
        from ptycho_core.io.npz import save_npz  # lazy: loaded when listing; the target imports numpy

        return save_npz
    return None


class LoaderChecks(Checker):
    """Loader checks. `write(dataset, path)` writes the loader's format (default: `save_npz` for
    `.npz` loaders); or give `sample`, an existing file the loader must read."""

    kind = "loader"
    checks = LOADER_CHECKS

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
        super().__init__(spec, heavy_modules, plugin_module, extra_path)
        self.write = write
        self.sample = sample
        self.registry = registry

    def load(self, path):
        self.require_available()
        return self.spec.load_factory()(str(path))

    def reads_a_valid_dataset(self) -> None:
        import numpy as np  # lazy: loaded when listing: no numpy at import time

        from ptycho_core.data import Dataset  # lazy: loaded when listing; the target imports numpy
        from ptycho_core.simulate import SimConfig, simulate  # lazy: loaded when listing; the target imports numpy

        self.require_available()
        original = None
        if self.sample is not None:
            path = Path(self.sample)
        else:
            write = self.write or _default_writer(self.spec)
            if write is None:
                raise fail(
                    f"loader {self.spec.name!r}: give the checks a writer for its format (write = ...) or a "
                    "sample file (sample = ...)"
                )
            original = simulate(SimConfig(**TINY_SIM))
            path = self._tmp() / ("sample" + self.spec.extensions[0])
            write(original, path)
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
        if self.registry is not None:
            chosen = self.registry.loader_for(path)
            if (chosen.name, chosen.distribution) != (self.spec.name, self.spec.distribution):
                raise fail(
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
                    raise fail(f"{what}: the error must be one line, got {str(exc)!r}") from None
                continue
            except Exception as exc:
                raise fail(
                    f"{what}: raised {type(exc).__name__} ({exc}); raise ptycho_core.errors.DataError so users see "
                    "one line instead of a traceback"
                ) from exc
            raise fail(f"{what} ({path.name}) was accepted")


def run_loader_checks(spec: LoaderSpec, checks: tuple[str, ...] = LOADER_CHECKS, **kwargs) -> list[CheckResult]:
    """Run loader checks on `spec` (keyword arguments go to `LoaderChecks`: write, sample, ...)."""
    return LoaderChecks(spec, **kwargs).run(checks)


def check_loader(name: str, registry=None, **kwargs) -> list[CheckResult]:
    """Find the installed loader `name` and run every check; raise ConformanceError if any fails."""
    registry = environment_registry() if registry is None else registry
    spec = find_spec("loader", name, registry)
    kwargs.setdefault("registry", registry)
    return raise_failures(f"loader {spec.qualified_name!r}", run_loader_checks(spec, **kwargs))
