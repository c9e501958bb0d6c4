"""The child process of `ptycho compare` (DESIGN section 9): one (generator, seed) per process.

The parent starts `main(job, events)` with `multiprocessing.get_context("spawn")`, passing only
plain data: the job dict (factory string, spec record, options, TrainConfig dict, paths, hash)
and the sending end of a pipe for progress events (JSON). The child

1. sends `{"type": "started"}`, redirects its file descriptors 1 and 2 to `run.log`;
2. loads the split and groups the parent wrote to `DIR/data/` (`load_prepared`);
3. builds `factory(**options)`, fits it (`pipeline.fit_generator`, which writes `model/`);
4. predicts the test groups (one warm-up batch, then timed) and keeps channel 0 (the anchors);
5. writes `history.json`, `recon.npz`, `run.json` and, last, `DONE` into a temporary folder
   `runs/.<name>.partial/`, then renames it to `runs/<name>/` (atomic publication).

Any failure writes `error.json` (the reason) into the temporary folder and exits with code 1; the
parent turns it, a dead child, a timeout or a kill into a failed row. Nothing here imports a
framework at module level: the generator's factory does, inside the child.

The same module holds the data exchange format between parent and child (`save_prepared`,
`load_prepared`): plain `.npz` files (`allow_pickle=False`) and one JSON file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import shutil
import sys
import time
import traceback
from pathlib import Path

#: File names inside a run folder and the data folder.
DONE = "DONE"
RUN_JSON = "run.json"
ERROR_JSON = "error.json"
HISTORY_JSON = "history.json"
RECON_NPZ = "recon.npz"
RUN_LOG = "run.log"
MODEL_DIR = "model"
PREPARED_JSON = "prepared.json"

#: Progress events are forwarded at most this often (seconds), except epoch ends.
PROGRESS_INTERVAL = 0.5

#: Batch of test groups used to time inference.
INFERENCE_BATCH = 64


class RunFailed(Exception):
    """A run that ended without a usable result (the message is the row's reason)."""


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
    _redirect_output(partial / RUN_LOG)
    print(f"ptycho compare worker: run {job['name']} (generator {job['spec']['name']}), pid {os.getpid()}", flush=True)
    try:
        summary = execute(job, emit)
    except BaseException as exc:  # the row must say why, whatever happened
        reason = failure_reason(exc)
        traceback.print_exc()
        _write_json(partial / ERROR_JSON, {"reason": reason, "traceback": traceback.format_exc()})
        emit({"type": "failed", "reason": reason})
        _flush()
        if isinstance(exc, KeyboardInterrupt):
            os._exit(130)
        sys.exit(1)
    emit({"type": "finished", "summary": summary})
    _flush()


def failure_reason(exc: BaseException) -> str:
    """One line saying why a run failed."""
    if isinstance(exc, MemoryError):
        return f"out of memory (MemoryError{': ' + str(exc) if str(exc) else ''})"
    if isinstance(exc, RunFailed):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def exit_reason(exitcode: int | None) -> str:
    """The reason for a child that died without reporting one (its `Process.exitcode`)."""
    if exitcode is None:
        return "did not finish"
    if exitcode < 0:
        import signal

        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if -exitcode == signal.SIGKILL:
            return f"killed by {name} (out of memory?)"
        return f"killed by {name}"
    return f"child process exited with code {exitcode}"


# --- the work ------------------------------------------------------------------------------------


def execute(job: dict, emit=None) -> dict:
    """Build, fit, predict and publish one run (no output redirection: callable in-process).

    Returns the run summary written to run.json. Raises on failure (the partial folder is left
    for the caller, holding whatever was written).
    """
    from ptycho_core import pipeline
    from ptycho_core.generator import TrainConfig
    from ptycho_core.registry import GeneratorSpec, Option, resolve_factory

    emit = emit or (lambda event: None)
    partial, final = Path(job["partial_dir"]), Path(job["run_dir"])
    partial.mkdir(parents=True, exist_ok=True)
    spec_dict = dict(job["spec"])
    spec_dict["options"] = {k: Option(**v) for k, v in spec_dict.get("options", {}).items()}
    spec_dict["requires"] = tuple(spec_dict.get("requires", ()))
    spec = GeneratorSpec(**spec_dict)
    threads = int(job.get("threads") or 0)
    _set_framework_threads(spec.framework, threads)
    if spec.kind != "learned":
        raise RunFailed(f"{spec.kind} generators are not supported by compare yet")
    config = TrainConfig.from_dict(job["train_config"])
    prepared = load_prepared(job["data_dir"], supervised=spec.supervised)

    resolve_factory(spec.factory)  # import the framework first: training time excludes imports
    started = time.time()
    t0 = time.perf_counter()
    generator, history = pipeline.fit_generator(
        spec, job["options"], prepared, config, partial / MODEL_DIR, _throttled(emit)
    )
    checkpoint = json.loads((partial / MODEL_DIR / pipeline.CONFIG_NAME).read_text())
    train_seconds = checkpoint.get("training_seconds") or time.perf_counter() - t0
    _write_json(partial / HISTORY_JSON, history.to_dict())
    if str(history.stopped).startswith("non-finite"):
        raise RunFailed(history.stopped)
    if not history.loss or not all(_finite(v) for v in history.loss):
        raise RunFailed("non-finite loss in the training history")

    import numpy as np

    emit({"type": "predicting"})
    patches, patterns_per_s = _predict_timed(generator, prepared)
    if not np.isfinite(patches).all():
        raise RunFailed("non-finite values in the predicted patches")
    _write_npz(partial / RECON_NPZ, patches=patches, positions=np.asarray(prepared.test.positions, np.float64))

    summary = {
        "name": job["name"],
        "hash": job["hash"],
        "status": "ok",
        "generator": spec.name,
        "distribution": spec.distribution,
        "version": spec.version,
        "framework": spec.framework,
        "factory": spec.factory,
        "options": job["options"],
        "train_config": config.to_dict(),
        "parameters": parameter_count(generator),
        "train_seconds": train_seconds,
        "epochs_run": len(history.loss),
        "stopped": history.stopped,
        "final_loss": history.loss[-1],
        "inference_patterns_per_s": patterns_per_s,
        "inference_batch": INFERENCE_BATCH,
        "test_patterns": int(patches.shape[0]),
        "peak_rss_mib": peak_rss_mib(),
        "peak_gpu_mib": peak_gpu_mib(),
        "hardware": hardware(threads),
        "started": started,
        "finished": time.time(),
        "meta": job.get("meta", {}),
    }
    _write_json(partial / RUN_JSON, summary)
    (partial / DONE).write_text(f"{job['hash']}\n")  # last: a folder without it is never trusted
    publish(partial, final)
    return summary


def publish(partial: Path, final: Path) -> None:
    """Atomically replace `final` by `partial` (rename; an older `final` is moved aside first)."""
    partial, final = Path(partial), Path(final)
    if final.exists():
        trash = final.with_name(f".{final.name}.old{os.getpid()}")
        os.replace(final, trash)
        os.replace(partial, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(partial, final)


def _predict_timed(generator, prepared) -> tuple:
    """Anchor patches (n, N, N) complex64 of the test groups and test patterns per second.

    One warm-up batch first, then all test groups timed in batches of INFERENCE_BATCH groups.
    """
    from ptycho_core import pipeline

    test, groups = prepared.test, prepared.test_groups
    warm = slice(0, min(INFERENCE_BATCH, groups.n_groups))
    pipeline.predict_groups(generator, test.diffraction[groups.indices[warm]], groups.offsets[warm], INFERENCE_BATCH)
    t0 = time.perf_counter()
    patches = pipeline.predict_anchors(generator, test, groups, INFERENCE_BATCH)
    seconds = time.perf_counter() - t0
    return patches, (patches.shape[0] / seconds if seconds > 0 else None)


# --- measurements --------------------------------------------------------------------------------


def parameter_count(generator) -> int | None:
    """Trainable parameters when the generator can tell (parameter_count(), Keras count_params())."""
    for attr in ("parameter_count", "num_parameters", "count_params"):
        fn = getattr(generator, attr, None)
        if callable(fn):
            try:
                return int(fn())
            except Exception:
                return None
    for attr in ("model", "network"):
        model = getattr(generator, attr, None)
        if model is not None and callable(getattr(model, "count_params", None)):
            try:
                return int(model.count_params())
            except Exception:
                return None
    return None


def peak_rss_mib() -> float | None:
    """This process's peak resident memory in MiB (resource.getrusage)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024


def peak_gpu_mib() -> float | None:
    """torch.cuda.max_memory_allocated in MiB when torch is loaded and used a GPU."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            return torch.cuda.max_memory_allocated() / 1024**2
    except Exception:
        return None
    return None


def hardware(threads: int = 0) -> dict:
    """What this child ran on: CPU count, platform, thread budget, GPU name if a framework has one."""
    info = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "threads": threads, "gpu": None}
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:
        pass
    tf = sys.modules.get("tensorflow")
    if info["gpu"] is None and tf is not None:
        try:
            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                info["gpu"] = details.get("device_name") or gpus[0].name
        except Exception:
            pass
    return info


# --- parent <-> child data exchange --------------------------------------------------------------


def save_prepared(prepared, directory) -> dict:
    """Write a `pipeline.Prepared` to `directory` (train/val/test .npz + prepared.json), atomically
    per file. Ground-truth patches go to separate files read only by supervised generators; the
    test object is not written (children never see test ground truth).

    Returns the JSON record (it includes a content hash of everything written: `hash`).
    """
    import hashlib

    import numpy as np

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    record: dict = {"gridsize": prepared.gridsize, "info": prepared.info, "sets": {}}
    flags: dict = {}
    for role in ("train", "val"):
        ts = getattr(prepared, role)
        arrays, scalars, gt = {}, {}, None
        for f in dataclasses.fields(ts):
            value = getattr(ts, f.name)
            if f.name == "gt_patches":
                gt = value
            elif isinstance(value, np.ndarray):
                arrays[f.name] = value
            elif value is not None:
                scalars[f.name] = value
        _write_npz(directory / f"{role}.npz", digest=digest, **arrays)
        # Ground-truth patches are derived from the object (already in the data fingerprint): they
        # stay out of the hash, so adding a supervised generator does not invalidate other runs.
        if gt is not None:
            _write_npz(directory / f"{role}_gt.npz", gt_patches=gt)
        else:
            (directory / f"{role}_gt.npz").unlink(missing_ok=True)
        record["sets"][role] = {"scalars": scalars}
        flags[role] = gt is not None
    test, groups = prepared.test, prepared.test_groups
    test_arrays = {"diffraction": test.diffraction, "positions": test.positions, "probe": test.probe}
    if test.mask is not None:
        test_arrays["mask"] = test.mask
    test_arrays.update(
        {"group_indices": groups.indices, "group_positions": groups.positions, "group_offsets": groups.offsets}
    )
    _write_npz(directory / "test.npz", digest=digest, **test_arrays)
    record["test_metadata"] = test.metadata
    digest.update(json.dumps(record, sort_keys=True, default=str).encode())
    record["hash"] = digest.hexdigest()
    record["ground_truth"] = flags
    _write_json(directory / PREPARED_JSON, record)
    return record


def load_prepared(directory, supervised: bool = False):
    """Read what `save_prepared` wrote back into a `pipeline.Prepared`.

    Ground-truth patches are loaded only when `supervised` (PINNs never see ground truth).
    """
    import numpy as np

    from ptycho_core.data import Dataset, Groups
    from ptycho_core.generator import TrainingSet
    from ptycho_core.pipeline import Prepared

    directory = Path(directory)
    record = json.loads((directory / PREPARED_JSON).read_text())
    sets = {}
    for role in ("train", "val"):
        with np.load(directory / f"{role}.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        gt = None
        if supervised and record["ground_truth"][role]:
            with np.load(directory / f"{role}_gt.npz", allow_pickle=False) as z:
                gt = z["gt_patches"]
        sets[role] = TrainingSet(**arrays, **record["sets"][role]["scalars"], gt_patches=gt)
    with np.load(directory / "test.npz", allow_pickle=False) as z:
        t = {k: z[k] for k in z.files}
    test = Dataset(
        diffraction=t["diffraction"],
        positions=t["positions"],
        probe=t["probe"],
        mask=t.get("mask"),
        metadata=record.get("test_metadata", {}),
    )
    groups = Groups(indices=t["group_indices"], positions=t["group_positions"], offsets=t["group_offsets"])
    return Prepared(
        train=sets["train"],
        val=sets["val"],
        test=test,
        test_groups=groups,
        gridsize=record["gridsize"],
        info=record["info"],
    )


# --- small helpers -------------------------------------------------------------------------------


#: Exit code of a child whose parent comparison has gone away.
PARENT_GONE = 75


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


def _set_framework_threads(framework: str, threads: int) -> None:
    """Apply the per-child thread budget where an environment variable is not enough (torch)."""
    if threads > 0 and framework == "torch":
        import torch

        torch.set_num_threads(threads)


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


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _json_safe(obj):
    """Replace NaN/inf floats by None so the JSON is strict."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _write_json(path: Path, payload) -> None:
    """Atomic, strict JSON (NaN -> null)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(_json_safe(payload), indent=2, sort_keys=True, default=_default) + "\n")
    os.replace(tmp, path)


def _default(obj):
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def _write_npz(path: Path, digest=None, **arrays) -> None:
    """Atomic np.savez (tmp + os.replace); optionally feed every array into a hashlib digest."""
    import numpy as np

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)
    if digest is not None:
        for key in sorted(arrays):
            a = np.ascontiguousarray(arrays[key])
            digest.update(f"{path.name}:{key}:{a.dtype.str}:{a.shape}".encode())
            digest.update(a.tobytes())
