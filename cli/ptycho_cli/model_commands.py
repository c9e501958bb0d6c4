"""`ptycho train` and `ptycho reconstruct`: one generator, in this process (or, for `train --nproc K`
and under torchrun, in K data-parallel processes)."""

from __future__ import annotations

from pathlib import Path

import click

from ptycho_cli.options import data_file_options, parse_options, setting_option, train_config_options
from ptycho_cli.results_command import db_option
from ptycho_core.errors import UsageError, failure_reason
from ptycho_core.generator import train_settings
from ptycho_core.harness import compare_settings
from ptycho_core.settings import Setting
from ptycho_core.torch.settings import SETTINGS as TORCH_SETTINGS

#: `ptycho reconstruct --batch-size`: groups per prediction pass.
BATCH_SETTING = Setting("int", 64, "Prediction batch (groups).", min=1, max=65536, name="batch_size")

NPROC_HELP = (
    "Data-parallel processes on this machine (torch generators): runs this command under "
    "`python -m torch.distributed.run --standalone --nproc-per-node K` (DistributedDataParallel; "
    "--batch-size is per process)."
)


def _declared(settings, name: str) -> Setting:
    """The declared setting called `name` among `settings`."""
    return next(s for s in settings if s.name == name)


def generator_options(help: str):
    """`--option/-o KEY=VALUE`, repeatable: a generator's options (typed against its spec)."""
    return click.option("--option", "-o", "raw_options", multiple=True, metavar="KEY=VALUE", help=help)


@click.command()
@click.option("--generator", "-g", "generator_name", required=True, help="Generator name (or dist:name).")
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False), help="Training dataset file.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Checkpoint directory.")
@setting_option(_declared(compare_settings(), "gridsize"), default=1)
@train_config_options
@generator_options("Generator option (see `ptycho describe NAME`); repeatable.")
@click.option("--nproc", default=1, show_default=True, type=click.IntRange(1), help=NPROC_HELP)
@data_file_options
@db_option
@click.pass_obj
def train(
    state, generator_name, data_path, out_dir, gridsize, raw_options, nproc, loader, probe_file, db, **train_kwargs
):
    """Train one generator on a dataset and save a checkpoint.

    Under torchrun (RANK, WORLD_SIZE, LOCAL_RANK set) a torch generator trains with
    DistributedDataParallel and rank 0 alone writes the checkpoint and history.

    \b
    Example:
      ptycho simulate --out lines.npz
      ptycho train --generator fno --data lines.npz --out fno-model --epochs 5
      ptycho reconstruct --model fno-model --data lines.npz --out recon.npz
      ptycho train --generator fno --data lines.npz --out fno-ddp --epochs 5 --nproc 2
    """
    import time

    from ptycho_cli.progress import training_progress
    from ptycho_core import io, parallel, pipeline, rundir
    from ptycho_core.generator import train_fields

    registry = state.registry()
    spec = registry.generator(generator_name)
    ranks = parallel.ranks()
    if (nproc > 1 or ranks is not None) and spec.framework != "torch":
        raise UsageError(
            f"data-parallel training (--nproc, torchrun) needs a torch generator; {spec.name} is {spec.framework}"
        )
    if nproc > 1 and ranks is None:
        click.get_current_context().exit(_launch_replicas(nproc))
    writer = parallel.is_writer()
    options = spec.resolve_options(parse_options(raw_options))
    config = spec.train_config(train_fields(train_kwargs, TORCH_SETTINGS))
    dataset = io.load_dataset(data_path, registry, loader=loader, probe=probe_file)
    pipeline.check_usable(spec, dataset.has_ground_truth)
    prepared = pipeline.prepare(dataset, None, gridsize, config.seed, config.val_fraction, spec.supervised)
    say = click.echo if writer else (lambda *args, **kwargs: None)
    say(
        f"training {spec.name} ({spec.distribution} {spec.version}) on {dataset.n} patterns of "
        f"{dataset.patch_size}x{dataset.patch_size}: {prepared.info['train_groups']} train / "
        f"{prepared.info['val_groups']} val groups, gridsize {gridsize}"
        + (f", {ranks.world_size} data-parallel processes" if ranks else ""),
        err=True,
    )
    run = {
        "options": options,
        "train_config": config.to_dict(),
        "data_fingerprint": dataset.fingerprint(),
        "data_description": f"{data_path} ({dataset.n} patterns)",
        "split": {k: v for k, v in prepared.info.items() if k != "grouping"},
        "gridsize": gridsize,
        "seed": config.seed,
        "folder": str(Path(out_dir).resolve()),
    }
    record = (lambda **fields: _record(db, "train", spec=spec, **run, **fields)) if writer else (lambda **fields: None)
    started = time.time()
    try:
        with training_progress() as display:
            progress = display.callback(spec.name) if writer else (lambda event: None)
            generator, history = pipeline.fit_generator(spec, options, prepared, config, out_dir, progress)
    except Exception as exc:
        record(started=started, status="failed", reason=failure_reason(exc))
        raise
    if writer:
        rundir.write_json(f"{out_dir}/{rundir.HISTORY_JSON}", history.to_dict())
        _print_training_summary(spec.name, history, out_dir)
    count = getattr(generator, "parameter_count", None)
    numbers = {"parameters": count() if callable(count) else None, **pipeline.training_numbers(history, out_dir)}
    record(started=started, metrics=numbers)


def _record(db, command: str, quiet: bool = False, **fields) -> None:
    """Record a finished run in the results database and say where on stdout (unless quiet);
    an error there is a warning on stderr."""
    from ptycho_core.results import entries, record_safely

    line = record_safely(lambda: entries.lone_run(command, **fields), db, warn=lambda t: click.echo(t, err=True))
    if line and not quiet:
        click.echo(line)


def _launch_replicas(nproc: int) -> int:
    """Run this very command line in `nproc` torchrun processes; their exit code."""
    import os
    import subprocess
    import sys

    from ptycho_core import parallel

    args = sys.argv[1:]
    if parallel.NPROC_OPTION not in args and not any(a.startswith(parallel.NPROC_OPTION + "=") for a in args):
        raise UsageError("--nproc launches the command line it is on: use it from the shell (or run torchrun yourself)")
    env = dict(os.environ)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    env.setdefault("OMP_NUM_THREADS", str(max(1, cores // nproc)))
    return subprocess.run(parallel.launch_command(nproc, parallel.without_nproc(args)), env=env).returncode


def _print_training_summary(name, history, out_dir):
    epochs = len(history.loss)
    seconds = sum(history.seconds)
    finite = [v for v in history.val_loss if isinstance(v, (int, float))]
    best_val = f"{min(finite):.4g}" if finite else "n/a"
    last = f"{history.loss[-1]:.4g}" if history.loss else "n/a"
    click.echo(f"{name}: {epochs} epochs in {seconds:.1f} s, final loss {last}, best val loss {best_val}")
    if history.stopped:
        click.echo(f"{name}: stopped early: {history.stopped}")
    click.echo(f"checkpoint written to {out_dir}")


@click.command()
@click.option("--model", "model_dir", type=click.Path(file_okay=False), help="Checkpoint of a trained generator.")
@click.option(
    "--generator", "-g", "generator_name", help="An iterative generator (e.g. lsqml): reconstructs without a model."
)
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False), help="Dataset to reconstruct.")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Output: .npz, or a Ptychodus product file (*product.h5) that the Ptychodus GUI opens.",
)
@click.option("--stitcher", default="probe_weighted", show_default=True, help="Stitcher name (ptycho list-stitchers).")
@setting_option(BATCH_SETTING)
@generator_options("Option of the iterative generator (see `ptycho describe NAME`); repeatable.")
@setting_option(_declared(train_settings(), "device"))
@setting_option(_declared(train_settings(), "seed"), help="Seed of an iterative generator.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@data_file_options
@db_option
@click.pass_obj
def reconstruct(state, model_dir, generator_name, raw_options, device, seed, **kwargs):
    """Reconstruct a dataset's object and write it: predict every pattern with a trained model
    (--model) and stitch, or run an iterative generator (--generator, e.g. lsqml) on the data.

    An .npz output holds `object` (H, W) complex64, `weights`, `positions` and `metrics_json`; a
    *product.h5 output is a Ptychodus product (object, probe, positions in metres, pixel size). With ground
    truth in the data the reconstruction is scored (docs/design.md#scoring); without, only the data-space error.

    \b
    Example:
      ptycho simulate --out lines.npz
      ptycho reconstruct --generator lsqml --data lines.npz --out recon.npz
    """
    if (model_dir is None) == (generator_name is None):
        raise UsageError("give either --model DIR (a trained generator) or --generator NAME (an iterative one)")
    if generator_name is not None:
        _reconstruct_iterative(state, generator_name, raw_options, device, seed, **kwargs)
        return
    if raw_options:
        raise UsageError("--option applies to --generator; a trained model keeps the options it was trained with")
    _reconstruct_with_model(state, model_dir, **kwargs)


def _reconstruct_with_model(
    state, model_dir, data_path, out_path, stitcher, batch_size, as_json, loader, probe_file, db
):
    import time

    from ptycho_core import data, io, pipeline

    registry = state.registry()
    registry.stitcher(stitcher)  # unknown stitcher: fail before any work
    generator, config = pipeline.load_generator(model_dir, registry=registry)
    dataset = io.load_dataset(data_path, registry, loader=loader, probe=probe_file)
    if dataset.patch_size != config["patch_size"]:
        raise click.UsageError(
            f"{data_path}: patterns are {dataset.patch_size}x{dataset.patch_size}, the model expects "
            f"{config['patch_size']}x{config['patch_size']}"
        )
    groups = data.group(dataset.positions, config["gridsize"], train=False)
    started = time.time()
    start = time.perf_counter()
    patches = pipeline.predict_anchors(generator, dataset, groups, batch_size)
    seconds = time.perf_counter() - start
    result = pipeline.stitch_and_score(patches, dataset, stitcher, registry)
    run = {**_checkpoint_fields(config), "generator": config["generator"], "started": started}
    _write_and_print(result, dataset, seconds, run, data_path, out_path, as_json, db)


def _reconstruct_iterative(
    state,
    generator_name,
    raw_options,
    device,
    seed,
    data_path,
    out_path,
    stitcher,
    batch_size,
    as_json,
    loader,
    probe_file,
    db,
):
    import time

    from ptycho_cli.progress import training_progress
    from ptycho_core import io, pipeline
    from ptycho_core.generator import TrainConfig

    registry = state.registry()
    spec = registry.generator(generator_name)
    pipeline.check_iterative(spec)
    options = spec.resolve_options(parse_options(raw_options))
    dataset = io.load_dataset(data_path, registry, loader=loader, probe=probe_file)
    click.echo(f"reconstructing {dataset.n} patterns with {spec.name} ({spec.distribution} {spec.version})", err=True)
    started = time.time()
    with training_progress() as display:
        _, estimate, seconds = pipeline.reconstruct_scan(
            spec, options, dataset, TrainConfig(seed=seed, device=device), display.callback(spec.name)
        )
    result = pipeline.score_whole_object(estimate.object, dataset)
    run = {"spec": spec, "options": options, "seed": seed, "started": started}
    _write_and_print(result, dataset, seconds, run, data_path, out_path, as_json, db)


def _write_and_print(result, dataset, seconds, run, data_path, out_path, as_json, db):
    """Write the reconstruction, record it in the results database (`run`: its known fields) and print."""
    import json

    from ptycho_core import io

    name = run["spec"].name if "spec" in run else run["generator"]

    result.metrics["inference_patterns_per_s"] = dataset.n / seconds if seconds > 0 else float("nan")
    io.save_reconstruction(out_path, result, dataset, name=name)
    where = {
        "data_fingerprint": dataset.fingerprint(),
        "data_description": f"{data_path} ({dataset.n} patterns)",
        "folder": str(Path(out_path).resolve()),
    }
    _record(db, "reconstruct", as_json, metrics=result.metrics, **run, **where)
    if as_json:
        click.echo(json.dumps(result.metrics, indent=2, default=float))
    else:
        click.echo(f"reconstructed {dataset.n} patterns with {name} in {seconds:.2f} s -> {out_path}")
        from ptycho_core import metric_registry

        for m in metric_registry.select(metric_registry.SCORED, terminal=True):
            if metric_registry.finite(result.metrics.get(m.key)):
                click.echo(f"  {m.key:<16} {m.format(result.metrics[m.key])}")


def _checkpoint_fields(config: dict) -> dict:
    """The results-database fields a checkpoint's config.json tells."""
    plugin = config.get("plugin") or {}
    train_config = config.get("train_config") or {}
    return {
        "plugin": plugin.get("distribution"),
        "plugin_version": plugin.get("version"),
        "framework": config.get("framework"),
        "factory": config.get("factory"),
        "options": config.get("options"),
        "train_config": train_config,
        "gridsize": config.get("gridsize"),
        "seed": train_config.get("seed"),
    }
