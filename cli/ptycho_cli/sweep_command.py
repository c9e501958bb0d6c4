"""`ptycho sweep`: a comparison over a grid of generator options (`ptycho_core.harness.sweep`).

It takes every option of `ptycho compare` (the same click parameters, so the two never drift
apart); `--option NAME.KEY=V1,V2,...` makes a grid axis, several multiply.
"""

from __future__ import annotations

import copy

import click

from ptycho_cli.compare_command import compare, run_comparison
from ptycho_core.errors import UsageError

DEFAULT_SWEEP_OUT = "ptycho-sweep"
OPTION_HELP = (
    "A generator option or a grid axis: NAME.KEY=VALUE, or NAME.KEY=V1,V2,... to sweep it (several axes "
    "multiply: every combination is one row). Repeatable; the stitcher's options take one value."
)


def _params() -> list[click.Parameter]:
    """compare's parameters, with the sweep's --option help and default output folder."""
    params = []
    for param in compare.params:
        param = copy.copy(param)
        if param.name == "raw_options":
            param.help = OPTION_HELP
        elif param.name == "out_dir":
            param.default = DEFAULT_SWEEP_OUT
        params.append(param)
    return params


@click.pass_obj
def _sweep(state, raw_options, **settings):
    from ptycho_core.harness import split_grid

    fixed, grid = split_grid(raw_options)
    if not grid:
        raise UsageError("ptycho sweep needs a grid: at least one --option NAME.KEY=V1,V2,... (e.g. fno.width=16,32)")
    run_comparison(state, raw_options=fixed, grid=grid, title="ptycho sweep", **settings)


sweep = click.Command(
    "sweep",
    callback=_sweep,
    params=_params(),
    short_help="Compare settings of generators over a grid of options.",
    help="""Run a grid of generator options as one comparison: one row per setting, named like
    fno[width=16], with mean ± std over --seeds as in `ptycho compare`.

    \b
    Every compare option applies (data, budget, --seeds, --jobs, --executor dask, resume, --force).
    Exit code: 0 all runs succeeded, 1 some run failed, 2 bad usage or bad data.

    \b
    Examples:
      ptycho sweep -g fno --option fno.width=16,32,64 --seeds 3
      ptycho sweep -g fno -o fno.width=16,32 -o fno.modes=8,12 --epochs 5 --executor dask
    """,
)
