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


@contextlib.contextmanager
def postgres_server(bin_dir: Path) -> Iterator[str]:
    """Start a server; yield its SQLAlchemy URL (psycopg 3 driver, trust auth on loopback only)."""
    top = Path(tempfile.mkdtemp(prefix="ptycho-pg-"))
    data, log = top / "data", top / "server.log"
    if os.geteuid() == 0:
        shutil.chown(top, "postgres", "postgres")
    run = _as_server_user()
    port = _free_port()
    try:
        subprocess.run(
            [*run, str(bin_dir / "initdb"), "-D", str(data), "-U", "ptycho", "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        options = f"-p {port} -k {top} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [*run, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        try:
            yield f"postgresql+psycopg://ptycho@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(
                [*run, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
            )
    except subprocess.CalledProcessError as exc:
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr.decode(errors='replace')}{tail}") from None
    finally:
        shutil.rmtree(top, ignore_errors=True)
