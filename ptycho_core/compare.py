"""The compare harness, parent side (DESIGN section 9): every generator on the same footing.

One dataset, one split, one set of groups, one seed, one training budget, one stitcher, one
metric pipeline. The parent never imports torch or TensorFlow: it loads the data, makes the
split and groups, writes them once to `DIR/data/`, and for each (generator, seed) starts a child
(`ptycho_core.worker`) with `multiprocessing.get_context("spawn")`, passing only plain data. The
child fits, predicts the test groups and publishes `DIR/runs/<name>[-seedK]/` atomically. The
parent then stitches channel 0 (the anchor) of every test group, scores it, and writes the table
(`metrics.csv`, `metrics.json`), the figures and `report.html` (`ptycho_core.report`).

Failures of one run (an exception, a dead child, a timeout, out of memory, a non-finite loss)
become a failed row with its reason; the others finish. `run(...)` returns a `CompareResult`
whose `exit_code` is 0 when every run succeeded and 1 otherwise; bad usage or bad data raise a
`PtychoError` before any child starts (the CLI's exit code 2).

Resume: a run folder is reused only when its DONE marker exists and the hash in its run.json
(over data fingerprint, split, groups, generator, options, versions, TrainConfig) matches.

Spawned children import the main module of the parent: a script calling `run(...)` must guard
it with `if __name__ == "__main__":`, as for any multiprocessing program.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptycho_core import __version__
from ptycho_core.errors import DataError, UsageError
from ptycho_core.registry import GeneratorSpec, Registry, spec_as_dict

#: Default training epochs of `ptycho compare` (the one constant; tuned so that every first-party
#: generator on DEFAULT_SIM finishes on a 2-core CPU in about ten minutes).
DEFAULT_EPOCHS = 20
DEFAULT_OUT = "ptycho-compare"
DEFAULT_STITCHER = "probe_weighted"
SIMULATIONS = ("lines", "grf")

DATA_DIR = "data"
RUNS_DIR = "runs"
METRICS_JSON = "metrics.json"
OBJECT_NPZ = "object.npz"

#: Seconds a child may take to start (interpreter + imports) before its --timeout clock starts anyway.
START_GRACE = 60.0
#: Environment variables that bound a child's thread pools.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)


@dataclass
class RunPlan:
    """One (generator, seed): its folder name, resolved options, TrainConfig and input hash."""

    name: str
    label: str
    spec: GeneratorSpec
    options: dict
    seed: int
    config: Any
    hash: str = ""
    reuse: bool = False
    reason: str = ""


@dataclass
class CompareResult:
    """What a comparison produced.

    rows: one per generator (mean and std over seeds when seeds > 1); runs: one per (generator,
    seed); skipped: generators not run, with the reason; exit_code: 0 all succeeded, 1 any failed.
    """

    out_dir: Path
    rows: list[dict]
    runs: list[dict]
    skipped: list[dict]
    report: Path
    exit_code: int
    provenance: dict = field(default_factory=dict)


# --- the API --------------------------------------------------------------------------------------


def run(
    generators: Sequence[str] | str | None = None,
    *,
    data=None,
    test_data=None,
    simulate=None,
    gridsize: int = 1,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = 16,
    lr: float = 1e-3,
    loss: str = "poisson",
    seed: int = 0,
    seeds: int = 1,
    device: str = "auto",
    precision: str = "fp32",
    val_fraction: float = 0.1,
    patience: int = 5,
    train_timeout: float = 0.0,
    stitcher: str = DEFAULT_STITCHER,
    options: Mapping[str, Mapping[str, Any]] | Iterable[str] | None = None,
    jobs: int = 1,
    timeout: float = 0.0,
    out: str | os.PathLike = DEFAULT_OUT,
    force: bool = False,
    host=None,
    console=None,
    command_line: Sequence[str] | None = None,
) -> CompareResult:
    """Compare generators on one dataset, one split and one training budget; write the report.

    generators: names (or `dist:name`), a comma-separated string, or None for every available
        generator (the unavailable ones are listed as skipped).
    data / test_data: dataset files (or `Dataset` objects). With `data` alone, the scan is split
        along x at the median with an N/2 guard band (`ptycho_core.data.spatial_split`).
    simulate: "lines", "grf" or a `SimConfig` (DEFAULT_SIM with that object); the default when no
        data is given is DEFAULT_SIM ("lines").
    epochs, batch_size (groups), lr, loss, seed, device, precision, val_fraction, patience: the
        TrainConfig shared by every generator; train_timeout: seconds of training per run after
        which the trainer stops gracefully and keeps its best weights (TrainConfig.timeout, 0: none);
        seeds: runs per generator (seed, seed+1, ...).
    options: {"NAME": {"key": value}} or ["NAME.key=value", ...]; values are parsed by the
        declared Option type and unknown keys are rejected before any work. NAME may also be the
        stitcher's name.
    jobs: children run at once (threads per child = CPU cores / jobs); timeout: seconds per run
        (0: none) after which the child is killed; out: output folder; force: redo every run.
    host: a `PluginHost` (default: from the environment); console: a rich Console.

    Raises UsageError / DataError (PtychoError) before any child starts.
    """
    from rich.console import Console

    from ptycho_core.generator import TrainConfig
    from ptycho_core.plugins import PluginHost

    started = time.time()
    console = console or Console()
    host = host or PluginHost.from_environment()
    registry = host.registry()

    # 1. usage, before touching any data
    if seeds < 1 or jobs < 1 or gridsize < 1 or timeout < 0 or train_timeout < 0:
        raise UsageError("--seeds, --jobs and --gridsize must be at least 1; timeouts may not be negative")
    specs, skipped, explicit = select_generators(registry, generators)
    stitcher_spec = registry.stitcher(stitcher)
    if not stitcher_spec.available:
        raise UsageError(f"stitcher {stitcher!r} is {stitcher_spec.status()}")
    option_values, stitch_options = resolve_compare_options(options, specs, registry, stitcher_spec)
    base_config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        loss=loss,
        seed=seed,
        device=device,
        precision=precision,
        val_fraction=val_fraction,
        patience=patience,
        timeout=train_timeout,
    )

    # 2. data, split, groups
    train_ds, test_ds, source = load_data(data, test_data, simulate, registry)
    if not train_ds.has_ground_truth:
        unsupervised = []
        for spec in specs:
            if not spec.supervised:
                unsupervised.append(spec)
            elif explicit:
                raise UsageError(
                    f"generator {spec.name!r} is supervised and the training data has no ground-truth object; "
                    "choose unsupervised generators or give data with an object"
                )
            else:
                skipped.append({"generator": spec.name, "reason": "supervised: the data has no ground truth"})
        specs = unsupervised
    if not specs:
        available = ", ".join(s.name for s in registry.generators() if s.available) or "none"
        raise UsageError(f"no generator to run (available: {available}); see `ptycho list-generators`")

    from ptycho_core import pipeline, worker

    supervised = any(s.supervised for s in specs)
    prepared = pipeline.prepare(train_ds, test_ds, gridsize, seed, val_fraction, supervised)
    out_dir = Path(out)
    data_dir = out_dir / DATA_DIR
    runs_dir = out_dir / RUNS_DIR
    runs_dir.mkdir(parents=True, exist_ok=True)
    record = worker.save_prepared(prepared, data_dir)
    fingerprint = _sha256(train_ds.fingerprint(), test_ds.fingerprint())
    split_info = {**source.get("split", {}), **{k: v for k, v in prepared.info.items() if k != "grouping"}}

    # 3. plans and resume decisions
    plans = make_plans(specs, option_values, base_config, seeds)
    for plan in plans:
        plan.hash = run_hash(plan, fingerprint, record["hash"], split_info)
        plan.reuse, plan.reason = resume_decision(runs_dir / plan.name, plan.hash, force)
    threads = max(1, usable_cpus() // jobs)
    _say(
        console,
        f"comparing {len(specs)} generator(s) x {seeds} seed(s) on {source['description']}: "
        f"{prepared.info['train_groups']} train / {prepared.info['val_groups']} val / "
        f"{prepared.info['test_groups']} test groups, gridsize {gridsize}, {epochs} epochs",
    )
    for item in skipped:
        _say(console, f"skipped {item['generator']}: {item['reason']}")
    for plan in plans:
        if plan.reuse:
            _say(console, f"{plan.name}: reusing {RUNS_DIR}/{plan.name} ({plan.reason})")
        elif plan.reason != "new":
            _say(console, f"{plan.name}: redoing ({plan.reason})")

    # 4. children
    todo = [p for p in plans if not p.reuse]
    outcomes = run_children(todo, data_dir, runs_dir, jobs=jobs, threads=threads, timeout=timeout, console=console)

    # 5. stitch, score, report
    runs, panels, histories, frc_curves = [], {}, {}, {}
    for plan in plans:
        row = _score_run(plan, runs_dir, outcomes.get(plan.name), test_ds, stitcher_spec, stitch_options, registry)
        runs.append(row.pop("_run"))
        if row.get("panel") is not None and plan.label not in panels:
            panels[plan.label] = row["panel"]
        if row.get("frc") and plan.label not in frc_curves:
            frc_curves[plan.label] = row["frc"]
        if row.get("history") is not None:
            histories[plan.name] = row["history"]

    from ptycho_core import report

    rows = report.summarise(runs, seeds)
    gpus = sorted({r["gpu"] for r in runs if r.get("gpu")})
    provenance = build_provenance(
        registry,
        specs,
        source,
        split_info,
        fingerprint,
        record["hash"],
        base_config,
        seeds,
        gridsize,
        stitcher_spec,
        stitch_options,
        jobs,
        threads,
        timeout,
        command_line,
        gpus,
        started,
    )
    truth = None
    if test_ds.object is not None:
        truth = {"object": test_ds.object, "positions": test_ds.positions}
    report_path = report.write_report(
        out_dir,
        rows=rows,
        runs=runs,
        skipped=skipped,
        provenance=provenance,
        truth=truth,
        panels=panels,
        frc=frc_curves,
        histories=histories,
        pixel_size_m=(test_ds.metadata or {}).get("pixel_size_m"),
        seeds=seeds,
    )
    report.print_table(rows, console, seeds=seeds)
    exit_code = 0 if all(r["status"] == "ok" for r in runs) else 1
    failed = [r for r in runs if r["status"] != "ok"]
    if failed:
        _say(console, f"{len(failed)} of {len(runs)} run(s) failed; see {RUNS_DIR}/<name>/run.log")
    _say(console, f"report: {report_path}")
    return CompareResult(
        out_dir=out_dir,
        rows=rows,
        runs=runs,
        skipped=skipped,
        report=report_path,
        exit_code=exit_code,
        provenance=provenance,
    )


# --- usage -----------------------------------------------------------------------------------------


def select_generators(registry: Registry, names) -> tuple[list[GeneratorSpec], list[dict], bool]:
    """(specs to run, skipped [{generator, reason}], explicit?) for `names` (list, "a,b" or None).

    Named generators that are unknown, unavailable or not learned raise UsageError listing what is
    installed; with no names every available learned generator runs and the rest are skipped.
    """
    if isinstance(names, str):
        names = [n for n in (part.strip() for part in names.split(",")) if n]
    names = list(names or [])
    installed = registry.generators()
    if not names:
        specs, skipped = [], []
        for spec in installed:
            label = _label(spec, registry)
            if not spec.available:
                skipped.append({"generator": label, "reason": spec.status()})
            elif spec.kind != "learned":
                skipped.append(
                    {"generator": label, "reason": f"{spec.kind} generators are not supported by compare yet"}
                )
            else:
                specs.append(spec)
        return specs, skipped, False
    specs = []
    for name in names:
        spec = registry.generator(name)
        if not spec.available:
            usable = ", ".join(_label(s, registry) for s in installed if s.available) or "none"
            raise UsageError(f"generator {name!r} is {spec.status()} (available: {usable})")
        if spec.kind != "learned":
            raise UsageError(f"generator {name!r} is {spec.kind}; compare runs learned generators only for now")
        if spec not in specs:
            specs.append(spec)
    return specs, [], True


def parse_option_args(items: Iterable[str]) -> dict[str, dict[str, str]]:
    """["NAME.key=value", ...] -> {NAME: {key: "value"}} (typing happens against the spec)."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        left, sep, value = str(item).partition("=")
        name, dot, key = left.strip().rpartition(".")
        if not sep or not dot or not name or not key:
            raise UsageError(f"--option expects NAME.KEY=VALUE (e.g. fno.width=16), got {item!r}")
        out.setdefault(name, {})[key] = value.strip()
    return out


def resolve_compare_options(options, specs, registry: Registry, stitcher_spec) -> tuple[dict, dict]:
    """Typed options per generator (by spec name) and for the stitcher, unknown keys rejected."""
    if options is None:
        given = {}
    elif isinstance(options, Mapping):
        given = {str(k): dict(v) for k, v in options.items()}
    else:
        given = parse_option_args(options)
    per_spec: dict[int, dict] = {}
    stitch_options: dict = {}
    for name, values in given.items():
        target = next((s for s in specs if name in (s.name, s.qualified_name)), None)
        if target is None and name in (stitcher_spec.name, stitcher_spec.qualified_name):
            unknown = sorted(set(values) - set(stitcher_spec.options))
            if unknown:
                known = ", ".join(sorted(stitcher_spec.options)) or "none"
                raise UsageError(
                    f"stitcher {stitcher_spec.name}: unknown option(s) {', '.join(unknown)} (known: {known})"
                )
            for key, value in values.items():
                opt = stitcher_spec.options[key]
                stitch_options[key] = opt.parse(value, f"{name}.{key}") if isinstance(value, str) else value
            continue
        if target is None:
            compared = ", ".join(s.name for s in specs)
            raise UsageError(f"--option {name}.*: {name!r} is not a generator being compared ({compared})")
        per_spec.setdefault(id(target), {}).update(values)
    resolved = {id(spec): spec.resolve_options(per_spec.get(id(spec), {})) for spec in specs}
    return resolved, stitch_options


def make_plans(specs, option_values: dict, base_config, seeds: int) -> list[RunPlan]:
    """One RunPlan per (generator, seed); folder names `<name>` or `<name>-seed<k>` (k = the seed)."""
    bare = [s.name for s in specs]
    plans = []
    for spec in specs:
        label = spec.name if bare.count(spec.name) == 1 else f"{spec.distribution}-{spec.name}"
        label = "".join(c if c.isalnum() or c in "-_." else "-" for c in label)
        for k in range(seeds):
            s = base_config.seed + k
            name = label if seeds == 1 else f"{label}-seed{s}"
            config = dataclasses.replace(base_config, seed=s)
            plans.append(
                RunPlan(name=name, label=label, spec=spec, options=option_values[id(spec)], seed=s, config=config)
            )
    return plans


# --- data ------------------------------------------------------------------------------------------


def load_data(data, test_data, simulate, registry: Registry):
    """(train Dataset, test Dataset, source record) for the compare options.

    source has "description" (one line), "kind" (simulate / files / split) and, for a spatial
    split, "split" (line, guard band, counts).
    """
    from ptycho_core import simulate as sim
    from ptycho_core.data import Dataset, spatial_split

    if test_data is not None and data is None:
        raise UsageError("--test-data needs --data (the training data)")
    if data is not None and simulate is not None:
        raise UsageError("give either --data or --simulate, not both")
    if data is None:
        cfg = simulate
        if cfg is None:
            cfg = sim.DEFAULT_SIM
        elif isinstance(cfg, str):
            if cfg not in SIMULATIONS:
                raise UsageError(f"--simulate must be one of {', '.join(SIMULATIONS)}, not {cfg!r}")
            cfg = sim.DEFAULT_SIM.replace(object=cfg)
        train, test = sim.simulate_pair(cfg)
        default = " (DEFAULT_SIM)" if cfg == sim.DEFAULT_SIM.replace(object=cfg.object) else ""
        desc = (
            f"simulated {cfg.object} data{default}: N={cfg.patch_size}, {cfg.object_size}x{cfg.object_size} "
            f"objects, step {cfg.step:g}, {train.n} train / {test.n} test patterns"
        )
        return train, test, {"kind": "simulate", "description": desc, "simulation": cfg.to_dict()}

    def read(item, role):
        if isinstance(item, Dataset):
            return item.validate(source=f"{role} dataset"), f"<{role} dataset>"
        from ptycho_core.io import load_dataset

        path = Path(item)
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        return load_dataset(str(path), registry), str(path)

    train, train_src = read(data, "training")
    if test_data is not None:
        test, test_src = read(test_data, "test")
        if test.patch_size != train.patch_size:
            raise DataError(
                f"{test_src}: patterns are {test.patch_size}x{test.patch_size}, the training data's "
                f"{train.patch_size}x{train.patch_size}"
            )
        desc = f"{train_src} ({train.n} patterns) / test {test_src} ({test.n} patterns)"
        return train, test, {"kind": "files", "description": desc, "data": train_src, "test_data": test_src}
    train_part, test_part, split = spatial_split(train)
    desc = (
        f"{train_src} split along {split['axis']} at {split['line']:.1f} px with an N/2 guard band: "
        f"{split['train']} train / {split['test']} test patterns ({split['dropped']} dropped)"
    )
    return train_part, test_part, {"kind": "split", "description": desc, "data": train_src, "split": split}


# --- resume ----------------------------------------------------------------------------------------


def run_hash(plan: RunPlan, fingerprint: str, prepared_hash: str, split_info: dict) -> str:
    """sha256 over everything a run's result depends on (DESIGN section 9, resume)."""
    payload = {
        "data": fingerprint,
        "prepared": prepared_hash,
        "split": split_info,
        "generator": {
            "name": plan.spec.name,
            "distribution": plan.spec.distribution,
            "factory": plan.spec.factory,
            "framework": plan.spec.framework,
            "supervised": plan.spec.supervised,
        },
        "options": plan.options,
        "versions": {"ptycho": __version__, "plugin": plan.spec.version},
        "train_config": plan.config.to_dict(),
    }
    return _sha256(json.dumps(payload, sort_keys=True, default=str))


def resume_decision(run_dir: Path, expected_hash: str, force: bool) -> tuple[bool, str]:
    """(reuse?, reason): reuse only a folder with DONE whose run.json hash matches."""
    from ptycho_core import worker

    if force:
        return False, "--force" if run_dir.exists() else "new"
    if not run_dir.exists():
        return False, "new"
    info = _read_json(run_dir / worker.RUN_JSON)
    if not (run_dir / worker.DONE).is_file():
        if info.get("status") == "failed":
            return False, f"the previous attempt failed: {info.get('reason', 'unknown')}"
        return False, "the previous attempt did not finish (no DONE marker)"
    if info.get("hash") != expected_hash:
        return False, "inputs changed since the finished run (data, split, options, versions or budget)"
    if not (run_dir / worker.RECON_NPZ).is_file():
        return False, f"{worker.RECON_NPZ} is missing"
    return True, "finished with the same inputs"


# --- children ----------------------------------------------------------------------------------------


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask when the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def child_environment(spec: GeneratorSpec, threads: int) -> dict[str, str]:
    """Environment variables a child starts with: thread budget, and for TensorFlow
    KERAS_BACKEND=tensorflow and TF_CPP_MIN_LOG_LEVEL=2 (never TF_ENABLE_ONEDNN_OPTS)."""
    env = {var: str(threads) for var in THREAD_VARIABLES}
    if spec.framework == "tensorflow":
        env["KERAS_BACKEND"] = "tensorflow"
        env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def run_children(plans, data_dir: Path, runs_dir: Path, *, jobs=1, threads=1, timeout=0.0, console=None) -> dict:
    """Run each plan in its own spawned child, `jobs` at a time. Returns {name: outcome} with
    outcome {"status": "ok"} or {"status": "failed", "reason": ...}.

    A child past `timeout` seconds (counted from its start message; 0: none) is killed.
    """
    import multiprocessing
    from multiprocessing.connection import wait

    if not plans:
        return {}
    ctx = multiprocessing.get_context("spawn")
    waiting = list(plans)
    running: dict[str, dict] = {}
    outcomes: dict[str, dict] = {}
    display = _Display(console, [p.name for p in plans])
    try:
        with display:
            while waiting or running:
                while waiting and len(running) < jobs:
                    plan = waiting.pop(0)
                    running[plan.name] = _launch(ctx, plan, data_dir, runs_dir, threads)
                    display.start(plan.name)
                conns = {r["conn"]: name for name, r in running.items() if r["conn"] is not None}
                ready = wait(list(conns) + [r["proc"].sentinel for r in running.values()], timeout=0.2)
                for conn in ready:
                    name = conns.get(conn)
                    if name is not None:
                        _receive(running[name], display)
                now = time.monotonic()
                for name, r in list(running.items()):
                    proc = r["proc"]
                    reason = None
                    if not proc.is_alive():
                        proc.join()
                    elif timeout and now > (r["started"] or r["launched"] + START_GRACE) + timeout:
                        proc.kill()
                        proc.join()
                        reason = f"timeout after {timeout:g} s"
                    else:
                        continue
                    _receive(r, display)
                    if r["conn"] is not None:
                        r["conn"].close()
                    outcome = _collect(r["plan"], runs_dir, proc.exitcode, reason)
                    outcomes[name] = outcome
                    display.finish(name, outcome, time.monotonic() - (r["started"] or r["launched"]))
                    del running[name]
    finally:
        for r in running.values():  # interrupted: leave no child behind
            if r["proc"].is_alive():
                r["proc"].kill()
            r["proc"].join()
        for r in running.values():
            outcomes.setdefault(r["plan"].name, _collect(r["plan"], runs_dir, r["proc"].exitcode, "interrupted"))
    return outcomes


def _launch(ctx, plan: RunPlan, data_dir: Path, runs_dir: Path, threads: int) -> dict:
    from ptycho_core import worker

    run_dir = runs_dir / plan.name
    partial = runs_dir / f".{plan.name}.partial"
    _remove(partial)
    _remove(run_dir)
    spec = spec_as_dict(plan.spec)
    spec["options"] = {k: {**v, "choices": list(v.get("choices") or ())} for k, v in spec["options"].items()}
    job = {
        "name": plan.name,
        "spec": spec,
        "options": plan.options,
        "train_config": plan.config.to_dict(),
        "data_dir": str(data_dir.resolve()),
        "partial_dir": str(partial.resolve()),
        "run_dir": str(run_dir.resolve()),
        "hash": plan.hash,
        "threads": threads,
        "meta": {"seed": plan.seed, "label": plan.label},
    }
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=worker.main, args=(job, _PipeEvents(sender)), name=f"ptycho-{plan.name}", daemon=True)
    with _environment(child_environment(plan.spec, threads)):
        proc.start()
    sender.close()
    return {"plan": plan, "proc": proc, "conn": receiver, "launched": time.monotonic(), "started": None}


class _PipeEvents:
    """The child's end of its own pipe: events as JSON bytes (nothing is unpickled by the parent,
    and a killed child cannot block the others)."""

    def __init__(self, conn):
        self.conn = conn

    def put(self, event: dict) -> None:
        self.conn.send_bytes(json.dumps(event, default=str).encode())


def _receive(r: dict, display) -> None:
    conn = r["conn"]
    while conn is not None:
        try:
            if not conn.poll():
                return
            event = json.loads(conn.recv_bytes().decode())
        except (EOFError, OSError, ValueError):
            r["conn"] = None
            conn.close()
            return
        if event.get("type") == "started" and r["started"] is None:
            r["started"] = time.monotonic()
        display.event(r["plan"].name, event)


def _collect(plan: RunPlan, runs_dir: Path, exitcode, reason: str | None) -> dict:
    """The outcome of a finished child; a failed run's partial folder becomes runs/<name>/ without
    DONE, holding run.log, error.json and a run.json with status "failed"."""
    from ptycho_core import worker

    run_dir = runs_dir / plan.name
    partial = runs_dir / f".{plan.name}.partial"
    info = _read_json(run_dir / worker.RUN_JSON)
    if reason is None and (run_dir / worker.DONE).is_file() and info.get("hash") == plan.hash:
        return {"status": "ok"}
    if reason is None:
        reason = _read_json(partial / worker.ERROR_JSON).get("reason") or worker.exit_reason(exitcode)
    partial.mkdir(parents=True, exist_ok=True)
    worker._write_json(
        partial / worker.RUN_JSON,
        {"name": plan.name, "hash": plan.hash, "status": "failed", "reason": reason, "exitcode": exitcode},
    )
    worker.publish(partial, run_dir)
    return {"status": "failed", "reason": reason}


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """Set environment variables for a `Process.start()` (spawn copies os.environ), then restore."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Display:
    """One progress line per run: rich.progress on a terminal, plain lines otherwise."""

    def __init__(self, console, names: list[str]):
        self.console = console
        self.names = names
        self.plain = console is None or not console.is_terminal
        self.progress = None
        self.tasks: dict[str, int] = {}
        self.last_epoch: dict[str, tuple] = {}
        self.printed: dict[str, Any] = {}

    def __enter__(self):
        if not self.plain:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            width = max(len(n) for n in self.names) if self.names else 8
            self.progress = Progress(
                TextColumn(f"{{task.description:<{width}}}"),
                BarColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                console=self.console,
            )
            self.progress.__enter__()
            for name in self.names:
                self.tasks[name] = self.progress.add_task(name, total=None, start=False, status="waiting")
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def _line(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def start(self, name: str) -> None:
        if self.progress is not None:
            self.progress.start_task(self.tasks[name])
            self.progress.update(self.tasks[name], status="starting")
        else:
            self._line(f"{name}: started")

    def event(self, name: str, event: dict) -> None:
        kind = event.get("type")
        if kind == "progress":
            epoch, epochs = event.get("epoch") or 0, event.get("epochs") or 0
            step, steps = event.get("step") or 0, event.get("steps") or 0
            text = f"epoch {epoch}/{epochs}"
            if isinstance(event.get("loss"), (int, float)):
                text += f"  loss {event['loss']:.4g}"
            if isinstance(event.get("val_loss"), (int, float)):
                text += f"  val {event['val_loss']:.4g}"
            if self.progress is not None:
                total = max(1, epochs * max(1, steps))
                done = max(0, (epoch - 1) * max(1, steps) + step)
                self.progress.update(self.tasks[name], total=total, completed=min(done, total), status=text)
                return
            # Plain lines: one per epoch, printed once its validation loss is known (or the next
            # epoch starts, or the run ends).
            pending = self.last_epoch.get(name)
            if pending and pending[0] != epoch:
                self._flush_epoch(name)
            if step == steps and self.printed.get(name) != epoch:
                self.last_epoch[name] = (epoch, text)
                if event.get("val_loss") is not None:
                    self._flush_epoch(name)
        elif kind == "predicting":
            if self.progress is not None:
                self.progress.update(self.tasks[name], status="predicting the test groups")
            else:
                self._flush_epoch(name)

    def _flush_epoch(self, name: str) -> None:
        pending = self.last_epoch.pop(name, None)
        if pending:
            self.printed[name] = pending[0]
            self._line(f"{name}: {pending[1]}")

    def finish(self, name: str, outcome: dict, seconds: float) -> None:
        ok = outcome["status"] == "ok"
        text = f"done in {seconds:.0f} s" if ok else f"FAILED: {outcome.get('reason', '')}"
        if self.progress is not None:
            task = self.tasks[name]
            total = self.progress.tasks[task].total or 1
            self.progress.update(
                task, total=total, completed=total if ok else self.progress.tasks[task].completed, status=text
            )
            self.progress.stop_task(task)
        else:
            self._flush_epoch(name)
            self._line(f"{name}: {text}")


# --- scoring ----------------------------------------------------------------------------------------


def _score_run(plan, runs_dir, outcome, test_ds, stitcher_spec, stitch_options, registry) -> dict:
    """One run's table row (under "_run") plus what the figures need (panel, frc, history)."""
    import numpy as np

    from ptycho_core import pipeline, worker

    run_dir = runs_dir / plan.name
    info = _read_json(run_dir / worker.RUN_JSON)
    history = _read_json(run_dir / worker.HISTORY_JSON) or None
    row = {
        "generator": plan.label,
        "run": plan.name,
        "seed": plan.seed,
        "status": "ok",
        "reason": "",
        "reused": plan.reuse,
        "framework": plan.spec.framework,
        "plugin": plan.spec.distribution,
        "version": plan.spec.version,
        "run_dir": f"{RUNS_DIR}/{plan.name}",
    }
    result = {"_run": row, "history": history, "panel": None, "frc": None}
    if not plan.reuse and (outcome or {}).get("status") != "ok":
        row.update(status="failed", reason=(outcome or {}).get("reason", "did not run"))
        return result
    try:
        with np.load(run_dir / worker.RECON_NPZ, allow_pickle=False) as z:
            patches = z["patches"]
        scored = pipeline.stitch_and_score(patches, test_ds, stitcher_spec, registry, **stitch_options)
    except Exception as exc:  # a bad prediction or a stitcher plugin's error fails this row only
        row.update(status="failed", reason=f"scoring failed: {worker.failure_reason(exc)}")
        return result
    for key in (
        "parameters",
        "train_seconds",
        "inference_patterns_per_s",
        "peak_rss_mib",
        "peak_gpu_mib",
        "epochs_run",
        "final_loss",
        "stopped",
    ):
        row[key] = info.get(key)
    row["gpu"] = (info.get("hardware") or {}).get("gpu")
    row.update(scored.metrics)
    worker._write_json(
        run_dir / METRICS_JSON,
        {
            "metrics": scored.metrics,
            "frc": scored.frc,
            "region": scored.region,
            "shift": scored.shift,
            "stitcher": stitcher_spec.name,
            "stitch_options": stitch_options,
        },
    )
    worker._write_npz(
        run_dir / OBJECT_NPZ, object=scored.object, weights=scored.weights, positions=scored.positions
    )
    result["panel"] = {"object": scored.object, "weights": scored.weights, "positions": scored.positions}
    result["frc"] = scored.frc
    return result


# --- provenance -----------------------------------------------------------------------------------


def build_provenance(
    registry,
    specs,
    source,
    split_info,
    fingerprint,
    prepared_hash,
    config,
    seeds,
    gridsize,
    stitcher_spec,
    stitch_options,
    jobs,
    threads,
    timeout,
    command_line,
    gpus,
    started,
) -> dict:
    """Everything needed to reproduce or judge a comparison (metrics.json "provenance")."""
    from importlib import metadata

    frameworks = {}
    for dist in ("numpy", "scipy", "scikit-image", "torch", "tensorflow", "tensorflow-cpu", "keras", "neuraloperator"):
        try:
            frameworks[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return {
        "ptycho": __version__,
        "plugins": [
            {"distribution": p.get("distribution"), "version": p.get("version"), "builtin": p.get("builtin", False)}
            for p in registry.plugins
        ],
        "generators": [
            {
                "name": s.name,
                "distribution": s.distribution,
                "version": s.version,
                "framework": s.framework,
                "factory": s.factory,
                "supervised": s.supervised,
            }
            for s in specs
        ],
        "frameworks": frameworks,
        "git_sha": git_sha(),
        "hardware": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "gpu": gpus or None,
            "jobs": jobs,
            "threads_per_child": threads,
        },
        "command_line": list(command_line) if command_line is not None else None,
        "data": {"fingerprint": fingerprint, "prepared_hash": prepared_hash, **{k: v for k, v in source.items()}},
        "split": split_info,
        "gridsize": gridsize,
        "train_config": config.to_dict(),
        "seeds": [config.seed + k for k in range(seeds)],
        "stitcher": {"name": stitcher_spec.name, "distribution": stitcher_spec.distribution, "options": stitch_options},
        "timeout_s": timeout,
        "inference_batch_groups": _inference_batch(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "wall_seconds": round(time.time() - started, 1),
    }


def _inference_batch() -> int:
    from ptycho_core import worker

    return worker.INFERENCE_BATCH


def git_sha() -> str | None:
    """The git commit of the ptycho_core sources, when they sit in a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    if out.returncode != 0 or not sha:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    return sha + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


# --- helpers ---------------------------------------------------------------------------------------


def _label(spec: GeneratorSpec, registry: Registry) -> str:
    return spec.name if spec.name not in registry.duplicates("generator") else spec.qualified_name


def _say(console, text: str) -> None:
    if console is not None:
        console.print(text, highlight=False, markup=False, soft_wrap=True)
    else:
        print(text, file=sys.stderr)


def _sha256(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _remove(path: Path) -> None:
    """Delete a folder so that no reader ever sees it half-deleted (rename first)."""
    if not path.exists():
        return
    trash = path.with_name(f".{path.name}.trash{os.getpid()}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)
