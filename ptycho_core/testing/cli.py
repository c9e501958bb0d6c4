"""`python -m ptycho_core.testing.cli ARGS`: the `ptycho` command with the numpy dummies of
`ptycho_core.testing.dummies` registered (and no other plugin), for tests and benchmarks that need
real processes (a parent to SIGKILL, a database that stops, a disk that fills up) in seconds."""

from __future__ import annotations

from ptycho_cli.main import State, cli
from ptycho_core.plugins import PluginHost
from ptycho_core.testing import dummies


def main(argv=None) -> None:
    """Run the CLI (exits with its exit code)."""
    host = PluginHost(load="")
    host.register(dummies, "ptycho-dummies")
    cli.main(args=argv, prog_name="ptycho", obj=State(host=host))


if __name__ == "__main__":
    main()
