"""The conformance kit: check that a plugin's generators, loaders and stitchers honour ptycho's
contracts (docs/design.md#dataset, #plugins, #contracts, #scoring), from the plugin's own test suite.

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
the loss; the same seed gives the same result. Iterative generators (`kind="iterative"`,
`check_iterative` / `IterativeConformance`): `reconstruct` returns the object on the scan's grid,
one loss per iteration, an object that explains the data far better than a flat one, the same
object for the same seed, and the core scores it. Loaders: a file written by the loader's own writer
(or `ptycho_core.io.npz.save_npz`) reads back as a valid Dataset and holds no pickle, ptycho picks
the loader for its extensions, bad files (a pickle among them) raise a one-line PtychoError, and a
file whose header declares 1 TiB per array (`lies`) is refused before anything is allocated. Stitchers: stitching the true patches recovers the object.

Data are tiny (`TINY_SIM`: N=16, a 48x48 object, 64 patterns; 3 epochs of 8-group batches) so each
check runs in seconds on a CPU. A generator whose framework is missing is skipped (pytest) or
reported as skipped, except under `CI=true`, where it fails.

Modules: `base` (budgets, results, the `Checker` base class), `spec`, `registration` (with
`probe`, the module a fresh interpreter runs), `generator`, `iterative`, `loader` (with `lies`, the
forged headers, and `pickles`, the pickle finder), `stitcher`, `suites` (the pytest classes).
"""

from ptycho_core.testing.conformance.base import (
    HEAVY_MODULES,
    STITCH_TOLERANCE,
    TINY_SIM,
    TINY_TRAIN,
    TOLERANCE,
    CheckResult,
    ConformanceError,
    Unavailable,
    find_spec,
)
from ptycho_core.testing.conformance.checker import Checker
from ptycho_core.testing.conformance.generator import (
    GENERATOR_CHECKS,
    GeneratorChecks,
    run_generator_checks,
    sample_inputs,
    tiny_data,
)
from ptycho_core.testing.conformance.iterative import (
    ITERATIVE_CHECKS,
    IterativeChecks,
    check_generator,
    check_iterative,
    run_iterative_checks,
    tiny_scan,
)
from ptycho_core.testing.conformance.loader import LOADER_CHECKS, LoaderChecks, check_loader, run_loader_checks
from ptycho_core.testing.conformance.registration import check_registration, registration_imports
from ptycho_core.testing.conformance.spec import check_spec
from ptycho_core.testing.conformance.stitcher import (
    STITCHER_CHECKS,
    StitcherChecks,
    check_stitcher,
    run_stitcher_checks,
)
from ptycho_core.testing.conformance.suites import (
    GeneratorConformance,
    IterativeConformance,
    LoaderConformance,
    StitcherConformance,
)

__all__ = [
    "GENERATOR_CHECKS",
    "HEAVY_MODULES",
    "ITERATIVE_CHECKS",
    "LOADER_CHECKS",
    "STITCHER_CHECKS",
    "STITCH_TOLERANCE",
    "TINY_SIM",
    "TINY_TRAIN",
    "TOLERANCE",
    "CheckResult",
    "Checker",
    "ConformanceError",
    "GeneratorChecks",
    "GeneratorConformance",
    "IterativeChecks",
    "IterativeConformance",
    "LoaderChecks",
    "LoaderConformance",
    "StitcherChecks",
    "StitcherConformance",
    "Unavailable",
    "check_generator",
    "check_iterative",
    "check_loader",
    "check_registration",
    "check_spec",
    "check_stitcher",
    "find_spec",
    "registration_imports",
    "run_generator_checks",
    "run_iterative_checks",
    "run_loader_checks",
    "run_stitcher_checks",
    "sample_inputs",
    "tiny_data",
    "tiny_scan",
]
