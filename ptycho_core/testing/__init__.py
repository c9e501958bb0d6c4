"""Testing helpers for plugin authors and ptycho's own tests.

`conformance`: checks that a plugin's generators, loaders and stitchers honour ptycho's contracts
(`check_generator("name")`, or subclass `GeneratorConformance` / `IterativeConformance` in pytest). `dummies`: tiny numpy
generators for harness tests (import `ptycho_core.testing.dummies` explicitly).
"""

from ptycho_core.testing.conformance import (  # noqa: F401
    CheckResult,
    ConformanceError,
    GeneratorConformance,
    IterativeConformance,
    LoaderConformance,
    StitcherConformance,
    check_generator,
    check_iterative,
    check_loader,
    check_stitcher,
    run_generator_checks,
    run_iterative_checks,
    run_loader_checks,
    run_stitcher_checks,
    tiny_data,
)
