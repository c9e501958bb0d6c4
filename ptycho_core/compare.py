"""`ptycho_core.compare.run(...)`: the comparison API with keyword arguments named as on the
command line (`ptycho compare --help`), over `ptycho_core.harness` (which holds the harness).

    from ptycho_core import compare

    if __name__ == "__main__":  # children are spawned: guard the script's entry point
        result = compare.run(["fno", "stable_hybrid"], epochs=10, seeds=2, out="cmp")
        print(result.rows)

Training options (`epochs`, `batch_size`, `lr`, `loss`, `seed`, `device`, `val_fraction`,
`patience`, `clip_norm`, `train_timeout`) and the torch engine's settings (`precision`, `compile`)
override each generator's plugin defaults; an engine setting a compared generator's engine does not
declare or accept is a UsageError before any work. `timeout` is the hard limit per run, after which
its process is killed. Every setting is declared once (`ptycho_core.settings.Setting`).
"""

from __future__ import annotations

from ptycho_core import harness
from ptycho_core.harness import events
from ptycho_core.harness.request import (
    DEFAULT_OUT,
    DEFAULT_STITCHER,
    INTERRUPTED_EXIT,
    SIMULATIONS,
    CompareRequest,
    CompareResult,
)

__all__ = [
    "DEFAULT_OUT",
    "DEFAULT_STITCHER",
    "INTERRUPTED_EXIT",
    "SIMULATIONS",
    "CompareRequest",
    "CompareResult",
    "run",
]


def run(generators=None, *, on_event=events.ignore, host=None, **settings) -> CompareResult:
    """Compare generators (names, "a,b" or None for every available one); see `CompareRequest`
    for the settings. `on_event` receives `ptycho_core.harness.events` while the comparison runs."""
    return harness.run(CompareRequest.from_settings(generators, **settings), on_event, host=host)
