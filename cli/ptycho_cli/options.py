"""Shared click options, generated from declared Settings (`ptycho_core.settings`), and `--option` parsing."""

from __future__ import annotations

import functools
import os

import click

from ptycho_core import limits
from ptycho_core.errors import UsageError
from ptycho_core.generator import train_settings
from ptycho_core.limits import MAX_MEMORY
from ptycho_core.settings import Setting
from ptycho_core.simconfig import SimConfig
from ptycho_core.torch.settings import SETTINGS as TORCH_SETTINGS


class SettingType(click.ParamType):
    """A click type that parses with the declared `Setting` (the one parser): a bad value is a
    click usage error, which the CLI prints as one line, exit code 2."""

    def __init__(self, setting: Setting):
        self.setting = setting
        self.name = setting.type

    def convert(self, value, param, ctx):
        try:
            return self.setting.parse(value, param.opts[0] if param is not None else self.setting.flag)
        except UsageError as exc:
            raise click.UsageError(str(exc), ctx) from None

    def get_metavar(self, param, ctx=None):
        return "[" + "|".join(map(str, self.setting.choices)) + "]" if self.setting.choices else self.name.upper()


def setting_option(setting: Setting, *, default=..., help: str | None = None, note: str = ""):
    """The click option of a declared Setting: flag from its name (and `short`), type, choices,
    range and help from the declaration (`help` replaces the declared sentence, `note` follows the
    range); `default` overrides the declared default (None: not given)."""
    flags = [setting.flag] + ([setting.short] if setting.short else [])
    text = (help if help is not None else setting.help) + _range(setting) + note
    if default is ...:
        return click.option(
            *flags, setting.name, default=setting.default, show_default=True, type=SettingType(setting), help=text
        )
    return click.option(*flags, setting.name, default=default, type=SettingType(setting), help=text)


def _range(setting: Setting) -> str:
    """ " [low .. high]" for a help text, or "" (choices show in the metavar)."""
    return f" [{setting.limits()}]" if setting.limits() and not setting.choices else ""


def setting_options(settings, **kwargs):
    """One click option per Setting (`setting_option`), in order."""

    def decorate(func):
        for s in reversed(list(settings)):
            func = setting_option(s, **kwargs)(func)
        return func

    return decorate


def train_config_options(func):
    """One click option per TrainConfig field and torch engine setting (name, type, range, help
    from their declarations: `ptycho_core.generator.TrainConfig`, `ptycho_core.torch.settings`).

    Every option defaults to None (not given), so that a generator's `train_defaults` apply
    unless the user sets the value; keyword arguments arrive named like the options
    (`train_timeout` for TrainConfig.timeout): turn them into fields with
    `ptycho_core.generator.train_fields(values, TORCH_SETTINGS)`.
    """
    decorators = [
        setting_option(s, default=None, note=f" [default: {s.default}, or the generator's own]")
        for s in [*train_settings(), *TORCH_SETTINGS]
    ]
    return functools.reduce(lambda f, dec: dec(f), reversed(decorators), func)


def sim_help(lead: str) -> str:
    """`--sim KEY=VALUE` help: `lead`, then every simulation setting with its type, range and default."""
    return lead + " Settings: " + "; ".join(s.describe() for s in SimConfig.settings()) + "."


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
    """`--loader NAME`, `--probe FILE`, `--crop N`, `--bin K` and `--max-memory SIZE`: how every data file
    of the command is read."""
    func = click.option(
        MAX_MEMORY.flag,
        MAX_MEMORY.name,
        default=None,
        metavar="SIZE",
        type=SettingType(MAX_MEMORY),
        expose_value=False,
        is_eager=True,
        callback=_max_memory,
        help=MAX_MEMORY.help,
    )(func)
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
