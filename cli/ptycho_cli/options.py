"""Shared click options: the training options, derived from TrainConfig, and `--option` parsing."""

from __future__ import annotations

import functools

import click

from ptycho_core.errors import UsageError
from ptycho_core.generator import train_settings


def _click_type(setting):
    if setting.choices:
        return click.Choice(setting.choices)
    kind = {"int": int, "float": float, "str": str}[setting.type]
    if setting.low is None and setting.high is None:
        return kind
    ranged = click.IntRange if kind is int else click.FloatRange
    return ranged(setting.low, setting.high)


def train_config_options(func):
    """One click option per TrainConfig field (name, type, range, help from TrainConfig itself).

    Every option defaults to None (not given), so that a generator's `train_defaults` apply
    unless the user sets the value; keyword arguments arrive named like the options
    (`train_timeout` for TrainConfig.timeout): turn them into fields with
    `ptycho_core.generator.train_fields`.
    """
    decorators = [
        click.option(
            s.flag,
            s.name,
            default=None,
            type=_click_type(s),
            help=f"{s.help} [default: {s.default}, or the generator's own]",
        )
        for s in train_settings()
    ]
    return functools.reduce(lambda f, dec: dec(f), reversed(decorators), func)


def parse_options(raw: tuple[str, ...] | list[str], flag: str = "--option") -> dict[str, str]:
    """`("key=value", ...)` -> {key: "value"}; typing happens against the spec's declared Options
    (or, for `--sim`, SimConfig's fields). A malformed item is a UsageError naming `flag`."""
    out = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _max_memory(ctx: click.Context, _param, value):
    """`--max-memory SIZE`: checked, then exported as PTYCHO_MAX_MEMORY for this command (the
    loaders and the command's child processes read it); the old value comes back afterwards."""
    if value is None:
        return None
    import os

    from ptycho_core.io import limits

    try:
        limits.parse_size(value, "--max-memory")
    except UsageError as exc:
        raise click.BadParameter(str(exc).partition(": ")[2], ctx=ctx) from None
    old = os.environ.get(limits.ENV)
    os.environ[limits.ENV] = value
    ctx.call_on_close(
        lambda: os.environ.__setitem__(limits.ENV, old) if old is not None else os.environ.pop(limits.ENV)
    )
    return value


def data_file_options(func):
    """`--loader NAME`, `--probe FILE` and `--max-memory SIZE`: how every data file of the command is read."""
    func = click.option(
        "--max-memory",
        default=None,
        metavar="SIZE",
        expose_value=False,
        is_eager=True,
        callback=_max_memory,
        help="Largest array a data file may declare (8G, 512M, 25% of available memory; default 50% of "
        "available memory, or PTYCHO_MAX_MEMORY): a file declaring more is refused before it is read.",
    )(func)
    func = click.option(
        "--probe",
        "probe_file",
        default=None,
        metavar="FILE",
        help="Probe to use with data files that carry none (CXI): a .npy array or any dataset file.",
    )(func)
    return click.option(
        "--loader",
        default=None,
        metavar="NAME",
        help="Read the data with this loader (ptycho list-loaders) instead of the one chosen by the file suffix.",
    )(func)


def data_file(path, loader, probe_file):
    """`path` as given, or a `DataFile` when `--loader` or `--probe` says how to read it."""
    if path is None or (loader is None and probe_file is None):
        return path
    from ptycho_core.io import DataFile

    return DataFile(str(path), loader=loader, probe=probe_file)
