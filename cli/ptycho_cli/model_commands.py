"""`ptycho train` and `ptycho reconstruct`: one generator, in this process (or, for `train --nproc K`
and under torchrun, in K data-parallel processes)."""

from __future__ import annotations

import click

from ptycho_cli.options import data_file_options, parse_options, train_config_options
from ptycho_core.errors import UsageError

NPROC_HELP = (
    "Data-parallel processes on this machine (torch generators): runs this command under "
    "`python -m torch.distributed.run --standalone --nproc-per-node K` (DistributedDataParallel; "
    "--batch-size is per process)."
)


@click.command()
@click.option("--generator", "-g", "generator_name", required=True, help="Generator name (or dist:name).")
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False), help="Training dataset file.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Checkpoint directory.")
@click.option(
    "--gridsize", default=1, show_default=True, type=click.IntRange(1, 4), help="Patterns per group: gridsize**2."
)
@train_config_options
@click.option(
    "--option",
    "-o",
    "raw_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Generator option (see `ptycho describe NAME`); repeatable.",
)
@click.option("--nproc", default=1, show_default=True, type=click.IntRange(1), help=NPROC_HELP)
@data_file_options
@click.pass_obj
def train(state, generator_name, data_path, out_dir, gridsize, raw_options, nproc, loader, probe_file, **train_kwargs):
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
    config = spec.train_config(train_fields(train_kwargs))
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
    with training_progress() as display:
        progress = display.callback(spec.name) if writer else (lambda event: None)
        generator, history = pipeline.fit_generator(spec, options, prepared, config, out_dir, progress)
    if writer:
        rundir.write_json(f"{out_dir}/{rundir.HISTORY_JSON}", history.to_dict())
        _print_training_summary(spec.name, history, out_dir)


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
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False), help="Checkpoint directory.")
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False), help="Dataset to reconstruct.")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Output: .npz, or a Ptychodus product file (*product.h5) that the Ptychodus GUI opens.",
)
@click.option("--stitcher", default="probe_weighted", show_default=True, help="Stitcher name (ptycho list-stitchers).")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1), help="Prediction batch (groups).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@data_file_options
@click.pass_obj
def reconstruct(state, model_dir, data_path, out_path, stitcher, batch_size, as_json, loader, probe_file):
    """Predict every pattern with a trained model, stitch the object and write it.

    An .npz output holds `object` (H, W) complex64, `weights`, `positions` and `metrics_json`; a
    *product.h5 output is a Ptychodus product (object, probe, positions in metres, pixel size). With ground
    truth in the data the reconstruction is scored (DESIGN section 8); without, only the data-space error.
    """
    import json
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
    start = time.perf_counter()
    patches = pipeline.predict_anchors(generator, dataset, groups, batch_size)
    seconds = time.perf_counter() - start
    result = pipeline.stitch_and_score(patches, dataset, stitcher, registry)
    result.metrics["inference_patterns_per_s"] = dataset.n / seconds if seconds > 0 else float("nan")
    io.save_reconstruction(out_path, result, dataset, name=config["generator"])
    if as_json:
        click.echo(json.dumps(result.metrics, indent=2, default=float))
    else:
        click.echo(f"reconstructed {dataset.n} patterns with {config['generator']} in {seconds:.2f} s -> {out_path}")
        for key in ("amp_ssim", "phase_ssim", "amp_psnr", "phase_mae", "frc_amp_px", "data_error"):
            if key in result.metrics and result.metrics[key] is not None:
                click.echo(f"  {key:<12} {result.metrics[key]:.4g}")
