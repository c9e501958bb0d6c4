"""Planning the refined runs of `ptycho compare --refine ENGINE[:ITERATIONS]` (`ptycho_core.refine`).

After the learned runs end, each successful learned run gets one refined run, `<run>+<engine>`
(row `<row>+<engine>`): the engine started from the learned run's patches, stitched by the
comparison's stitcher, in its own child like every run (`harness.worker`). A learned run that
failed gives a failed refined row saying so. A refined run is reused, like any run, when its
inputs are unchanged: its hash covers the learned run's patches (their bytes, so a retrained
learned run redoes its refinement), the stitcher and its options, the engine and its options.
Nothing here imports numpy or a framework.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from ptycho_core import __version__, rundir
from ptycho_core.harness import plan as planning
from ptycho_core.registry import spec_as_dict


def plans(learned: list, outcomes: dict, selection, layout: rundir.Layout, prepared_hash: str, force=False) -> list:
    """One refined RunPlan per learned plan (none when not refining), hashed and with its resume
    decision (`force`: redo); a plan whose learned run failed has `start["failed"]` (its row
    fails, nothing runs)."""
    if selection.refiner is None:
        return []
    out = []
    engine_label = selection.refiner.name
    for p in learned:
        if p.kind != "learned":
            continue
        outcome = outcomes.get(p.name)
        learned_dir = layout.run_dir(p.name)
        ok = p.reuse or (outcome is not None and outcome.ok)
        start = {
            "learned_run": p.name,
            "recon": str((learned_dir / rundir.RECON_NPZ).resolve()),
            "run_json": str((learned_dir / rundir.RUN_JSON).resolve()),
            "stitcher": spec_as_dict(selection.stitcher),
            "stitch_options": dict(selection.stitch_options),
            "refine": str(selection.refine),
        }
        if not ok:
            start["failed"] = f"the learned run {p.name} failed" + (f": {outcome.reason}" if outcome else "")
        refined = dataclasses.replace(
            p,
            name=selection.refine.row_name(p.name, engine_label),
            label=selection.refine.row_name(p.label, engine_label),
            spec=selection.refiner,
            options=dict(selection.refine_options),
            start=start,
            reuse=False,
            reason="",
        )
        if ok:
            refined.hash = run_hash(refined, prepared_hash)
            refined.reuse, refined.reason = planning.resume_decision(layout.run_dir(refined.name), refined.hash, force)
        out.append(refined)
    return out


def run_hash(plan, prepared_hash: str) -> str:
    """sha256 over what a refined run depends on: the learned patches' bytes, the stitcher, the
    engine, its options and the iterative settings."""
    digest = hashlib.sha256()
    with open(plan.start["recon"], "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    stitcher = plan.start["stitcher"]
    payload = {
        "learned_patches": digest.hexdigest(),
        "prepared": prepared_hash,
        "stitcher": {k: stitcher.get(k) for k in ("name", "distribution", "version", "factory")},
        "stitch_options": plan.start["stitch_options"],
        "engine": {k: getattr(plan.spec, k) for k in ("name", "distribution", "version", "factory")},
        "options": plan.options,
        "versions": {"ptycho": __version__},
        "train_config": {k: plan.config.to_dict()[k] for k in planning.ITERATIVE_SETTINGS},
    }
    return planning.sha256(json.dumps(payload, sort_keys=True, default=str))


def interleave(learned: list, refined: list) -> list:
    """The table's order: every refined plan right after the learned plan it starts from."""
    after: dict = {}
    for r in refined:
        after.setdefault(r.start["learned_run"], []).append(r)
    out = []
    for p in learned:
        out.append(p)
        out.extend(after.get(p.name, []))
    return out


def learned_costs(start: dict) -> dict:
    """The learned run's inference and training seconds (its run.json), for the refined record."""
    record = rundir.read_json(Path(start["run_json"]))
    return {"inference_seconds": record.get("reconstruct_seconds"), "train_seconds": record.get("train_seconds")}
