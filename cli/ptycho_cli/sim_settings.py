"""`--sim KEY=VALUE` settings of `ptycho simulate` and `ptycho compare`: one parser for both.

Standard library and click only (SimConfig is declared in the light `ptycho_core.simconfig`).
"""

from __future__ import annotations

from ptycho_cli.options import parse_options


def sim_config(items, **named):
    """DEFAULT_SIM with the named settings (by SimConfig field; None = not given) and the `--sim`
    items applied, all parsed by SimConfig's declared Settings (UsageError on a bad value)."""
    from ptycho_core.simconfig import DEFAULT_SIM

    given = {**{k: v for k, v in named.items() if v is not None}, **parse_options(items, flag="--sim")}
    return DEFAULT_SIM.with_strings(given)
