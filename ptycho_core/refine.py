"""Refined rows: an iterative engine started from a learned row's stitched object and probe.

    ptycho compare --refine rpie:10            adds `fno+rpie`, `hybrid+rpie`, ... beside every learned row
    ptycho reconstruct --model M --refine rpie:10 --data scan.npz --out recon.npz

A learned row's patches are stitched (its own stitcher), the object is turned into a start
(`start_object`: scaled to explain the measured amplitudes, uncovered pixels filled) and handed to
the engine as its `start` (a `Reconstruction`: that object and the probe the learned row used).
Only engines registered with `warm_start=True` take a start (`pipeline.check_warm_start`). The
refined row's time is the learned inference plus the stitching, the start and the engine's run
(training excluded, shown apart as for the learned row).

`ENGINE[:ITERATIONS]`: the engine's name (or `dist:name`) and, optionally, its `iterations`
option (otherwise the engine's own default, or the value given by `--option ENGINE.iterations=`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ptycho_core.errors import UsageError

if TYPE_CHECKING:  # numpy only for annotations: the light CLI imports this module
    import numpy as np

#: Joins a learned row's name and the engine's in a refined row's name (`fno+rpie`).
JOIN = "+"

#: The setting we document as the recommendation (README, docs): rPIE from the learned object.
RECOMMENDED = "rpie:20"


@dataclass(frozen=True)
class Refine:
    """A parsed `ENGINE[:ITERATIONS]`: the engine's name and its iterations (None: its default)."""

    engine: str
    iterations: int | None = None

    def __str__(self) -> str:
        return self.engine if self.iterations is None else f"{self.engine}:{self.iterations}"

    def row_name(self, learned: str, engine_label: str | None = None) -> str:
        """The refined row's name: `<learned row>+<engine>`."""
        return f"{learned}{JOIN}{engine_label or self.engine.rpartition(':')[2]}"


def parse(text) -> Refine | None:
    """`"rpie:10"` -> Refine("rpie", 10), `"rpie"` -> Refine("rpie"); None or "" -> None.

    The engine may be `dist:name`; the iterations are the part after the last ':' when it is a
    number. UsageError (one line) for anything else.
    """
    if text is None or isinstance(text, Refine):
        return text
    text = str(text).strip()
    if not text:
        return None
    head, sep, tail = text.rpartition(":")
    if sep and tail.strip().lstrip("-").isdigit():
        iterations = int(tail)
        if iterations < 1:
            raise UsageError(f"--refine {text}: the iterations must be at least 1")
        engine = head.strip()
    else:
        engine, iterations = text, None
    if not engine or " " in engine or "," in engine:
        raise UsageError(f"--refine expects ENGINE[:ITERATIONS] (e.g. {RECOMMENDED}), got {text!r}")
    return Refine(engine, iterations)


def engine_spec(registry, refine: Refine):
    """The refining engine's spec, checked before any work: installed, available, iterative, and
    registered with `warm_start` (else one line: it cannot refine)."""
    from ptycho_core import pipeline  # lazy: CompareRequest (the light CLI) imports this module; numpy

    spec = registry.generator(refine.engine)
    pipeline.require_available(spec)
    if spec.kind != "iterative":
        raise UsageError(
            f"--refine {refine}: {spec.name!r} is a {spec.kind} generator; refining needs an iterative one"
        )
    pipeline.check_warm_start(spec)
    if refine.iterations is not None and "iterations" not in spec.options:
        raise UsageError(f"--refine {refine}: {spec.name} has no 'iterations' option; give the engine alone")
    return spec


def engine_options(spec, refine: Refine, given: dict | None = None) -> dict:
    """The engine's resolved options: `given` (e.g. from --option) with the iterations of `refine`."""
    options = dict(given or {})
    if refine.iterations is not None:
        options["iterations"] = refine.iterations
    return spec.resolve_options(options)


def start_object(obj, weights, positions, probe, diffraction, mask=None) -> np.ndarray:
    """A learned row's stitched object made into an engine's start (H, W) complex64.

    Scaled by the least-squares factor that makes its forward amplitudes fit the measured ones
    (the learned object's scale is only as good as its network's); the pixels the stitcher left
    uncovered (weight 0) get the covered pixels' mean value. No ground truth is used.
    """
    import numpy as np  # lazy: CompareRequest (the light CLI) imports this module

    from ptycho_core import physics  # lazy: the same (it imports numpy)

    obj = np.asarray(obj, dtype=np.complex64)
    covered = np.asarray(weights) > 0
    if covered.any():
        obj = np.where(covered, obj, obj[covered].mean())
    measured = np.asarray(diffraction, dtype=np.float32)
    model = physics.forward(probe, physics.extract(obj, np.asarray(positions).reshape(-1, 2), measured.shape[-1]))
    valid = np.ones(measured.shape, bool) if mask is None else np.broadcast_to(np.asarray(mask, bool), measured.shape)
    # sums, not BLAS dot products: a start costs the same on a loaded machine
    energy = float(np.sum(np.square(model[valid], dtype=np.float64)))
    scale = float(np.sum(model[valid] * measured[valid], dtype=np.float64)) / energy if energy > 0 else 0.0
    if np.isfinite(scale) and scale > 0:
        obj = obj * np.float32(scale)
    return np.ascontiguousarray(obj, dtype=np.complex64)


def refine_patches(spec, options, patches, ds, config, stitcher="probe_weighted", stitch_options=None, **kwargs):
    """Stitch a learned row's patches (n, N, N) on `ds`'s object grid, make the start and run the
    engine from it with the data's probe. Returns (generator, estimate, {"stitch_seconds",
    "refine_seconds", "start"}): the seconds of the stitching and the start, of the engine's run,
    and the initial object; `kwargs`: `pipeline.reconstruct_scan`'s `progress` and
    `snapshot_iterations`, and `registry` for a stitcher given by name."""
    from ptycho_core import pipeline, stitch  # lazy: CompareRequest (the light CLI) imports this module; numpy

    registry = kwargs.pop("registry", None)
    t0 = time.perf_counter()
    shape, positions, _ = pipeline.object_grid(ds)
    obj, weights = stitch.stitch(
        stitcher, patches, positions, shape, ds.probe, registry=registry, **(stitch_options or {})
    )
    start = start_object(obj, weights, positions, ds.probe, ds.diffraction, ds.mask)
    stitch_seconds = time.perf_counter() - t0
    generator, estimate, seconds = pipeline.reconstruct_scan(
        spec, options, ds, config, start=(start, ds.probe), **kwargs
    )
    return generator, estimate, {"stitch_seconds": stitch_seconds, "refine_seconds": seconds, "start": start}
