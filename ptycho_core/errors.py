"""The one error type users can cause.

Anything raised as `PtychoError` (or a subclass) is turned by the CLI into a one-line message
and exit code 2. Everything else is a bug and stays a traceback.
"""


class PtychoError(Exception):
    """A problem the user can fix: bad data, bad usage, an unavailable plugin."""


class DataError(PtychoError):
    """A dataset violates the units and shapes contract (DESIGN section 3)."""


class PluginError(PtychoError):
    """A plugin could not be discovered, registered or resolved."""


class UsageError(PtychoError):
    """Bad options or arguments, detected before any work starts."""
