"""What this process is and runs on: the git commit of the sources and the peak memory.

Used by the comparison's provenance (`harness.provenance`), the child's run record
(`harness.worker`) and the results database's lone runs (`results.entries`). Standard library only.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def git_sha() -> str | None:
    """The git commit of the ptycho_core sources, when they sit in a git checkout ("-dirty" when
    tracked files changed)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    if out.returncode != 0 or not sha:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    return sha + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def peak_rss_mib() -> float | None:
    """This process's peak resident memory in MiB (`resource.getrusage`: kilobytes on Linux,
    bytes on macOS); None where the platform does not tell."""
    try:
        import resource  # lazy: Unix only
    except ImportError:  # pragma: no cover - not on Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024
