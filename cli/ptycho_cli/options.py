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
