"""`ptycho compare`: a thin shell over `ptycho_core.harness.run` (docs/design.md#compare): parse, run, render."""

from __future__ import annotations

import sys

import click

from ptycho_cli.options import data_file, data_file_options, setting_options, sim_help, train_config_options
from ptycho_cli.results_command import db_option
from ptycho_core import harness
from ptycho_core.harness import DEFAULT_OUT, SIMULATIONS, compare_settings


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
    help=sim_help(
        "A simulation setting on top of DEFAULT_SIM, e.g. --sim probe=disk --sim nphotons=1e4; repeatable. "
        "Implies simulated data."
    ),
)
@setting_options(compare_settings())
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Address of a running Dask scheduler (e.g. tcp://head:8786) for --executor dask; without it, a "
    "LocalCluster on this machine. --out must be on a filesystem every worker sees.",
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
    out_dir,
    raw_options,
    force,
    loader,
    probe_file,
    db=None,
    grid=None,
    title="ptycho compare",
    **settings,
):
    """Build the CompareRequest of compare's (or sweep's) settings, run it, render it, exit.

    `settings`: the declared compare settings (`compare_settings()`: gridsize, seeds, ...) and the
    training and engine options, by option name."""
    from ptycho_cli.progress import CompareDisplay, print_result

    if sim_settings:
        from ptycho_cli.sim_settings import sim_config

        simulate = sim_config(sim_settings, object=simulate)
    request = harness.CompareRequest.from_settings(
        generators,
        data=data_file(data, loader, probe_file),
        test_data=data_file(test_data, loader, probe_file),
        simulate=simulate,
        options=list(raw_options),
        grid=grid,
        out=out_dir,
        force=force,
        db=db,
        command_line=["ptycho", *sys.argv[1:]] if sys.argv and sys.argv[0].endswith("ptycho") else list(sys.argv),
        **settings,
    )
    display = CompareDisplay()
    with display:
        result = harness.run(request, display, host=state.host)
    print_result(result, display.console, title=title)
    click.get_current_context().exit(result.exit_code)
