"""A run as plain data (docs/design.md#scaling, executors): what one (generator, seed) needs to run
anywhere, and nothing that needs the parent's objects.

`RunSpec` carries the worker's job (`harness.worker.main`: factory string, spec record, options,
TrainConfig dict, the staged data folder, the run's folders, its hash, seed), the environment
variables its framework asks for (`GeneratorSpec.child_env`) and nothing else: the thread budget
is decided where it runs. `to_dict`/`from_dict` round-trip through JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ptycho_core import rundir
from ptycho_core.registry import spec_as_dict


@dataclass(frozen=True)
class RunSpec:
    """One run: its folder name, input hash, the worker's job (without "threads") and `child_env`."""

    name: str
    hash: str
    job: dict
    child_env: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "hash": self.hash, "job": dict(self.job), "child_env": dict(self.child_env)}

    @classmethod
    def from_dict(cls, data: dict) -> RunSpec:
        return cls(name=data["name"], hash=data["hash"], job=dict(data["job"]), child_env=dict(data["child_env"]))


def run_spec(plan, layout: rundir.Layout) -> RunSpec:
    """The RunSpec of a `harness.plan.RunPlan` whose folders are under `layout` (absolute paths)."""
    job = {
        "name": plan.name,
        "spec": spec_as_dict(plan.spec),
        "options": plan.options,
        "train_config": plan.config.to_dict(),
        "data_dir": str(layout.data_dir.resolve()),
        "partial_dir": str(layout.partial_dir(plan.name).resolve()),
        "run_dir": str(layout.run_dir(plan.name).resolve()),
        "hash": plan.hash,
        "meta": {"seed": plan.seed, "label": plan.label},
    }
    return RunSpec(name=plan.name, hash=plan.hash, job=job, child_env=dict(plan.spec.child_env))
