"""Faults in the middle of a comparison, with real processes: the results database server stopped
(`pg_ctl stop -m immediate`), the output disk full while a run writes, the parent `ptycho compare`
SIGKILLed. Each must leave the run folders and the database consistent (no DONE without its
files, every finished comparison recorded once: `ptycho_core.testing.consistency`), and the same
command run again must complete. A Dask worker killed under its task: tests/test_executors.py.

The comparisons are of the numpy dummies (`python -m ptycho_core.testing.cli`), a few seconds each.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from postgres_server import postgres_cluster, server_bin

from ptycho_core.testing.consistency import database_problems, folder_problems

pytestmark = pytest.mark.slow

TINY = ["--sim", "patch_size=16", "--sim", "object_size=48", "--sim", "step=4", "--sim", "train_objects=1"]


def _compare(out, db, generators, *extra) -> list[str]:
    command = [sys.executable, "-m", "ptycho_core.testing.cli", "compare", "-g", ",".join(generators), *TINY]
    return [*command, "--epochs", "1", "--out", str(out), "--db", str(db), *map(str, extra)]


def _run(command, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def _wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the comparison ended (exit {proc.returncode}) before {what}: {out}{err}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _missing(what: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing (make install installs it)")
    pytest.skip(f"{what} is missing (make install installs it)")


def test_a_results_server_stopped_mid_comparison_is_a_warning_and_the_rerun_records_it_once(tmp_path):
    bin_dir = server_bin()
    if bin_dir is None:
        _missing("the PostgreSQL server (Debian package postgresql)")
    out = tmp_path / "cmp"
    with postgres_cluster(bin_dir) as server:
        command = _compare(out, server.url, ["dummy_intensity", "dummy_sleeping"], "-o", "dummy_sleeping.seconds=3")
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for(lambda: (out / "runs" / ".dummy_sleeping.partial").is_dir(), proc, "the runs started")
        server.stop("immediate")
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stdout + stderr
        assert "warning: not recorded in the results database" in stdout + stderr
        assert "Traceback" not in stdout + stderr
        assert folder_problems(out) == []
        assert all((out / "runs" / name / "DONE").is_file() for name in ("dummy_intensity", "dummy_sleeping"))

        server.start()
        again = _run(command)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "dummy_sleeping: reusing runs/dummy_sleeping" in again.stdout
        assert "recorded as comparison" in again.stdout
        assert database_problems(server.url, [out]) == []
        # Once more, every run reused: the same comparison, recorded once still.
        assert _run(command).returncode == 0
        assert database_problems(server.url, [out]) == []


def test_the_parent_sigkilled_mid_comparison_leaves_finished_runs_and_the_rerun_completes(tmp_path):
    out, db = tmp_path / "cmp", tmp_path / "results.db"
    generators = ["dummy_intensity", "dummy_supervised", "dummy_sleeping"]
    command = _compare(out, db, generators, "-o", "dummy_sleeping.seconds=30", "--jobs", "2")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for(lambda: (out / "runs" / "dummy_intensity" / "DONE").is_file(), proc, "the first run finished")
    _wait_for(lambda: (out / "runs" / ".dummy_sleeping.partial").is_dir(), proc, "the sleeping run started")
    children = _children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    _wait_gone(children)  # the children die with their parent (PR_SET_PDEATHSIG), not orphaned
    assert folder_problems(out, finished=False) == []
    assert not (out / "metrics.json").exists() and not (out / "runs" / "dummy_sleeping").exists()
    assert database_problems(db, []) == [] and not _recorded(db)

    stale = out / "runs" / "dummy_intensity" / f".metrics.json.tmp{_dead_pid()}"  # a scorer killed mid-write
    stale.write_text("{")
    rerun = _compare(out, db, generators, "-o", "dummy_sleeping.seconds=0")
    finished = _run(rerun)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "dummy_intensity: reusing runs/dummy_intensity" in finished.stdout
    assert not list((out / "runs").glob(".*.partial")) and not stale.exists()
    assert folder_problems(out) == []
    assert database_problems(db, [out]) == []


def test_a_full_output_disk_fails_the_run_in_one_line_and_the_rerun_completes(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    reason = _mount_tmpfs(mount, "16m")
    if reason:
        pytest.skip(f"no small disk to fill: {reason}")
    try:
        out, db = mount / "cmp", tmp_path / "results.db"
        command = _compare(out, db, ["dummy_sleeping"], "-o", "dummy_sleeping.seconds=2")
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for(lambda: (out / "runs" / ".dummy_sleeping.partial").is_dir(), proc, "the run started")
        filler = mount / "filler"
        _fill(filler)
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 2, stdout + stderr
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "No space left on device" in errors[0], stderr
        assert "Traceback" not in stdout + stderr
        assert not list(out.rglob("DONE")) and not list(out.rglob(".DONE.tmp*"))
        assert folder_problems(out) == []
        assert not _recorded(db)

        filler.unlink()
        again = _run(command)
        assert again.returncode == 0, again.stdout + again.stderr
        assert (out / "runs" / "dummy_sleeping" / "DONE").is_file()
        assert folder_problems(out) == []
        assert database_problems(db, [out]) == []
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def test_only_the_temporaries_of_dead_writers_are_removed(tmp_path):
    from ptycho_core import rundir

    dead = tmp_path / "runs" / "a" / f".run.json.tmp{_dead_pid()}"
    dead.parent.mkdir(parents=True)
    dead.write_text("{")
    live = tmp_path / f".metrics.json.tmp{os.getpid()}"
    live.write_text("{")
    assert rundir.remove_stale_temporaries(tmp_path) == [dead]
    assert live.exists() and not dead.exists()


def _dead_pid() -> int:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def _mount_tmpfs(where: Path, size: str) -> str:
    """Mount a tmpfs of `size` at `where`; '' on success, else why not."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return "" if done.returncode == 0 else f"mount -t tmpfs failed ({done.stderr.decode().strip()})"


def _fill(path: Path) -> None:
    """Write zeros to `path` until the disk is full (unbuffered, down to single bytes)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 16, 4096, 512, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                continue
    finally:
        os.close(fd)


def _children(pid: int) -> list:
    import psutil

    return psutil.Process(pid).children(recursive=True)


def _wait_gone(processes, timeout: float = 30) -> None:
    import psutil

    _, alive = psutil.wait_procs(processes, timeout=timeout)
    assert not alive, f"children outlived their SIGKILLed parent: {alive}"


def _recorded(db: Path) -> int:
    import sqlalchemy as sa

    from ptycho_core.results.schema import tables
    from ptycho_core.results.store import Store

    if not Path(db).exists():
        return 0
    with Store.open(db) as store, store.transaction() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(tables().comparisons)).scalar()
