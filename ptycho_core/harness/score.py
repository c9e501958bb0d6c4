"""Scoring a finished run: stitch its anchor patches, or take an iterative generator's whole
object, and score the object (docs/design.md#scoring: one region, alignment and metrics for both, in
`pipeline.score_object`); write `metrics.json` and `object.npz` into its folder.

`score_run` returns a `Scored`: the run's typed `Row` plus what the figures need (its scored
`Reconstruction`, which carries the FRC curves, and the training or iteration history).
"""

from __future__ import annotations

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
        kind=plan.spec.kind,
        plugin=plan.spec.distribution,
        version=plan.spec.version,
        run_dir=f"{rundir.RUNS_DIR}/{plan.name}",
    )
    scored = Scored(row=row, history=rundir.read_json(run_dir / rundir.HISTORY_JSON) or None)
    if not plan.reuse and not (outcome is not None and outcome.ok):
        row.fail(outcome.reason if outcome is not None else "did not run")
        return scored
    try:
        result = _stitch_and_score(run_dir, test_ds, stitcher_spec, stitch_options, registry)
    except Exception as exc:  # a bad prediction or a stitcher plugin's error fails this row only
        row.fail(f"scoring failed: {failure_reason(exc)}")
        return scored
    row.metrics = dict(result.metrics)
    row.add_costs(rundir.RunRecord.read(run_dir) or rundir.RunRecord(name=plan.name, hash=""))
    rundir.write_json(
        run_dir / rundir.METRICS_JSON,
        {
            "metrics": result.metrics,
            "frc": result.frc,
            "region": result.region,
            "shift": result.shift,
            "stitcher": stitcher_spec.name if plan.spec.kind == "learned" else None,  # iterative: whole object
            "stitch_options": stitch_options if plan.spec.kind == "learned" else {},
        },
    )
    rundir.write_npz(
        run_dir / rundir.OBJECT_NPZ, object=result.object, weights=result.weights, positions=result.positions
    )
    scored.reconstruction = result
    return scored


def _stitch_and_score(run_dir, test_ds, stitcher_spec, stitch_options, registry):
    import numpy as np  # lazy: loaded when listing: no numpy at import time

    from ptycho_core import pipeline  # lazy: loaded when listing; the target imports numpy

    with np.load(run_dir / rundir.RECON_NPZ, allow_pickle=False) as z:
        if "object" in z.files:  # an iterative generator's whole object: no stitching
            return pipeline.score_whole_object(z["object"], test_ds)
        patches = z["patches"]
    return pipeline.stitch_and_score(patches, test_ds, stitcher_spec, registry, **stitch_options)
