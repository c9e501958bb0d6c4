"""Shared click options: the training budget (TrainConfig fields) and `--option key=value` parsing."""

from __future__ import annotations

import dataclasses
import functools

import click

from ptycho_core.errors import UsageError
from ptycho_core.generator import DEVICES, LOSSES, PRECISIONS, TrainConfig

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def train_config_options(func):
    """Add one click option per TrainConfig field; they arrive as keyword arguments named like the fields."""
    d = _DEFAULTS
    decorators = [
        click.option("--epochs", default=d["epochs"], show_default=True, type=click.IntRange(1), help="Training epochs."),
        click.option("--batch-size", default=d["batch_size"], show_default=True, type=click.IntRange(1),
                     help="Groups per training step."),
        click.option("--lr", default=d["lr"], show_default=True, type=float, help="Initial learning rate."),
        click.option("--loss", default=d["loss"], show_default=True, type=click.Choice(LOSSES),
                     help="Poisson NLL or amplitude MAE (PINNs); supervised generators use their own."),
        click.option("--seed", default=d["seed"], show_default=True, type=int, help="Seed for grouping, split and weights."),
        click.option("--device", default=d["device"], show_default=True, type=click.Choice(DEVICES), help="Device."),
        click.option("--precision", default=d["precision"], show_default=True, type=click.Choice(PRECISIONS),
                     help="bf16 autocast for the network; physics stays float32."),
        click.option("--val-fraction", default=d["val_fraction"], show_default=True, type=click.FloatRange(0, 0.9),
                     help="Fraction of training groups held out for validation."),
        click.option("--patience", default=d["patience"], show_default=True, type=click.IntRange(0),
                     help="Early stop after this many epochs without validation improvement (0: never)."),
        click.option("--clip-norm", default=d["clip_norm"], show_default=True, type=float,
                     help="Gradient clipping norm (0: off)."),
        click.option("--timeout", default=d["timeout"], show_default=True, type=float,
                     help="Stop training after this many seconds (0: no limit)."),
    ]
    return functools.reduce(lambda f, dec: dec(f), reversed(decorators), func)


def parse_options(raw: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`("key=value", ...)` -> {key: "value"}; typing happens against the spec's declared Options."""
    out = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--option expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out
