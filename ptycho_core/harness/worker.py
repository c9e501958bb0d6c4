"""The child process of a comparison (docs/design.md#compare): one (generator, seed) per process.

The parent (`harness.supervise`) starts `main(job, events)` with
`multiprocessing.get_context("spawn")`, passing only plain data: the job dict (factory string,
spec record, options, TrainConfig dict, paths, hash) and the sending end of a pipe for progress
events (JSON). The child

1. sends `{"type": "started"}`, redirects its file descriptors 1 and 2 to `run.log`;
2. loads the split and groups the parent wrote to `DIR/data/` (`harness.prepared`);
3. builds `factory(**options)`, fits it (`pipeline.fit_generator`, which writes `model/`);
4. predicts one patch per test pattern (`predict_timed`: each pattern once for a per-pattern
   generator, every channel of every test group for a joint-channel one; one warm-up batch, then
   timed, `pipeline.PREDICT_BATCH` groups per call to `predict`); an iterative generator (`kind="iterative"`)
   instead reconstructs the test data's whole object (`pipeline.reconstruct_scan`), timed;
5. writes `history.json`, `recon.npz`, `run.json` and, last, `DONE` into a temporary folder
   `runs/.<name>.partial/`, then renames it to `runs/<name>/` (atomic publication).

Any failure writes `error.json` (the reason) into the temporary folder and exits with code 1; the
parent turns it, a dead child, a timeout or a kill into a failed row. A usage error (the factory
refusing an option value, before any training) exits with `BAD_USAGE` instead: the parent stops
the comparison and reports it as one line and exit code 2. Nothing here imports a
framework: the generator's factory does, inside the child; the environment the framework needs
was set by the parent from the spec's `child_env`.
"""

from __future__ import annotations

import math
import os
import platform
import signal
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from ptycho_core import agreement, data, pipeline, refine, rundir
from ptycho_core.errors import RunFailed, UsageError, failure_reason
from ptycho_core.generator import TrainConfig
from ptycho_core.harness.prepared import load_prepared
from ptycho_core.harness.refined import learned_costs
from ptycho_core.host import peak_rss_mib
from ptycho_core.metric_registry import finite
from ptycho_core.quality_time import checkpoints
from ptycho_core.registry import GeneratorSpec, Option, StitcherSpec, resolve_factory

#: Progress events are forwarded at most this often (seconds), except epoch ends.
PROGRESS_INTERVAL = 0.5


#: Exit code of a child whose parent comparison has gone away.
PARENT_GONE = 75

#: Exit code of a child whose job is bad usage (a factory refusing an option value): not a row.
BAD_USAGE = 64


# --- entry point ---------------------------------------------------------------------------------


def main(job: dict, events=None) -> None:
    """Child entry point: run one job, publish its folder, exit 1 on any failure.

    job: plain dict written by `ptycho_core.compare` (keys: name, spec, options, train_config,
    data_dir, partial_dir, run_dir, hash, threads, meta). events: None or an object whose
    `put(dict)` sends an event to the parent (the parent passes its end of a per-child pipe).
    """
    partial = Path(job["partial_dir"])
    partial.mkdir(parents=True, exist_ok=True)
    emit = _emitter(job["name"], events)
    emit({"type": "started", "pid": os.getpid()})
    _redirect_output(partial / rundir.RUN_LOG)
    print(f"ptycho compare worker: run {job['name']} (generator {job['spec']['name']}), pid {os.getpid()}", flush=True)
    try:
        summary = execute(job, emit)
    except BaseException as exc:  # the row must say why, whatever happened
        reason = failure_reason(exc)
        emit({"type": "failed", "reason": reason})  # first: on a full disk nothing below may be written
        try:
            traceback.print_exc()
            rundir.write_json(partial / rundir.ERROR_JSON, {"reason": reason, "traceback": traceback.format_exc()})
            _flush()
        except OSError:
            pass
        if isinstance(exc, KeyboardInterrupt):
            os._exit(130)
        sys.exit(BAD_USAGE if isinstance(exc, UsageError) else 1)
    emit({"type": "finished", "status": summary.status})
    _flush()


def exit_reason(exitcode: int | None) -> str:
    """The reason for a child that died without reporting one (its `Process.exitcode`)."""
    if exitcode is None:
        return "did not finish"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if -exitcode == signal.SIGKILL:
            return f"killed by {name} (out of memory?)"
        return f"killed by {name}"
    return f"child process exited with code {exitcode}"


# --- the work ------------------------------------------------------------------------------------


def execute(job: dict, emit=None) -> rundir.RunRecord:
    """Run one job (learned: build, fit, predict; iterative: reconstruct) and publish its folder
    (no output redirection: callable in-process).

    Returns the run's record (written to run.json). Raises on failure (the partial folder is left
    for the caller, holding whatever was written).
    """
    emit = emit or (lambda event: None)
    partial = Path(job["partial_dir"])
    partial.mkdir(parents=True, exist_ok=True)
    spec = spec_from_dict(job["spec"])
    config = TrainConfig.from_dict(job["train_config"])
    run = _refine if job.get("start") else _reconstruct if spec.kind == "iterative" else _fit_and_predict
    record = run(job, spec, config, partial, emit)
    rundir.write_json(partial / rundir.RUN_JSON, record.to_dict())
    rundir.write_text(partial / rundir.DONE, f"{job['hash']}\n")  # last: a folder without it is never trusted
    rundir.publish(partial, Path(job["run_dir"]))
    return record


def _fit_and_predict(job, spec, config, partial: Path, emit) -> rundir.RunRecord:
    """A learned generator: fit (writing model/ and history.json), predict the test groups (recon.npz)."""
    prepared = load_prepared(job["data_dir"], supervised=spec.supervised)
    resolve_factory(spec.factory)  # import the framework first: training time excludes imports
    started = time.time()
    generator, history = pipeline.fit_generator(
        spec, job["options"], prepared, config, partial / rundir.MODEL_DIR, _throttled(emit)
    )
    rundir.write_json(partial / rundir.HISTORY_JSON, history.to_dict())
    check_history(history)

    emit({"type": "predicting"})
    patches, seconds = predict_timed(generator, prepared)
    rundir.write_npz(
        partial / rundir.RECON_NPZ, patches=patches, positions=np.asarray(prepared.test.positions, np.float64)
    )
    record = _record(job, spec, config, generator, history, seconds, patches.shape[0])
    record.metrics["train_seconds"] = pipeline.training_numbers(history, partial / rundir.MODEL_DIR)["train_seconds"]
    record.started = started
    _write_probe_and_positions(partial, record, prepared.test, None, None, job.get("probe_source", "data"))
    if job.get("halfset"):
        emit({"type": "predicting", "status": "predicting the two half-sets"})
        record.metrics["halfset_seconds"] = _halves(
            partial, prepared.test, lambda idx: _predict_half(generator, prepared, idx)
        )
    return record


def _write_probe_and_positions(partial: Path, record, test, probe, positions, given: str) -> None:
    """probe.npy and positions.npy (object-grid frame) of a finished run, and their sources in
    its record: the refined ones when the run refined them, else the ones it was given."""
    record.probe_source = "refined" if probe is not None else given
    record.positions_source = "refined" if positions is not None else "data"
    rundir.write_npy(partial / rundir.PROBE_NPY, np.asarray(test.probe if probe is None else probe, np.complex64))
    grid = pipeline.object_grid(test)[1] if positions is None else positions
    rundir.write_npy(partial / rundir.POSITIONS_NPY, np.asarray(grid, np.float64))


def _reconstruct(job, spec, config, partial: Path, emit) -> rundir.RunRecord:
    """An iterative generator (docs/design.md#contracts): reconstruct the test data's whole object.

    recon.npz holds `object` (H, W) on the object grid, and `probe` / `refined_positions` when the
    engine refined them. The reconstruction time is the wall time of `reconstruct` (imports
    excluded); patterns per second count the test patterns reconstructed in it.
    """
    prepared = load_prepared(job["data_dir"])
    resolve_factory(spec.factory)  # import the framework first: reconstruction time excludes imports
    started = time.time()
    generator, estimate, seconds = pipeline.reconstruct_scan(
        spec, job["options"], prepared.test, config, _throttled(emit), snapshot_iterations=_checkpoints(job)
    )
    _write_estimate(partial, estimate)
    record = _record(job, spec, config, generator, estimate.history, seconds, prepared.test.n)
    record.started = started
    _write_probe_and_positions(
        partial, record, prepared.test, estimate.probe, estimate.positions, job.get("probe_source", "data")
    )
    if job.get("halfset"):
        emit({"type": "predicting", "status": "reconstructing the two half-sets"})

        def half_run(idx):
            _, est, _ = pipeline.reconstruct_scan(spec, job["options"], prepared.test, config, indices=idx)
            arrays = {"object": est.object, "probe": est.probe, "positions": est.positions}
            return {k: v for k, v in arrays.items() if v is not None}

        record.metrics["halfset_seconds"] = _halves(partial, prepared.test, half_run)
    return record


def _refine(job, spec, config, partial: Path, emit) -> rundir.RunRecord:
    """A refined run (`ptycho_core.refine`): stitch the learned run's patches, start the engine
    from that object and the data's probe. recon.npz as an iterative run's, plus `start` (the
    initial object). The record's reconstruction time is the learned inference (its run.json) plus
    this child's stitching, start and engine run; its training time is the learned run's."""
    start = job["start"]
    prepared = load_prepared(job["data_dir"])
    with np.load(start["recon"], allow_pickle=False) as z:
        patches = z["patches"]
    stitcher = spec_from_dict(start["stitcher"], StitcherSpec)
    resolve_factory(spec.factory)  # import the framework first: reconstruction time excludes imports
    resolve_factory(stitcher.factory)
    started = time.time()
    generator, estimate, times = refine.refine_patches(
        spec,
        job["options"],
        patches,
        prepared.test,
        config,
        stitcher,
        start["stitch_options"],
        progress=_throttled(emit),
        snapshot_iterations=_checkpoints(job),
    )
    _write_estimate(partial, estimate, start=times["start"])
    learned = learned_costs(start)
    inference = float(learned["inference_seconds"] or 0.0)
    start_seconds = inference + times["stitch_seconds"]
    seconds = start_seconds + times["refine_seconds"]
    record = _record(job, spec, config, generator, estimate.history, seconds, prepared.test.n)
    record.kind, record.started = "refined", started
    record.metrics.update(
        train_seconds=learned["train_seconds"], start_seconds=start_seconds, refine_seconds=times["refine_seconds"]
    )
    record.meta = {**record.meta, "learned_run": start["learned_run"], "refine": start["refine"]}
    _write_probe_and_positions(
        partial, record, prepared.test, estimate.probe, estimate.positions, job.get("probe_source", "data")
    )
    return record


def _checkpoints(job) -> tuple:
    """The iterations whose object an iterative or refined run keeps (`quality_time.checkpoints`)."""
    iterations = job["options"].get("iterations")
    return checkpoints(int(iterations)) if isinstance(iterations, int) else ()


def _write_estimate(partial: Path, estimate, **extra) -> None:
    """history.json and recon.npz of an iterative or refined run: `object`, `probe` and
    `refined_positions` when refined, `snapshot_iterations` / `snapshot_objects` (k, H, W) when
    the engine kept snapshots, and `extra` arrays."""
    rundir.write_json(partial / rundir.HISTORY_JSON, estimate.history.to_dict())
    if estimate.history.loss:  # empty: diverged at its first iteration, the initial guess is kept
        check_history(estimate.history)
    arrays = {"object": estimate.object, **extra}
    if estimate.probe is not None:
        arrays["probe"] = estimate.probe
    if estimate.positions is not None:
        arrays["refined_positions"] = estimate.positions
    if estimate.snapshots:
        keys = sorted(estimate.snapshots)
        arrays["snapshot_iterations"] = np.asarray(keys, dtype=np.int64)
        arrays["snapshot_objects"] = np.stack([estimate.snapshots[k] for k in keys])
    rundir.write_npz(partial / rundir.RECON_NPZ, **arrays)


def _predict_half(generator, prepared, idx) -> dict:
    """A learned generator's anchor patches of one half-set, its groups formed within the half."""
    half = prepared.test.subset(idx)
    groups = data.group(half.positions, prepared.gridsize, train=False)
    return {"patches": pipeline.predict_anchors(generator, half, groups, pipeline.PREDICT_BATCH)}


def _halves(partial: Path, test, run_half) -> float | None:
    """Reconstruct the two interleaved half-sets of the test patterns (`agreement.interleaved_halves`)
    with `run_half(indices) -> {name: array}` and write halves.npz (`a_index`, `b_index`, the
    arrays prefixed "a_" / "b_"). Returns the seconds both took; None (and nothing written, the
    reason in run.log) when a half failed: the half-set FRC is then missing, the row is not failed."""
    arrays, start = {}, time.perf_counter()
    try:
        for tag, idx in zip("ab", agreement.interleaved_halves(test.n)):
            arrays[f"{tag}_index"] = idx
            arrays.update({f"{tag}_{k}": v for k, v in run_half(idx).items()})
    except Exception as exc:  # the half-set FRC is an extra: its failure leaves the row standing
        print(f"half-set reconstruction failed: {failure_reason(exc)}", flush=True)
        traceback.print_exc()
        return None
    seconds = time.perf_counter() - start
    rundir.write_npz(partial / rundir.HALVES_NPZ, **arrays)
    return seconds


def _record(job, spec, config, generator, history, seconds, test_patterns) -> rundir.RunRecord:
    """The run.json of a successful run; `seconds` is the timed reconstruction of the test patterns."""
    device = device_info(generator)
    return rundir.RunRecord(
        name=job["name"],
        hash=job["hash"],
        generator=spec.name,
        distribution=spec.distribution,
        version=spec.version,
        framework=spec.framework,
        factory=spec.factory,
        kind=spec.kind,
        options=job["options"],
        train_config=config.to_dict(),
        stopped=history.stopped,
        inference_batch=pipeline.PREDICT_BATCH if spec.kind == "learned" else None,
        test_patterns=int(test_patterns),
        metrics={
            "parameters": parameter_count(generator),
            "reconstruct_seconds": seconds,
            "inference_patterns_per_s": test_patterns / seconds if seconds > 0 else None,
            "peak_rss_mib": peak_rss_mib(),
            "peak_gpu_mib": device.get("peak_gpu_mib"),
            **pipeline.training_numbers(history),
        },
        hardware=hardware(int(job.get("threads") or 0), device.get("gpu")),
        finished=time.time(),
        meta=job.get("meta", {}),
    )


def spec_from_dict(data: dict, cls=None):
    """A GeneratorSpec (or `cls`, e.g. StitcherSpec) back from `spec_as_dict` (the job's plain-data copy)."""
    data = dict(data)
    data["options"] = {k: Option(**v) for k, v in data.get("options", {}).items()}
    data["requires"] = tuple(data.get("requires", ()))
    if data.get("engine_settings") is not None:
        data["engine_settings"] = tuple(Option(**s) for s in data["engine_settings"])
    return (cls or GeneratorSpec)(**data)


def check_history(history) -> None:
    """Raise RunFailed for a run whose training ended on a non-finite loss."""
    if str(history.stopped).startswith("non-finite"):
        raise RunFailed(history.stopped)
    if not history.loss or not all(finite(v) for v in history.loss):
        raise RunFailed("non-finite loss in the training history")


def predict_timed(generator, prepared) -> tuple:
    """One patch (n, N, N) complex64 per test pattern and the seconds predicting them took.

    A per-pattern generator (the contract's `per_pattern`) predicts each test pattern once, packed
    C to a group; a joint-channel one predicts every test group and uses all its channels
    (`pipeline.predict_patterns`). One warm-up call on the first PREDICT_BATCH groups, then every
    group timed, in calls of PREDICT_BATCH groups (`pipeline.PREDICT_BATCH`): the same measurement
    for every generator.
    """
    test = prepared.test
    batch = pipeline.PREDICT_BATCH
    per_pattern = bool(getattr(generator, "per_pattern", False))
    groups = pipeline.prediction_groups(test, prepared.gridsize, per_pattern)
    warm = slice(0, min(batch, groups.n_groups))
    pipeline.predict_groups(generator, test.diffraction[groups.indices[warm]], groups.offsets[warm], batch)
    t0 = time.perf_counter()
    patches = pipeline.predict_patterns(generator, test, groups, per_pattern, batch)
    seconds = time.perf_counter() - t0
    if not np.isfinite(patches).all():
        raise RunFailed("non-finite values in the predicted patches")
    return patches, seconds


# --- measurements --------------------------------------------------------------------------------


def parameter_count(generator) -> int | None:
    """The generator's optional `parameter_count()` (trainable parameters), else None."""
    fn = getattr(generator, "parameter_count", None)
    if not callable(fn):
        return None
    try:
        return int(fn())
    except Exception:  # an optional measurement never fails a run
        return None


def device_info(generator) -> dict:
    """The generator's optional `device_info()`: {"gpu": name or None, "peak_gpu_mib": ...}."""
    fn = getattr(generator, "device_info", None)
    if not callable(fn):
        return {}
    try:
        info = fn()
    except Exception:  # an optional measurement never fails a run
        return {}
    return dict(info) if isinstance(info, dict) else {}


def hardware(threads: int = 0, gpu: str | None = None) -> dict:
    """What this child ran on: CPU count, platform, thread budget, the GPU the generator used."""
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "threads": threads, "gpu": gpu}


# --- small helpers -------------------------------------------------------------------------------


def _emitter(name: str, events):
    def emit(event: dict) -> None:
        if events is None:
            return
        try:
            events.put({"run": name, **event})
        except (BrokenPipeError, ConnectionResetError):
            os._exit(PARENT_GONE)  # the comparison was killed: do not train on as an orphan
        except Exception:  # progress is best effort; never fail a run over it
            pass

    return emit


def _throttled(emit):
    """A progress callback forwarding trainer events: epoch ends always, others every 0.5 s."""
    last = {"t": 0.0}

    def progress(event: dict) -> None:
        now = time.monotonic()
        end_of_epoch = event.get("step") is not None and event.get("step") == event.get("steps")
        if not end_of_epoch and now - last["t"] < PROGRESS_INTERVAL:
            return
        last["t"] = now
        clean = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in event.items()}
        emit(
            {"type": "progress", **{k: clean.get(k) for k in ("epoch", "epochs", "step", "steps", "loss", "val_loss")}}
        )

    return progress


def _redirect_output(log_path: Path) -> None:
    """Send this process's file descriptors 1 and 2 (and sys.stdout/err) to `log_path`."""
    _flush()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as the process
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
