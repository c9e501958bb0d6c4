"""Scoring a finished run: stitch its anchor patches, or take an iterative generator's whole
object, and score the object (docs/design.md#scoring: one region, alignment and metrics for both, in
`pipeline.score_object`); write `metrics.json` and `object.npz` into its folder.

`score_run` returns a `Scored`: the run's typed `Row` plus what the figures need (its scored
`Reconstruction`, which carries the FRC curves, the training or iteration history, and the quality
against seconds).

An iterative or refined run's snapshots (recon.npz `snapshot_objects`) are scored here, after the
run, into its curve of quality against seconds (`ptycho_core.quality_time`); a learned row's curve
is one point at its inference time. The row gets `seconds_to_quality` and `quality_reached`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ptycho_core import rundir
from ptycho_core.errors import failure_reason
from ptycho_core.generator import Reconstruction
from ptycho_core.harness.plan import RunPlan


@dataclass
class Scored:
    """One run's row and its figure material (None when the run failed)."""

    row: rundir.Row
    reconstruction: Reconstruction | None = None
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
        result, extras = _stitch_and_score(run_dir, test_ds, stitcher_spec, stitch_options, registry)
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
            **extras,
            "region": result.region,
            "shift": result.shift,
            "stitcher": stitcher_spec.name if plan.kind != "iterative" else None,  # iterative: whole object
            "stitch_options": stitch_options if plan.kind != "iterative" else {},
        },
    )
    rundir.write_npz(
        run_dir / rundir.OBJECT_NPZ, object=result.object, weights=result.weights, positions=result.positions
    )
    scored.reconstruction = result
    return scored


def _stitch_and_score(run_dir, test_ds, stitcher_spec, stitch_options, registry):
    """Score the run with its own final probe and positions (`own_probe`), and add its half-set
    FRC when it left halves.npz (`ptycho_core.agreement`). Returns (Reconstruction, {"probe":
    where its probe came from, "halfset_frc": the half-set FRC curve or {}})."""
    import numpy as np  # lazy: loaded when listing: no numpy at import time

    from ptycho_core import pipeline  # lazy: loaded when listing; the target imports numpy

    with np.load(run_dir / rundir.RECON_NPZ, allow_pickle=False) as z:
        recon = {k: z[k] for k in z.files}
    probe, positions, source = own_probe(run_dir, recon)
    if probe is not None and probe.shape != test_ds.probe.shape:
        raise ValueError(f"the run's probe has shape {probe.shape}, the data's {test_ds.probe.shape}")
    if "object" in recon:  # an iterative generator's whole object: no stitching
        result = pipeline.score_whole_object(recon["object"], test_ds, probe, positions)

        def half(tag, h):
            idx = h[f"{tag}_index"]
            at = h.get(f"{tag}_positions", result.positions[idx])
            return pipeline.whole_object(h[f"{tag}_object"], test_ds, h.get(f"{tag}_probe", probe), at)[:2]
    else:
        result = pipeline.stitch_and_score(recon["patches"], test_ds, stitcher_spec, registry, probe, **stitch_options)

        def half(tag, h):
            idx = h[f"{tag}_index"]
            return pipeline.stitch_on_grid(
                h[f"{tag}_patches"], test_ds, stitcher_spec, registry, probe, idx, **stitch_options
            )[:2]

    return result, {"probe": source, "halfset_frc": _halfset(run_dir / rundir.HALVES_NPZ, half, result, test_ds)}


def own_probe(run_dir, recon: dict) -> tuple:
    """(probe or None, positions or None, where they came from) of a run: its probe.npy /
    positions.npy (every row's final probe and positions on the object grid), else the engine's
    refined `probe` / `refined_positions` in recon.npz, else None (the data's are used)."""
    import numpy as np  # lazy: loaded when listing: no numpy at import time

    def npy(name):
        path = run_dir / name
        return np.load(path, allow_pickle=False) if path.is_file() else None

    probe, positions = npy(rundir.PROBE_NPY), npy(rundir.POSITIONS_NPY)
    source = "run folder (probe.npy)" if probe is not None else ""
    if probe is None and "probe" in recon:
        probe, source = recon["probe"], "refined by the engine"
    if positions is None:
        positions = recon.get("refined_positions")
    return probe, positions, source or "the data's"


def _halfset(path, half, result, test_ds) -> dict:
    """The half-set FRC values (added to `result.metrics`) and curve, from halves.npz when present."""
    import numpy as np  # lazy: loaded when listing: no numpy at import time

    from ptycho_core import agreement  # lazy: loaded when listing; the target imports numpy

    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as z:
        h = {k: z[k] for k in z.files}
    (obj_a, w_a), (obj_b, w_b) = half("a", h), half("b", h)
    weights = agreement.overlap_weights(w_a, w_b)
    pixel = (test_ds.metadata or {}).get("pixel_size_m")
    values, curve = agreement.halfset_frc(obj_a, obj_b, weights, result.positions, pixel)
    result.metrics.update(_finite(values))
    return curve


def add_agreement(scored: list[Scored], layout: rundir.Layout, requested: str | None = None) -> dict:
    """(b) Every successful run against the reference row (`agreement.choose_reference`): the
    `ref_*` metrics go into its row and its metrics.json (with the curves, under "agreement").

    Returns {"row", "run", "rule"} for the provenance, plus "note" (a line for the user) when the
    requested reference failed and the default rule was used, or when there is no reference.
    """
    from ptycho_core import agreement  # lazy: loaded when listing; the target imports numpy

    runs = [s.row.to_dict() for s in scored]
    rule = "--reference" if requested else "the successful iterative row with the lowest data error"
    out: dict = {}
    try:
        name = agreement.choose_reference(runs, requested)
    except ValueError as exc:
        name = agreement.choose_reference(runs)
        rule = f"the successful iterative row with the lowest data error ({exc})"
        out["note"] = f"{exc}: agreement measured against {name}"
    base = next((s for s in scored if s.row.generator == name and s.row.ok and s.reconstruction is not None), None)
    if base is None:
        return {"row": None, "run": None, "rule": "no successful iterative row: no agreement metrics"}
    out.update(row=name, run=base.row.run, rule=rule)
    for s in scored:
        rec, ref = s.reconstruction, base.reconstruction
        if s is base or not s.row.ok or rec is None or rec.object.shape != ref.object.shape:
            continue
        weights = agreement.overlap_weights(rec.weights, ref.weights)
        values, curves = agreement.agreement(rec.object, ref.object, weights, ref.positions)
        values = _finite(values)
        s.row.metrics.update(values)
        path = layout.run_dir(s.row.run) / rundir.METRICS_JSON
        record = rundir.read_json(path) or {}
        record.setdefault("metrics", {}).update(values)
        record["agreement"] = {"reference": base.row.run, "frc": curves}
        rundir.write_json(path, record)
    return out


def _finite(values: dict) -> dict:
    """The finite values only: a metric without a number is left out (an empty cell, no store row)."""
    return {k: v for k, v in values.items() if math.isfinite(v)}


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
            truth, against = base.reconstruction.object, base.row.generator
    for plan, s in zip(plans, scored):
        if not s.row.ok or s.reconstruction is None:
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
            grid = (s.reconstruction.positions, s.reconstruction.weights)
            final = [quality_time.score_point(s.reconstruction.object, test_ds, final[0]["seconds"], 0, grid, truth)]
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
            quality_time.score_point(s.reconstruction.object, test_ds, seconds, iterations or 0, None, truth)
        )
    return curve


def _time_to_quality(curve: dict | None) -> dict:
    """{"seconds_to_quality", "quality_reached"} of a curve (None: no quality to judge by)."""
    from ptycho_core import quality_time  # lazy: loaded when listing; it imports numpy

    seconds, reached = quality_time.seconds_to_quality((curve or {}).get("points") or [])
    values = {"seconds_to_quality": seconds, "quality_reached": None if reached is None else float(reached)}
    return {k: v for k, v in values.items() if v is not None}  # metrics hold numbers only
