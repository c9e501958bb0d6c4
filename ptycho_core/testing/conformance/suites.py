"""The pytest classes: subclass one in a plugin's test suite to get one test per check.

    class TestMynet(GeneratorConformance):
        generator = "mynet"
        options = {"width": 8}

Each class builds one checker in `setup_class` from its class attributes (the checker's keyword
arguments) and closes it in `teardown_class`; its `test_<check>` methods are generated from the
checker's list of checks.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ptycho_core.testing.conformance.base import (
    HEAVY_MODULES,
    STITCH_TOLERANCE,
    TOLERANCE,
    ConformanceError,
    Unavailable,
    environment_registry,
    find_spec,
    in_ci,
)
from ptycho_core.testing.conformance.checker import Checker
from ptycho_core.testing.conformance.generator import GeneratorChecks
from ptycho_core.testing.conformance.iterative import IterativeChecks
from ptycho_core.testing.conformance.loader import LoaderChecks
from ptycho_core.testing.conformance.stitcher import StitcherChecks


class _Conformance:
    """Shared machinery: the component's name is the class attribute named after `checker.kind`;
    the attributes listed in `settings` are passed to the checker."""

    checker: type[Checker] = Checker
    settings: tuple[str, ...] = ()
    plugin_module: str | None = None
    heavy_modules: tuple[str, ...] = HEAVY_MODULES
    _checker: Any = None

    @classmethod
    def registry(cls):
        """Where the component is looked up: plugins discovered as the `ptycho` command does.

        Override (a classmethod) to check a plugin registered in-process instead.
        """
        return environment_registry()

    @classmethod
    def _setting(cls, name: str):
        value = inspect.getattr_static(cls, name, None)
        return value.__func__ if isinstance(value, staticmethod) else getattr(cls, name)

    @classmethod
    def _make_checker(cls, spec, registry) -> Checker:
        kwargs = {name: cls._setting(name) for name in cls.settings}
        if "registry" in inspect.signature(cls.checker).parameters:
            kwargs["registry"] = registry
        return cls.checker(spec, heavy_modules=cls.heavy_modules, plugin_module=cls.plugin_module, **kwargs)

    @classmethod
    def setup_class(cls):
        kind = cls.checker.kind
        name = getattr(cls, kind, "")
        if not name:
            raise TypeError(f"{cls.__name__}: set the `{kind}` class attribute to the registered name")
        registry = cls.registry()
        cls._checker = cls._make_checker(find_spec(kind, name, registry), registry)

    @classmethod
    def teardown_class(cls):
        if cls._checker is not None:
            cls._checker.close()
            cls._checker = None

    def _check(self, name: str) -> None:
        try:
            getattr(type(self)._checker, name)()
        except Unavailable as exc:
            if in_ci():
                raise ConformanceError(f"{exc} (CI=true: unavailable components fail)") from None
            import pytest  # lazy: pytest only inside a test run

            pytest.skip(str(exc))


def _with_tests(cls: type[_Conformance]) -> type[_Conformance]:
    """Add one `test_<check>` method per check of `cls.checker`."""
    for check in cls.checker.checks:

        def test(self, check=check):
            self._check(check)

        test.__name__ = test.__qualname__ = f"test_{check}"
        setattr(cls, test.__name__, test)
    return cls


class _GeneratorSettings(_Conformance):
    """The class attributes both generator suites take: `generator` (the registered name), `options`
    (override spec defaults, e.g. small widths or fewer iterations), `config` (TrainConfig fields),
    `sim` (SimConfig fields), `tolerance`."""

    settings = ("options", "config", "sim", "tolerance")
    generator: str = ""
    options: dict = {}
    config: dict = {}
    sim: dict = {}
    tolerance: float = TOLERANCE


@_with_tests
class GeneratorConformance(_GeneratorSettings):
    """Subclass in pytest with `generator = "name"`; one test per generator check (learned
    generators; the short fits use `config`)."""

    checker = GeneratorChecks


@_with_tests
class IterativeConformance(_GeneratorSettings):
    """Subclass in pytest with `generator = "name"` for an iterative generator (`kind="iterative"`);
    one test per iterative check."""

    checker = IterativeChecks


@_with_tests
class LoaderConformance(_Conformance):
    """Subclass in pytest with `loader = "name"` and, unless it reads .npz, `write` (a staticmethod
    `write(dataset, path)` in the loader's format) or `sample` (a path to a file it must read);
    `lying_sample` (a file declaring arrays of about 1 TiB) only for a format neither HDF5 nor NPZ."""

    checker = LoaderChecks
    settings = ("write", "sample", "lying_sample")
    loader: str = ""
    write: Callable | None = None
    sample: str | None = None
    lying_sample: str | None = None


@_with_tests
class StitcherConformance(_Conformance):
    """Subclass in pytest with `stitcher = "name"` (optional `options`, `tolerance`)."""

    checker = StitcherChecks
    settings = ("options", "tolerance")
    stitcher: str = ""
    options: dict = {}
    tolerance: float = STITCH_TOLERANCE
