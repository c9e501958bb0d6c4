"""`ptycho compare`: a thin shell over `ptycho_core.harness.run` (DESIGN section 9): parse, run, render."""

from __future__ import annotations

import sys

import click

from ptycho_cli.options import data_file, data_file_options, train_config_options
from ptycho_cli.results_command import db_option
from ptycho_core.harness.executors import EXECUTORS
from ptycho_core.harness.request import DEFAULT_GRIDSIZE, DEFAULT_OUT, DEFAULT_STITCHER, SIMULATIONS
from ptycho_core.refine import RECOMMENDED


@click.command()
@click.option(
    "--generators",
    "-g",
    default=None,
    metavar="A,B,...",
    help="Generators to compare (name or dist:name), comma-separated. Default: every available one.",
)
@click.option(
    "--data",
    type=click.Path(dir_okay=False),
    default=None,
    help="Training data file. Without --test-data the scan is split along x at the median position; "
    "patterns whose footprint comes within N/2 of the split line are dropped (guard band), "
    "so no training pattern sees test-region pixels.",
)
@click.option("--test-data", type=click.Path(dir_okay=False), default=None, help="Separate test data file.")
@click.option(
    "--simulate",
    type=click.Choice(SIMULATIONS),
    default=None,
    help="Simulated train and test objects (DEFAULT_SIM with this object). Default when no --data: lines.",
)
@click.option(
    "--sim",
    "sim_settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="A simulation setting on top of DEFAULT_SIM (see `ptycho simulate --help`), e.g. --sim probe=disk "
    "--sim nphotons=1e4; repeatable. Implies simulated data.",
)
@click.option(
    "--gridsize",
    default=DEFAULT_GRIDSIZE,
    show_default=True,
    type=click.IntRange(1, 4),
    help="Patterns per group: gridsize**2.",
)
@click.option(
    "--seeds",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Runs per generator (seeds SEED, SEED+1, ...); the table shows mean ± std.",
)
@click.option("--stitcher", default=DEFAULT_STITCHER, show_default=True, help="Stitcher for every model.")
@click.option(
    "--jobs",
    "-j",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Runs at once, each in its own process (threads per run = CPU cores / jobs). With --executor dask "
    "and no --scheduler: the worker processes of the LocalCluster (default: one per core).",
)
@click.option(
    "--executor",
    type=click.Choice(EXECUTORS),
    default="local",
    show_default=True,
    help="Where the runs run: local = spawned processes here; dask = one task per run on a Dask cluster.",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Address of a running Dask scheduler (e.g. tcp://head:8786) for --executor dask; without it, a "
    "LocalCluster on this machine. --out must be on a filesystem every worker sees.",
)
@click.option(
    "--timeout",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Hard limit: seconds per run (from its process's start) before the process is killed and the run "
    "counts as failed (0: no limit). The graceful training budget is --train-timeout.",
)
@train_config_options
@click.option(
    "--out",
    "out_dir",
    default=DEFAULT_OUT,
    show_default=True,
    type=click.Path(file_okay=False),
    help="Output folder (table, figures, report.html, runs/).",
)
@click.option(
    "--option",
    "-o",
    "raw_options",
    multiple=True,
    metavar="NAME.KEY=VALUE",
    help="A generator's (or the stitcher's) option, e.g. fno.width=16; repeatable.",
)
@click.option("--force", is_flag=True, help="Redo every run, even finished ones with the same inputs.")
@click.option(
    "--refine",
    default=None,
    metavar="ENGINE[:ITERATIONS]",
    help=f"Also refine every learned row: a row <row>+ENGINE, the iterative engine started from that row's "
    f"stitched object and probe (recommended: {RECOMMENDED}; the engine's options via -o ENGINE.KEY=VALUE). "
    "Its time is the learned inference plus the refinement; training is shown apart.",
)
@data_file_options
@db_option
@click.pass_obj
def compare(state, **settings):
    """Train every generator on the same data, split and budget; stitch, score and report.

    \b
    Each (generator, seed) runs in its own process; a failure is a row, not a crash.
    Finished runs with the same inputs are reused (--force redoes them).
    Each finished comparison is recorded in the results database (`ptycho results`).
    Training options left unset take each generator's own defaults (`ptycho describe NAME`).
    Exit code: 0 all runs succeeded, 1 some run failed, 2 bad usage or bad data.

    \b
    Examples:
      ptycho compare                                   every available generator, default data
      ptycho compare -g fno,stable_hybrid --epochs 10
      ptycho compare --refine rpie:20                  every generator, and each learned row + rPIE
      ptycho compare --data scan.npz -g pinn_tf --gridsize 2 -o pinn_tf.filter_scale=1
      ptycho compare -g fno,cnn --seeds 3 --executor dask --scheduler tcp://head:8786
    """
    run_comparison(state, **settings)


def run_comparison(
    state,
    *,
    generators,
    data,
    test_data,
    simulate,
    sim_settings,
    gridsize,
    seeds,
    stitcher,
    jobs,
    executor,
    scheduler,
    timeout,
    out_dir,
    raw_options,
    force,
    loader,
    probe_file,
    db=None,
    grid=None,
    refine=None,
    title="ptycho compare",
    **train_kwargs,
):
    """Build the CompareRequest of compare's (or sweep's) settings, run it, render it, exit."""
    from ptycho_cli.progress import CompareDisplay, print_result
    from ptycho_core import harness
    from ptycho_core.generator import train_fields

    if sim_settings:
        from ptycho_cli.sim_settings import sim_config

        simulate = sim_config(sim_settings, object_kind=simulate)
    request = harness.CompareRequest(
        generators=generators,
        data=data_file(data, loader, probe_file),
        test_data=data_file(test_data, loader, probe_file),
        simulate=simulate,
        gridsize=gridsize,
        train=train_fields(train_kwargs),
        seeds=seeds,
        stitcher=stitcher,
        options=list(raw_options),
        jobs=jobs,
        executor=executor,
        scheduler=scheduler,
        grid=grid,
        refine=refine,
        timeout=timeout,
        out=out_dir,
        force=force,
        db=db,
        command_line=["ptycho", *sys.argv[1:]] if sys.argv and sys.argv[0].endswith("ptycho") else list(sys.argv),
    )
    display = CompareDisplay()
    with display:
        result = harness.run(request, display, host=state.host)
    print_result(result, display.console, title=title)
    click.get_current_context().exit(result.exit_code)
