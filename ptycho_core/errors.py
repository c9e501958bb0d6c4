"""The one error type users can cause.

Anything raised as `PtychoError` (or a subclass) is turned by the CLI into a one-line message
and exit code 2. Everything else is a bug and stays a traceback.
"""


class PtychoError(Exception):
    """A problem the user can fix: bad data, bad usage, an unavailable plugin."""


class DataError(PtychoError):
    """A dataset violates the units and shapes contract (docs/design.md#dataset)."""


class PluginError(PtychoError):
    """A plugin could not be discovered, registered or resolved."""


class UsageError(PtychoError):
    """Bad options or arguments, detected before any work starts."""


class RunFailed(Exception):
    """A run that ended without a usable result (the message is the row's reason). Not a
    PtychoError: the compare worker raises it for a run's own failure (non-finite loss or output)."""


def failure_reason(exc: BaseException) -> str:
    """One line saying why a run failed (a usage error: its message alone); used by the compare
    worker, the scorer and `ptycho train`'s run database record."""
    if isinstance(exc, UsageError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return f"out of memory (MemoryError{': ' + str(exc) if str(exc) else ''})"
    if isinstance(exc, RunFailed):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
