"""The `ptycho` command: a thin click shell over ptycho_core.

Commands live in small modules that are imported only when their command is looked up, and
import nothing heavier than click at module level (docs/design.md#layers: listing plugins must not
import numpy, torch or TensorFlow). Errors users can cause (`PtychoError`, and click's usage errors
for a bad flag or value) become one line on stderr and exit code 2.
"""

from __future__ import annotations

import errno
import importlib
import sys

import click

from ptycho_core import __version__
from ptycho_core.errors import PtychoError

#: command name -> "module:attribute" of its click command, in help order.
COMMANDS = {
    "list-generators": "ptycho_cli.listing:list_generators",
    "list-loaders": "ptycho_cli.listing:list_loaders",
    "list-stitchers": "ptycho_cli.listing:list_stitchers",
    "plugins": "ptycho_cli.listing:plugins",
    "describe": "ptycho_cli.listing:describe",
    "simulate": "ptycho_cli.data_commands:simulate",
    "inspect": "ptycho_cli.data_commands:inspect",
    "convert": "ptycho_cli.convert_command:convert",
    "train": "ptycho_cli.model_commands:train",
    "reconstruct": "ptycho_cli.model_commands:reconstruct",
    "compare": "ptycho_cli.compare_command:compare",
    "results": "ptycho_cli.results_command:results",
    "sweep": "ptycho_cli.sweep_command:sweep",
    "new-plugin": "ptycho_cli.scaffold:new_plugin",
}


#: errno values of a full or read-only disk: the user can fix them, so one line and exit 2.
_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


class CommandError(click.ClickException):
    """A user-caused error: printed as one line, exit code 2."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"error: {self.format_message()}", err=True)


class State:
    """Per-invocation state: the plugin host, created on first use.

    Tests pass `obj=State(host=PluginHost(...))` to `CliRunner.invoke` to control discovery.
    """

    def __init__(self, host=None):
        self._host = host

    @property
    def host(self):
        if self._host is None:
            from ptycho_core.plugins import PluginHost

            self._host = PluginHost.from_environment()
        return self._host

    def registry(self):
        return self.host.registry()


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # command not built in this version
                return None
            raise
        return getattr(module, attr)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PtychoError as exc:
            raise CommandError(str(exc)) from None
        except click.UsageError as exc:  # a bad flag or value: one line too, not usage + hint + error
            command = f"{exc.ctx.info_name}: " if exc.ctx is not None and exc.ctx is not ctx else ""
            raise CommandError(command + exc.format_message()) from None
        except OSError as exc:
            if exc.errno not in _DISK_ERRORS:
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            raise CommandError(
                f"{where}{exc.strerror}: free space (or write elsewhere) and run the command again; "
                "a comparison resumes with the runs that finished"
            ) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ptycho")
@click.pass_context
def cli(ctx):
    """ptycho: train ptychography reconstruction networks on the same data and compare them.

    \b
    Quick start:
      ptycho list-generators          what is installed
      ptycho compare                  every available generator on the default simulated data
      ptycho describe fno             a generator's options
    """
    if ctx.obj is None:
        ctx.obj = State()


def main(argv=None):
    """Console-script entry point."""
    return cli.main(args=argv, prog_name="ptycho")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
