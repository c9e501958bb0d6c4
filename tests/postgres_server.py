"""A throwaway PostgreSQL server for tests: Debian's server binaries (`make install` installs the
`postgresql` package), a data folder in a fresh temporary folder, a free loopback port and a unix
socket folder beside it; stopped and deleted afterwards.

PostgreSQL refuses to run as root: as root the folder belongs to the `postgres` system user (made
by the Debian package) and initdb / pg_ctl run through `runuser -u postgres --`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def server_bin() -> Path | None:
    """The newest installed /usr/lib/postgresql/<version>/bin holding initdb and pg_ctl."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class Cluster:
    """A running throwaway server: its URL, and `stop` / `start` for tests that take it away."""

    url: str
    data: Path
    log: Path
    bin_dir: Path
    options: str

    def _pg_ctl(self, *args: str, check: bool = True):
        command = [*_as_server_user(), str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *args]
        return subprocess.run(command, check=check, capture_output=True, timeout=120)

    def start(self) -> None:
        self._pg_ctl("-o", self.options, "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "immediate", check: bool = True) -> None:
        """`pg_ctl stop -m immediate`: the server quits at once, as if it had crashed."""
        self._pg_ctl("-m", mode, "-w", "stop", check=check)


@contextlib.contextmanager
def postgres_cluster(bin_dir: Path) -> Iterator[Cluster]:
    """Start a server; yield its `Cluster` (psycopg 3 URL, trust auth on loopback only)."""
    top = Path(tempfile.mkdtemp(prefix="ptycho-pg-"))
    data, log = top / "data", top / "server.log"
    if os.geteuid() == 0:
        shutil.chown(top, "postgres", "postgres")
    port = _free_port()
    options = f"-p {port} -k {top} -c listen_addresses=127.0.0.1 -c fsync=off"
    cluster = Cluster(f"postgresql+psycopg://ptycho@127.0.0.1:{port}/postgres", data, log, bin_dir, options)
    try:
        subprocess.run(
            [*_as_server_user(), str(bin_dir / "initdb"), "-D", str(data), "-U", "ptycho", "--auth=trust", "-E", "UTF8"]
            + ["--no-sync"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop(check=False)
    except subprocess.CalledProcessError as exc:
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr.decode(errors='replace')}{tail}") from None
    finally:
        shutil.rmtree(top, ignore_errors=True)


@contextlib.contextmanager
def postgres_server(bin_dir: Path) -> Iterator[str]:
    """Start a server; yield its SQLAlchemy URL (psycopg 3 driver, trust auth on loopback only)."""
    with postgres_cluster(bin_dir) as cluster:
        yield cluster.url
