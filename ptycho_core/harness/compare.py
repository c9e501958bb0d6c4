"""`run(request, on_event) -> CompareResult`: a comparison from request to report, on one screen.

Plan (usage checked before any work), stage the data once, run the children that have no
reusable result, score every run, write the report. Events go to `on_event`; nothing is printed.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from ptycho_core import rundir
from ptycho_core.errors import UsageError
from ptycho_core.harness import events as ev
from ptycho_core.harness import executors, plan, probe, score, source, sweep
from ptycho_core.harness import refined as refined_runs
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
    train_ds, test_ds, data_source = source.load_data(
        request.data,
        request.test_data,
        request.simulate,
        registry,
        None if request.split == "auto" else request.split,
        request.max_dropped,
    )
    policy = data_source.get("split", {}).get("policy")
    selection.specs = plan.drop_supervised(
        selection.specs,
        selection.skipped,
        selection.explicit,
        train_ds.has_ground_truth and policy != "none",
        None if not train_ds.has_ground_truth else "--split none trains on the test patterns (use spatial)",
    )
    from ptycho_core.data import probe_is_exact  # lazy: loaded when listing; the target imports numpy

    exact = probe_is_exact(test_ds)
    probe_plan = probe.decide(request.probe_from or None, selection.specs, exact, registry)
    plan.require_some(selection.specs, registry)
    layout = rundir.Layout(Path(request.out))
    rundir.remove_stale_temporaries(layout.out_dir)  # left by a run killed mid-write (a resume)
    plans = plan.make_plans(selection.specs, selection.option_values, selection.train, request.seeds)
    plans = sweep.expand(plans, variants)
    _check_reference(request.reference, plans)
    staged = source.stage(train_ds, test_ds, data_source, selection, request.gridsize, layout)
    for p in plans:
        p.halfset = request.half_set
    probe.apply_refine(plans, probe_plan, probe.explicit_options(request.options, request.grid))
    # With a source row, the iterative rows run first; the learned rows then get its probe.
    later = [p for p in plans if probe_plan.source is not None and p.spec.kind == "learned"]
    first = [p for p in plans if p not in later]
    _decide(first, staged, layout, request.force)
    _announce(request, selection, staged, plans, on_event, probe_plan, first)
    with executor:
        outcomes = _execute(executor, first, layout, request, on_event)
        interrupted = any(o.interrupted for o in outcomes.values())
        if later and not interrupted:  # Ctrl-C: no second phase
            staged_later = _stage_with_probe(
                train_ds, test_ds, data_source, selection, request, layout, probe_plan, plans
            )
            _decide(later, staged_later, layout, request.force)
            _announce_runs(later, on_event)
            outcomes.update(_execute(executor, later, layout, request, on_event))
            interrupted = any(o.interrupted for o in outcomes.values())
        # Refined rows (--refine) start from the learned rows' patches, once those have run.
        refined = refined_runs.plans(plans, outcomes, selection, layout, staged.prepared_hash, request.force)
        if refined and not interrupted:
            _announce_refined(selection, refined, on_event)
            todo = [executors.run_spec(p, layout) for p in refined if not p.reuse and not p.start.get("failed")]
            outcomes.update(executor.run(todo, layout, timeout=request.timeout, on_event=on_event))
        elif refined:
            from ptycho_core.harness import supervise  # lazy: it imports the worker (numpy); listing imports this

            outcomes.update({p.name: supervise.Outcome(ok=False, reason=supervise.INTERRUPTED) for p in refined})
    plans = refined_runs.interleave(plans, refined)
    scored = [
        score.score_run(
            p, layout, outcomes.get(p.name), test_ds, selection.stitcher, selection.stitch_options, registry
        )
        for p in plans
    ]
    reference = score.add_agreement(scored, layout, request.reference or None)
    if reference.get("note"):
        on_event(ev.Note(reference["note"]))
    against = score.add_curves(plans, scored, layout, test_ds)
    if against is not None:
        on_event(ev.Note(f"quality against seconds: SSIM against {against} (no ground truth)"))
    result = _report(
        request, selection, staged, registry, scored, executor.threads, started, probe_plan, reference, plans
    )
    if any(o.interrupted for o in outcomes.values()):
        result.exit_code = INTERRUPTED_EXIT
    _record(request, result, on_event)
    return result


def _check_reference(reference: str, plans) -> None:
    """Refuse, before any work, a --reference that names no row of this comparison."""
    labels = sorted({p.label for p in plans})
    if reference and reference not in labels:
        raise UsageError(f"--reference {reference}: not a row of this comparison (rows: {', '.join(labels)})")


def _decide(plans, staged, layout, force: bool) -> None:
    """Each plan's input hash and whether its finished folder can be reused."""
    for p in plans:
        p.hash = plan.run_hash(p, staged.fingerprint, staged.prepared_hash, staged.split_info)
        p.reuse, p.reason = plan.resume_decision(layout.run_dir(p.name), p.hash, force)


def _execute(executor, plans, layout, request, on_event) -> dict:
    runs = [executors.run_spec(p, layout) for p in plans if not p.reuse]
    return dict(executor.run(runs, layout, timeout=request.timeout, on_event=on_event)) if runs else {}


def _stage_with_probe(train_ds, test_ds, data_source, selection, request, layout, probe_plan, plans):
    """The data staged again in `data-probe/` with the source row's final probe (`harness.probe`);
    the learned plans are pointed at it."""
    array, label = probe.source_probe(layout, probe_plan, plans)
    later = [p for p in plans if p.spec.kind == "learned"]
    if array is None:
        for p in later:
            p.probe_source = label
        return source.stage(train_ds, test_ds, data_source, selection, request.gridsize, layout)
    train = dataclasses.replace(train_ds, probe=array)
    test = dataclasses.replace(test_ds, probe=array)
    directory = layout.out_dir / probe.PROBE_DATA_DIR
    staged = source.stage(train, test, data_source, selection, request.gridsize, layout, directory)
    for p in later:
        p.data_dir, p.probe_source = probe.PROBE_DATA_DIR, label
    return staged


def _record(request, result, on_event) -> None:
    """Index the finished comparison in the results database (an error there is only a warning)."""
    from ptycho_core.results import record_comparison  # lazy: loaded when listing; the target imports numpy

    line = record_comparison(result, request.db, warn=lambda text: on_event(ev.Note(text)))
    if line:
        on_event(ev.Note(line))


def _announce(request, selection, staged, plans, on_event, probe_plan, now) -> None:
    """The comparison's opening notes; `now`: the plans decided so far (their reuse notes)."""
    info = staged.info
    on_event(
        ev.Note(
            f"comparing {len(selection.specs)} generator(s) x {request.seeds} seed(s) on "
            f"{staged.source['description']}: {info['train_groups']} train / {info['val_groups']} val / "
            f"{info['test_groups']} test groups, gridsize {request.gridsize}, {_epochs(plans)}"
        )
    )
    on_event(ev.Note(f"probe: {probe_plan.reason}"))
    for item in selection.skipped:
        on_event(ev.Note(f"skipped {item['generator']}: {item['reason']}"))
    _announce_runs(now, on_event)


def _announce_runs(plans, on_event) -> None:
    for p in plans:
        if p.reuse:
            on_event(ev.Note(f"{p.name}: reusing {rundir.RUNS_DIR}/{p.name} ({p.reason})"))
        elif p.reason != "new":
            on_event(ev.Note(f"{p.name}: redoing ({p.reason})"))


def _announce_refined(selection, refined, on_event) -> None:
    on_event(ev.Note(f"refining every learned row with {selection.refine} ({len(refined)} run(s))"))
    for p in refined:
        if p.start.get("failed"):
            on_event(ev.Note(f"{p.name}: not run ({p.start['failed']})"))
        elif p.reuse:
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


def _report(
    request, selection, staged, registry, scored, threads, started, probe_plan, reference, plans
) -> CompareResult:
    from ptycho_core import report  # lazy: loaded when listing; the target imports numpy
    from ptycho_core.harness.provenance import build_provenance  # lazy: loaded when listing; the target imports numpy

    runs = [s.row for s in scored]
    rows = report.summarise(runs, request.seeds)
    gpus = sorted({r.gpu for r in runs if r.gpu})
    provenance = build_provenance(request, selection, staged, registry, gpus=gpus, threads=threads, started=started)
    provenance["probe"] = probe_plan.as_dict()
    provenance["reference"] = {k: v for k, v in reference.items() if k != "note"}
    provenance["plan"] = {p.name: p.hash for p in plans}  # the comparison's identity in the results database
    panels, curves = {}, {}
    for s in scored:
        if s.reconstruction is not None:
            panels.setdefault(s.row.generator, s.reconstruction)
        if s.curve is not None and s.curve["points"]:
            curves.setdefault(s.row.generator, s.curve)
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
        reference=reference.get("row") or probe_plan.source,
        curves=curves,
    )
    exit_code = 0 if all(r.ok for r in runs) else 1
    return CompareResult(
        Path(request.out), rows, runs, selection.skipped, report_path, exit_code, request.seeds, provenance
    )
