"""`run(request, on_event) -> CompareResult`: a comparison from request to report, on one screen.

Plan (usage checked before any work), stage the data once, run the children that have no
reusable result, score every run, write the report. Events go to `on_event`; nothing is printed.
"""

from __future__ import annotations

import time
from pathlib import Path

from ptycho_core import rundir
from ptycho_core.harness import events as ev
from ptycho_core.harness import executors, plan, score, source, sweep
from ptycho_core.harness.request import INTERRUPTED_EXIT, CompareRequest, CompareResult
from ptycho_core.plugins import PluginHost


def run(request: CompareRequest, on_event=ev.ignore, host=None) -> CompareResult:
    """Compare generators on one dataset, one split and one training budget; write the report.

    The runs go to the executor the request names (`harness.executors`); a sweep's grid
    (`request.grid`) multiplies each generator's runs by its option combinations (`harness.sweep`).

    host: a `PluginHost` (default: from the environment). Raises UsageError / DataError
    (PtychoError) before any child starts; a failed run is a failed row, not an exception. A
    Ctrl-C while the children run ends the unfinished runs as "interrupted" rows; the report is
    still written and `exit_code` is INTERRUPTED_EXIT.
    """
    started = time.time()
    registry = (host or PluginHost.from_environment()).registry()
    selection = plan.select(request, registry)
    variants = sweep.variants(request.grid, selection)  # {} unless a sweep
    executor = executors.create(request)
    train_ds, test_ds, data_source = source.load_data(request.data, request.test_data, request.simulate, registry)
    selection.specs = plan.drop_supervised(
        selection.specs, selection.skipped, selection.explicit, train_ds.has_ground_truth
    )
    plan.require_some(selection.specs, registry)
    layout = rundir.Layout(Path(request.out))
    rundir.remove_stale_temporaries(layout.out_dir)  # left by a run killed mid-write (a resume)
    staged = source.stage(train_ds, test_ds, data_source, selection, request.gridsize, layout)
    plans = plan.make_plans(selection.specs, selection.option_values, selection.train, request.seeds)
    plans = sweep.expand(plans, variants)
    for p in plans:
        p.hash = plan.run_hash(p, staged.fingerprint, staged.prepared_hash, staged.split_info)
        p.reuse, p.reason = plan.resume_decision(layout.run_dir(p.name), p.hash, request.force)
    _announce(request, selection, staged, plans, on_event)
    with executor:
        runs = [executors.run_spec(p, layout) for p in plans if not p.reuse]
        outcomes = executor.run(runs, layout, timeout=request.timeout, on_event=on_event)
    scored = [
        score.score_run(
            p, layout, outcomes.get(p.name), test_ds, selection.stitcher, selection.stitch_options, registry
        )
        for p in plans
    ]
    result = _report(request, selection, staged, registry, scored, executor.threads, started, plans)
    if any(o.interrupted for o in outcomes.values()):
        result.exit_code = INTERRUPTED_EXIT
    _record(request, result, on_event)
    return result


def _record(request, result, on_event) -> None:
    """Index the finished comparison in the results database (an error there is only a warning)."""
    from ptycho_core.results import record_comparison  # lazy: loaded when listing; the target imports numpy

    line = record_comparison(result, request.db, warn=lambda text: on_event(ev.Note(text)))
    if line:
        on_event(ev.Note(line))


def _announce(request, selection, staged, plans, on_event) -> None:
    info = staged.info
    on_event(
        ev.Note(
            f"comparing {len(selection.specs)} generator(s) x {request.seeds} seed(s) on "
            f"{staged.source['description']}: {info['train_groups']} train / {info['val_groups']} val / "
            f"{info['test_groups']} test groups, gridsize {request.gridsize}, {_epochs(plans)}"
        )
    )
    for item in selection.skipped:
        on_event(ev.Note(f"skipped {item['generator']}: {item['reason']}"))
    for p in plans:
        if p.reuse:
            on_event(ev.Note(f"{p.name}: reusing {rundir.RUNS_DIR}/{p.name} ({p.reason})"))
        elif p.reason != "new":
            on_event(ev.Note(f"{p.name}: redoing ({p.reason})"))


def _epochs(plans) -> str:
    epochs = sorted({p.config.epochs for p in plans if p.spec.kind == "learned"})
    iterative = sum(p.spec.kind == "iterative" for p in plans)
    text = (
        ""
        if not epochs
        else f"{epochs[0]} epochs"
        if len(epochs) == 1
        else f"{epochs[0]}-{epochs[-1]} epochs (per generator)"
    )
    if iterative:
        text += (" + " if text else "") + f"{iterative} iterative run(s) (no training)"
    return text


def _report(request, selection, staged, registry, scored, threads, started, plans) -> CompareResult:
    from ptycho_core import report  # lazy: loaded when listing; the target imports numpy
    from ptycho_core.harness.provenance import build_provenance  # lazy: loaded when listing; the target imports numpy

    runs = [s.row for s in scored]
    rows = report.summarise(runs, request.seeds)
    gpus = sorted({r.gpu for r in runs if r.gpu})
    provenance = build_provenance(request, selection, staged, registry, gpus=gpus, threads=threads, started=started)
    provenance["plan"] = {p.name: p.hash for p in plans}  # the comparison's identity in the results database
    panels = {}
    for s in scored:
        if s.reconstruction is not None:
            panels.setdefault(s.row.generator, s.reconstruction)
    test = staged.test
    report_path = report.write_report(
        Path(request.out),
        rows=rows,
        runs=runs,
        skipped=selection.skipped,
        provenance=provenance,
        truth=None if test.object is None else test,
        panels=panels,
        histories={s.row.run: s.history for s in scored if s.history is not None},
        pixel_size_m=(test.metadata or {}).get("pixel_size_m"),
        seeds=request.seeds,
    )
    exit_code = 0 if all(r.ok for r in runs) else 1
    return CompareResult(
        Path(request.out), rows, runs, selection.skipped, report_path, exit_code, request.seeds, provenance
    )
