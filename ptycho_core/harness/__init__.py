"""The compare harness (docs/design.md#compare): every generator on the same footing.

One dataset, one split, one set of groups, one seed, one training budget, one stitcher, one
metric pipeline. The parent never imports torch or TensorFlow. Its files name their jobs:

    request.py     CompareRequest (what to compare) and CompareResult (what came out)
    plan.py        selection of generators, options, TrainConfig per generator, run hashes, resume
    source.py      the data: files, Dataset objects or a simulation; the split; staging to DIR/data/
    prepared.py    the data exchange format between the parent and its children
    sweep.py       option grids (`ptycho sweep`): one row per setting of a generator's options
    executors/     where runs run: local.py (spawned children here), dask.py (a Dask cluster);
                   runspec.py, a run as plain data
    supervise.py   spawned children (typed `Child` records), timeouts, failed runs
    worker.py      the child: build, fit, predict, publish runs/<name>/ atomically
    score.py       stitch and score a run; its typed `Row`
    provenance.py  versions, hardware, command line, budget
    events.py      what `run` tells its caller while it works (the CLI renders it)
    compare.py     `run(request, on_event) -> CompareResult`, the whole comparison on one screen

Spawned children import the main module of the parent: a script calling `run(...)` must guard
it with `if __name__ == "__main__":`, as for any multiprocessing program.
"""

from ptycho_core.harness import events
from ptycho_core.harness.compare import run
from ptycho_core.harness.executors import EXECUTORS
from ptycho_core.harness.request import (
    DEFAULT_GRIDSIZE,
    DEFAULT_OUT,
    DEFAULT_STITCHER,
    INTERRUPTED_EXIT,
    SIMULATIONS,
    CompareRequest,
    CompareResult,
    compare_settings,
)
from ptycho_core.harness.sweep import split_grid

#: The public API (the CLI uses only these names): `run`, its request and result, the settings'
#: defaults and choices, `compare_settings` (their declarations, for generated options), `events` (what `run` reports while it works) and `split_grid` (sweeps).
__all__ = [
    "DEFAULT_GRIDSIZE",
    "DEFAULT_OUT",
    "DEFAULT_STITCHER",
    "EXECUTORS",
    "INTERRUPTED_EXIT",
    "SIMULATIONS",
    "CompareRequest",
    "CompareResult",
    "compare_settings",
    "events",
    "run",
    "split_grid",
]
