"""One probe for everyone, refined once (issue 21): which probe each row of a comparison uses.

Data that ptycho simulated with its exact probe (`data.probe_is_exact`) keep that probe for every row.
On measured data (anything else: a loaded scan, a `--probe` file, cropped or binned patterns) a
probe guess is never exact, so

- every iterative row refines the probe by default (its option `refine_probe`, unless the user
  set it), starting from the data's probe, and scores with its own final probe;
- the learned rows all get one probe: the refined probe of the source row (`--probe-from ROW`;
  default lsqml when it is compared, else the first iterative row). The iterative rows run first,
  then the data is staged again with that probe (`DIR/data-probe/`) for the learned rows: their
  physics loss, stitching weights and scores use it.

Every run records which probe it used (`run.json` `probe_source`: "data", "refined" or
"<ROW> (refined)"); the report's provenance holds the decision (`ProbePlan.as_dict`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ptycho_core import rundir
from ptycho_core.errors import UsageError
from ptycho_core.harness.plan import parse_option_args

#: The folder (under the comparison's) of the data staged with the source row's probe.
PROBE_DATA_DIR = "data-probe"

#: `--probe-from data`: every row keeps the data's probe.
DATA = "data"


@dataclass
class ProbePlan:
    """refine: iterative rows refine the probe by default; source: the row whose final probe the
    learned rows get (None: the data's); reason: one line for the report."""

    refine: bool
    source: str | None
    reason: str

    def as_dict(self) -> dict:
        return {"policy": "refined" if self.refine else "data", "from": self.source, "reason": self.reason}


def decide(probe_from: str | None, specs: list, exact: bool, registry) -> ProbePlan:
    """The ProbePlan for these specs; `--probe-from` naming an iterative generator that is not
    compared adds it to `specs` (in place). UsageError for a learned or unknown ROW."""
    if probe_from == DATA:
        return ProbePlan(False, None, "--probe-from data: every row uses the data's probe")
    iterative = [s for s in specs if s.kind == "iterative"]
    if probe_from is not None:
        spec = registry.generator(probe_from)
        if spec.kind != "iterative":
            raise UsageError(f"--probe-from {probe_from}: {spec.name} is {spec.kind}; name an iterative generator")
        if not spec.available:
            raise UsageError(f"--probe-from {probe_from}: {spec.name} is {spec.status()}")
        if spec not in specs:
            specs.append(spec)
        return ProbePlan(True, spec.name, f"--probe-from {spec.name}: its refined probe for every learned row")
    if exact:
        return ProbePlan(False, None, "simulated with this probe: every row uses the data's (exact) probe")
    learned = any(s.kind == "learned" for s in specs)
    if not iterative:
        reason = "measured data but no iterative row to refine the probe: every row uses the data's probe"
        return ProbePlan(False, None, reason + (" (add --probe-from lsqml)" if learned else ""))
    source = next((s for s in iterative if s.name == "lsqml"), iterative[0]).name
    return ProbePlan(True, source, f"measured data: iterative rows refine the probe; learned rows use {source}'s")


def explicit_options(options, grid=None) -> dict:
    """{generator name: set of option keys the user gave} from a CompareRequest's `options` and
    its sweep `grid` (an axis the user sweeps is the user's)."""
    out: dict = {}
    given = {} if options is None else options if isinstance(options, Mapping) else parse_option_args(options)
    for source in (given, grid or {}):
        for name, values in source.items():
            out.setdefault(str(name), set()).update(values)
    return out


def apply_refine(plans, probe_plan: ProbePlan, explicit: dict) -> None:
    """Turn on `refine_probe` for the iterative plans that declare it, unless the user set it."""
    if not probe_plan.refine:
        return
    for p in plans:
        if p.spec.kind != "iterative" or "refine_probe" not in p.spec.options:
            continue
        given = explicit.get(p.spec.name, set()) | explicit.get(p.spec.qualified_name, set())
        if "refine_probe" not in given:
            p.options = {**p.options, "refine_probe": True}


def source_probe(layout, probe_plan: ProbePlan, plans):
    """(probe array or None, label) from the source row's finished folder (`probe.npy`)."""
    import numpy as np  # lazy: loaded when listing (planning); the target imports numpy

    if probe_plan.source is None:
        return None, DATA
    run = next((p for p in plans if p.spec.name == probe_plan.source), None)
    path = None if run is None else layout.run_dir(run.name) / rundir.PROBE_NPY
    if path is None or not path.is_file():
        probe_plan.reason += f"; {probe_plan.source} did not finish, so the learned rows use the data's probe"
        return None, DATA
    record = rundir.RunRecord.read(layout.run_dir(run.name))
    refined = record is not None and record.probe_source == "refined"
    return np.load(path, allow_pickle=False), f"{run.name} ({'refined' if refined else 'not refined'})"
