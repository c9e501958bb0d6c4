"""The local executor: every run in its own spawned child on this machine, `jobs` at a time,
`cores / jobs` threads each (docs/design.md#compare; `harness.supervise` does the work)."""

from __future__ import annotations

from ptycho_core.harness import events as ev
from ptycho_core.harness import supervise


class LocalExecutor:
    """Spawned children of this process (the default executor)."""

    name = "local"

    def __init__(self, jobs: int = 1):
        self.jobs = jobs
        self.threads = max(1, supervise.usable_cpus() // jobs)

    def run(self, runs, layout, *, timeout: float = 0.0, on_event=ev.ignore) -> dict:
        return supervise.run_children(
            runs, layout, jobs=self.jobs, threads=self.threads, timeout=timeout, on_event=on_event
        )

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
