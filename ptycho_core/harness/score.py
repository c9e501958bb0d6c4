"""Scoring a finished run: stitch its anchor patches, or take an iterative generator's whole
object, and score the object (docs/design.md#scoring: one region, alignment and metrics for both, in
`pipeline.score_object`); write `metrics.json` and `object.npz` into its folder.

`score_run` returns a `Scored`: the run's typed `Row` plus what the figures need (the object
panel, the FRC curves, the training or iteration history, the quality against seconds).

An iterative or refined run's snapshots (recon.npz `snapshot_objects`) are scored here, after the
run, into its curve of quality against seconds (`ptycho_core.quality_time`); a learned row's curve
is one point at its inference time. The row gets `seconds_to_quality` and `quality_reached`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ptycho_core import rundir
from ptycho_core.errors import failure_reason
from ptycho_core.harness.plan import RunPlan


@dataclass
class Scored:
    """One run's row and its figure material (None when the run failed)."""

    row: rundir.Row
    panel: dict | None = None
    frc: dict | None = None
    history: dict | None = None
    curve: dict | None = None


def score_run(
    plan: RunPlan, layout: rundir.Layout, outcome, test_ds, stitcher_spec, stitch_options, registry
) -> Scored:
    """Score one run (reused or just finished); a failed run or a scoring error is a failed row."""
    run_dir = layout.run_dir(plan.name)
    row = rundir.Row(
        generator=plan.label,
        run=plan.name,
        seed=plan.seed,
        reused=plan.reuse,
        framework=plan.spec.framework,
        kind=plan.kind,
        plugin=plan.spec.distribution,
        version=plan.spec.version,
        run_dir=f"{rundir.RUNS_DIR}/{plan.name}",
    )
    scored = Scored(row=row, history=rundir.read_json(run_dir / rundir.HISTORY_JSON) or None)
    if plan.start is not None and plan.start.get("failed"):
        row.fail(plan.start["failed"])
        return scored
    if not plan.reuse and not (outcome is not None and outcome.ok):
        row.fail(outcome.reason if outcome is not None else "did not run")
        return scored
    try:
        result = _stitch_and_score(run_dir, test_ds, stitcher_spec, stitch_options, registry)
    except Exception as exc:  # a bad prediction or a stitcher plugin's error fails this row only
        row.fail(f"scoring failed: {failure_reason(exc)}")
        return scored
    record = rundir.RunRecord.read(run_dir) or rundir.RunRecord(name=plan.name, hash="")
    row.metrics = dict(result.metrics)
    row.add_costs(record)
    rundir.write_json(
        run_dir / rundir.METRICS_JSON,
        {
            "metrics": result.metrics,
            "frc": result.frc,
            "region": result.region,
            "shift": result.shift,
            "stitcher": stitcher_spec.name if plan.kind != "iterative" else None,  # iterative: whole object
            "stitch_options": stitch_options if plan.kind != "iterative" else {},
        },
    )
    rundir.write_npz(
        run_dir / rundir.OBJECT_NPZ, object=result.object, weights=result.weights, positions=result.positions
    )
    scored.panel = {"object": result.object, "weights": result.weights, "positions": result.positions}
    scored.frc = result.frc
    return scored


def _stitch_and_score(run_dir, test_ds, stitcher_spec, stitch_options, registry):
    import numpy as np  # lazy: loaded when listing: no numpy at import time

    from ptycho_core import pipeline  # lazy: loaded when listing; the target imports numpy

    with np.load(run_dir / rundir.RECON_NPZ, allow_pickle=False) as z:
        if "object" in z.files:  # an iterative generator's whole object: no stitching
            return pipeline.score_whole_object(z["object"], test_ds)
        patches = z["patches"]
    return pipeline.stitch_and_score(patches, test_ds, stitcher_spec, registry, **stitch_options)


def add_curves(plans: list[RunPlan], scored: list[Scored], layout: rundir.Layout, test_ds) -> str | None:
    """Every successful row's quality against seconds (`quality_time`), its `seconds_to_quality`
    and `quality_reached`, also written into its metrics.json. The quality is SSIM against the
    ground truth; without one, against the reference row (`quality_time.reference_row`: the
    successful iterative row with the lowest data error), whose name is returned (None: ground truth
    or no reference)."""
    from ptycho_core import quality_time  # lazy: loaded when listing; it imports numpy

    truth, against = test_ds.object, None
    if truth is None:
        base = quality_time.reference_row([(p.kind, s) for p, s in zip(plans, scored)])
        if base is not None:
            truth, against = base.panel["object"], base.row.generator
    for plan, s in zip(plans, scored):
        if not s.row.ok or s.panel is None:
            continue
        s.curve = _curve(plan, layout.run_dir(plan.name), test_ds, s, truth)
        s.curve["against"] = "ground truth" if against is None and truth is not None else against
        s.row.metrics.update(_time_to_quality(s.curve))
        path = layout.run_dir(plan.name) / rundir.METRICS_JSON
        record = rundir.read_json(path) or {}
        record.setdefault("metrics", {}).update(_time_to_quality(s.curve))
        record["quality_against_seconds"] = s.curve
        rundir.write_json(path, record)
    return against


def _curve(plan: RunPlan, run_dir, test_ds, s: Scored, truth) -> dict:
    """The row's quality against seconds: {"kind", "points", "train_seconds"} (`quality_time`),
    scored against `truth` (the ground truth or the reference row's object; None: no SSIM)."""
    import numpy as np  # lazy: loaded when listing: no numpy at import time

    from ptycho_core import quality_time  # lazy: loaded when listing; it imports numpy

    record = rundir.RunRecord.read(run_dir) or rundir.RunRecord(name=plan.name, hash="")
    curve = {"kind": plan.kind, "points": [], "train_seconds": record.metrics.get("train_seconds")}
    row = s.row.to_dict()
    if plan.kind == "learned" or record.metrics.get("reconstruct_seconds") is None:
        final = quality_time.learned_point(row)
        if final and test_ds.object is None:  # its stitched object against the reference
            grid = (s.panel["positions"], s.panel["weights"])
            final = [quality_time.score_point(s.panel["object"], test_ds, final[0]["seconds"], 0, grid, truth)]
            final[0]["iteration"] = None
        curve["points"] = final
        return curve
    with np.load(run_dir / rundir.RECON_NPZ, allow_pickle=False) as z:
        keys = z["snapshot_iterations"].tolist() if "snapshot_iterations" in z.files else []
        snapshots = dict(zip(keys, z["snapshot_objects"])) if keys else {}
        start = z["start"] if "start" in z.files else None
    offset = (record.metrics.get("start_seconds") or 0.0) if plan.kind == "refined" else 0.0
    curve["points"] = quality_time.curve(snapshots, s.history, test_ds, offset=offset, start=start, truth=truth)
    iterations = record.metrics.get("epochs_run")
    if not curve["points"] or curve["points"][-1].get("iteration") != (iterations or 0):
        seconds = record.metrics["reconstruct_seconds"]  # the final object at the run's whole time
        curve["points"].append(
            quality_time.score_point(s.panel["object"], test_ds, seconds, iterations or 0, None, truth)
        )
    return curve


def _time_to_quality(curve: dict | None) -> dict:
    """{"seconds_to_quality", "quality_reached"} of a curve (None: no quality to judge by)."""
    from ptycho_core import quality_time  # lazy: loaded when listing; it imports numpy

    seconds, reached = quality_time.seconds_to_quality((curve or {}).get("points") or [])
    values = {"seconds_to_quality": seconds, "quality_reached": None if reached is None else float(reached)}
    return {k: v for k, v in values.items() if v is not None}  # metrics hold numbers only
