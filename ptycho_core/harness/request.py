"""What a comparison is asked to do (`CompareRequest`) and what it returns (`CompareResult`)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ptycho_core.generator import train_fields, train_settings
from ptycho_core.harness.executors import EXECUTORS
from ptycho_core.rundir import Row, Summary
from ptycho_core.settings import check_fields, declared, setting
from ptycho_core.torch.settings import SETTINGS as TORCH_SETTINGS

DEFAULT_OUT = "ptycho-compare"
#: Gridsize of `ptycho compare` by default: 2, so that every physics-informed generator trains
#: with the overlap constraint (at the same cost per epoch as gridsize 1: an epoch draws
#: ceil(groups / 4) groups); measured to beat gridsize 1 at equal wall-clock time (README).
DEFAULT_GRIDSIZE = 2
DEFAULT_STITCHER = "probe_weighted"
SIMULATIONS = ("lines", "grf")


@dataclass
class CompareRequest:
    """A comparison: which generators, on which data, with which budget, written where.

    generators: names (or `dist:name`), a comma-separated string, or None for every available
        generator (the unavailable ones are listed as skipped).
    data / test_data: dataset files (or `Dataset` objects). With `data` alone, the scan is split
        along x at the median with an N/2 guard band (`ptycho_core.data.spatial_split`).
    simulate: "lines", "grf" or a `SimConfig`; the default when no data is given is DEFAULT_SIM.
    train: the explicit TrainConfig values by field name ({"epochs": 3, "timeout": 60}) and
        engine settings by name ({"precision": "bf16"}, checked against each generator's engine); for
        each generator they win over its plugin's `train_defaults`, which win over TrainConfig's
        defaults. train["seed"] seeds the grouping, the split and the first run; seeds: runs per
        generator (seed, seed+1, ...).
    options: {"NAME": {"key": value}} or ["NAME.key=value", ...], typed by the declared Options;
        NAME may also be the stitcher's name.
    jobs: children at once (threads per child = CPU cores / jobs); timeout: seconds per run
        (0: none) after which its child is killed (the hard limit; train["timeout"] is the
        graceful training budget); out: output folder; force: redo every run.
    db: the results database (a SQLAlchemy URL or a SQLite file; default PTYCHO_DB, else the
        user's data folder) where the finished comparison is recorded (`ptycho_core.results`).
    executor: "local" (spawned children here) or "dask" (`harness.executors`); scheduler: the
        address of a running Dask scheduler (None with "dask": a LocalCluster on this machine,
        `jobs` workers when jobs > 1, else one per core).
    grid: a sweep's option grid {"NAME": {"key": [value, ...]}} (`harness.sweep`): one row per
        combination, named `NAME[key=value,...]`; None for a plain comparison.
    """

    generators: Sequence[str] | str | None = None
    data: Any = None
    test_data: Any = None
    simulate: Any = None
    gridsize: int = setting(DEFAULT_GRIDSIZE, "Patterns per group: gridsize**2.", min=1, max=4)
    train: dict = field(default_factory=dict)
    seeds: int = setting(
        1, "Runs per generator (seeds SEED, SEED+1, ...); the table shows mean ± std.", min=1, max=1000
    )
    stitcher: str = setting(DEFAULT_STITCHER, "Stitcher for every model.")
    options: Mapping[str, Mapping[str, Any]] | Iterable[str] | None = None
    jobs: int = setting(
        1,
        "Runs at once, each in its own process (threads per run = CPU cores / jobs). With --executor dask "
        "and no --scheduler: the worker processes of the LocalCluster (default: one per core).",
        min=1,
        max=1024,
        short="-j",
    )
    timeout: float = setting(
        0.0,
        "Hard limit: seconds per run (from its process's start) before the process is killed and the run "
        "counts as failed (0: no limit). The graceful training budget is --train-timeout.",
        min=0.0,
    )
    out: str | os.PathLike = DEFAULT_OUT
    force: bool = False
    command_line: Sequence[str] | None = None
    db: str | None = None
    executor: str = setting(
        "local",
        "Where the runs run: local = spawned processes here; dask = one task per run on a Dask cluster.",
        choices=EXECUTORS,
    )
    scheduler: str | None = None
    grid: Mapping[str, Mapping[str, Sequence[Any]]] | None = None

    @classmethod
    def from_settings(cls, generators=None, **settings) -> CompareRequest:
        """A request from flat keyword arguments, named as on the command line: the request's
        own fields plus every training option (`epochs`, `lr`, ..., `train_timeout`) and every
        engine setting (`precision`, `compile`)."""
        own = {f.name for f in fields(cls)} - {"train"}
        train_names = {s.name for s in train_settings()} | {s.name for s in TORCH_SETTINGS}
        unknown = sorted(set(settings) - own - train_names)
        if unknown:
            raise TypeError(f"unknown compare setting(s): {', '.join(unknown)}")
        train = train_fields({k: v for k, v in settings.items() if k in train_names}, TORCH_SETTINGS)
        return cls(generators=generators, train=train, **{k: v for k, v in settings.items() if k in own})

    def check(self) -> None:
        """Usage errors that need no registry and no data: every declared setting (`compare_settings`)
        typed and in range."""
        check_fields(self, prefix="--")


def compare_settings() -> list:
    """The declared settings of a comparison (gridsize, seeds, stitcher, jobs, timeout, executor):
    `ptycho compare` and `ptycho sweep` build their options from these."""
    return declared(CompareRequest)


#: Exit code of a comparison interrupted by Ctrl-C (after its report is written): 128 + SIGINT.
INTERRUPTED_EXIT = 130


@dataclass
class CompareResult:
    """What a comparison produced.

    rows: one `rundir.Summary` per generator (mean and std over seeds when seeds > 1, as in
    metrics.csv; read like a dict: `rows[0]["amp_ssim"]`); runs: one `rundir.Row` per
    (generator, seed); skipped: generators not run, with the reason; exit_code: 0 all succeeded,
    1 any failed, 130 interrupted (Ctrl-C; the report is written).
    """

    out_dir: Path
    rows: list[Summary]
    runs: list[Row]
    skipped: list[dict]
    report: Path
    exit_code: int
    seeds: int = 1
    provenance: dict = field(default_factory=dict)

    @property
    def failed(self) -> list:
        return [r for r in self.runs if not r.ok]
