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


def data_file_options(func):
    """`--loader NAME`, `--probe FILE`, `--crop N`, `--bin K`: how every data file of the command is read."""
    func = click.option(
        "--bin",
        "bin_by",
        default=None,
        type=click.IntRange(1),
        metavar="K",
        help="Sum K x K detector pixels (after --crop): the object pixel stays, the field of view shrinks "
        "by K, the probe becomes its centred N/K crop (docs/formats.md, Detector preprocessing).",
    )(func)
    func = click.option(
        "--crop",
        "crop_to",
        default=None,
        type=click.IntRange(2),
        metavar="N",
        help="Keep the centred N x N detector pixels: the object pixel grows by M/N, positions scale by "
        "N/M, the probe is the inverse FFT of the centred crop of its FFT (recorded in the metadata).",
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


def data_file(path, loader, probe_file, crop_to=None, bin_by=None):
    """`path` as given, or a `DataFile` when `--loader`, `--probe`, `--crop` or `--bin` says how to read it."""
    if path is None or (loader is None and probe_file is None and not crop_to and not bin_by):
        return path
    from ptycho_core.io import DataFile

    return DataFile(str(path), loader=loader, probe=probe_file, crop=crop_to, bin=bin_by)
