"""`Checker`, the base of the generator, loader and stitcher checkers: the checks every component
kind shares (spec, cheap registration), its temporary folder, and `run`."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from ptycho_core.testing.conformance.base import HEAVY_MODULES, CheckResult, ConformanceError, Unavailable, in_ci
from ptycho_core.testing.conformance.registration import check_registration
from ptycho_core.testing.conformance.spec import check_spec


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
        check_spec(self.spec, self.kind)

    def registration_imports_no_framework(self) -> None:
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
