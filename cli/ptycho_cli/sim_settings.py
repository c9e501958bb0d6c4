"""`--sim KEY=VALUE` settings of `ptycho simulate` and `ptycho compare`: one parser for both.

Imported only inside the commands (it pulls numpy through ptycho_core.simulate).
"""

from __future__ import annotations

from ptycho_core.errors import UsageError


def parse_settings(items) -> dict[str, str]:
    """["key=value", ...] -> {key: value}; a malformed item is a UsageError."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--sim expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def sim_config(items, object_kind: str | None = None, **named):
    """DEFAULT_SIM with the named settings (None = not given) and then the `--sim` items applied."""
    from ptycho_core.simulate import DEFAULT_SIM

    given = {"object": object_kind, **named}
    cfg = DEFAULT_SIM.replace(**{k: v for k, v in given.items() if v is not None})
    return cfg.with_strings(parse_settings(items))
