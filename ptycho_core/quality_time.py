"""Quality against seconds: when each row gets good, training excluded.

Every iterative and refined row keeps its object after a few iterations (`checkpoints`: about
ten per decade, and the last); the parent scores those snapshots after the run, off the clock,
exactly as the row's final object is scored (`pipeline.score_whole_object`). A curve is a list of
points {seconds, iteration, amp_ssim, phase_ssim}: seconds since the row's reconstruction began
(for a refined row: since its learned inference began, so the learned inference, the stitching
and the start count; iteration 0 is the start). A learned row is one point at its inference time;
its training time is kept apart (`train_seconds`) and shown apart in the figure.

The table's `s to quality` column is the first point at which amplitude SSIM >= 0.95 and phase
SSIM >= 0.90 (`THRESHOLDS`), or "not reached". The SSIMs are against the ground truth; without
one (measured data), against the reference row (`reference_row`: the successful iterative row
with the lowest data error), by the same scoring (region, global complex scalar, SSIM) as against
a ground truth. That is the hook for the measured-data issue's agreement with the reference
(`ptycho_core.agreement`, with registration and ramp removal): `score_point`'s `truth`.
"""

from __future__ import annotations

import math

import numpy as np

from ptycho_core import metrics, pipeline, stitch
from ptycho_core.metric_registry import finite

#: The quality the `s to quality` column waits for: amplitude and phase SSIM.
THRESHOLDS = {"amp_ssim": 0.95, "phase_ssim": 0.90}

#: Mantissas of the checkpoint iterations in every decade (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, ...).
MANTISSAS = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)

#: Text of the column when a row never reached the thresholds.
NOT_REACHED = "not reached"


def checkpoints(iterations: int) -> tuple[int, ...]:
    """Iterations after which an engine's object is kept: 1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25,
    30, 40, ... up to `iterations`, and `iterations` itself."""
    marks = set()
    decade = 1
    while decade <= iterations:
        marks.update(int(round(m * decade)) for m in MANTISSAS)
        decade *= 10
    return tuple(sorted(k for k in marks | {int(iterations)} if 1 <= k <= iterations))


def score_point(obj, ds, seconds: float, iteration: int, grid=None, truth=...) -> dict:
    """One point of a curve: `obj` (on `pipeline.object_grid(ds)`) scored like a row's final object
    (the same region, alignment and SSIMs; the data error) against `truth` (default: the data's
    ground truth; the reference row's object on measured data; None: data error only); `grid`:
    (positions, weights) from `_grid(ds)`, computed once per curve."""
    truth = ds.object if truth is ... else truth
    positions, weights = grid or _grid(ds)
    obj = np.where(weights > 0, np.asarray(obj), 0)
    values = metrics.score(obj, weights, truth, positions, ds.probe, ds.diffraction, mask=ds.mask).values
    point = {"seconds": float(seconds), "iteration": iteration, "data_error": _number(values.get("data_error"))}
    if truth is not None:
        point.update({key: _number(values.get(key)) for key in THRESHOLDS})
    return point


def reference_row(rows):
    """The reference of rows without ground truth, from [(kind, scored row)]: the successful
    iterative row with the lowest data error (None when there is none)."""
    iterative = [
        s
        for kind, s in rows
        if kind == "iterative" and s.row.ok and s.reconstruction is not None and finite(s.row.metrics.get("data_error"))
    ]
    return min(iterative, key=lambda s: s.row.metrics["data_error"], default=None)


def _grid(ds) -> tuple:
    """(positions on the object grid, the illumination weights): what whole objects are scored on."""
    shape, positions, _ = pipeline.object_grid(ds)
    return positions, stitch.illumination(positions, shape, np.abs(ds.probe) ** 2)


def curve(snapshots: dict, history: dict, ds, offset: float = 0.0, start=None, truth=...) -> list[dict]:
    """Points from an engine's snapshots {iteration: object}: at `offset` + the History's seconds
    after that iteration; `start` (a refined row's initial object) is iteration 0 at `offset`;
    `truth`: `score_point`'s."""
    seconds = list((history or {}).get("seconds") or [])
    grid = _grid(ds)
    points = [] if start is None else [score_point(start, ds, offset, 0, grid, truth)]
    for k in sorted(snapshots):
        if 1 <= k <= len(seconds) and _number(seconds[k - 1]) is not None:
            points.append(score_point(snapshots[k], ds, offset + seconds[k - 1], k, grid, truth))
    return points


def learned_point(row: dict) -> list[dict]:
    """A learned row's curve: one point at its inference time (its training is not counted)."""
    seconds = _number(row.get("reconstruct_seconds"))
    if seconds is None:
        return []
    point = {"seconds": seconds, "iteration": None, "data_error": _number(row.get("data_error"))}
    point.update({key: _number(row.get(key)) for key in THRESHOLDS})
    return [point]


def seconds_to_quality(points: list[dict]) -> tuple[float | None, bool | None]:
    """(seconds of the first point meeting every THRESHOLD, reached?); (None, None) when the points
    carry no quality (no ground truth and no reference score), (None, False) when never reached."""
    scored = [p for p in points if all(_number(p.get(key)) is not None for key in THRESHOLDS)]
    if not scored:
        return None, None
    for point in sorted(scored, key=lambda p: p["seconds"]):
        if all(point[key] >= limit for key, limit in THRESHOLDS.items()):
            return point["seconds"], True
    return None, False


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
