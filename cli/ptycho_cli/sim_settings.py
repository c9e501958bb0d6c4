"""`--sim KEY=VALUE` settings of `ptycho simulate` and `ptycho compare`: one parser for both.

Imported only inside the commands (it pulls numpy through ptycho_core.simulate).
"""

from __future__ import annotations

from ptycho_cli.options import parse_options


def sim_config(items, object_kind: str | None = None, **named):
    """DEFAULT_SIM with the named settings (None = not given) and then the `--sim` items applied."""
    from ptycho_core.simulate import DEFAULT_SIM

    given = {"object": object_kind, **named}
    cfg = DEFAULT_SIM.replace(**{k: v for k, v in given.items() if v is not None})
    return cfg.with_strings(parse_options(items, flag="--sim"))
