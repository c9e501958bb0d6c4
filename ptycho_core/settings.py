"""One declaration per setting: `Setting` (name, type, choices, range, default, help) and its one parser.

Every named setting of ptycho is a `Setting`: the training options (`TrainConfig`), the simulation
settings (`SimConfig`), a comparison's own settings (`CompareRequest`), a framework engine's
settings (`ptycho_core.torch.settings`, the TensorFlow plugin's) and every generator or stitcher
option a plugin declares (`ptycho_core.registry.Option` is this class). The command line builds its
click options from the declarations (`ptycho_cli.options`), and every value, from text or from
the API, goes through `Setting.parse`: one type rule, one range rule, one message style, so a bad
value is one line and exit 2 wherever it is given.

    Setting("int", 16, "hidden channels", min=1)                     a plugin option (name: its key)
    width: int = setting(16, "hidden channels", min=1)               a dataclass field (name: the field's)

Standard library only: the light CLI imports this module.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

from ptycho_core.errors import UsageError

#: Setting types; values cross process boundaries as plain JSON.
TYPES = {"int": int, "float": float, "str": str, "bool": bool}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Setting:
    """One named setting.

    type: "int", "float", "str" or "bool"; default: its value when not given; help: one sentence;
    choices: the allowed values (empty: any); min / max: inclusive bounds of an int or float (None:
    unbounded); name: how the command line and the API name it (a plugin option's name is its key
    in `options`, so it may stay ""); field: the attribute that holds it when that differs from
    `name` (`TrainConfig.timeout` is offered as `train_timeout`); short: a one-letter flag ("-j").
    Floats are always finite; an int never comes from a float ("1e2" is not an int).
    """

    type: str
    default: Any
    help: str = ""
    choices: tuple = ()
    min: float | None = None
    max: float | None = None
    name: str = ""
    field: str = ""
    short: str = ""

    def __post_init__(self):
        if self.type not in TYPES:
            raise ValueError(f"setting type must be one of {sorted(TYPES)}, not {self.type!r}")
        object.__setattr__(self, "choices", tuple(self.choices or ()))
        if not self.field:
            object.__setattr__(self, "field", self.name)

    @property
    def flag(self) -> str:
        """The command-line flag: `--` + name with dashes (`--train-timeout`)."""
        return "--" + self.name.replace("_", "-")

    def parse(self, value: Any, name: str = "") -> Any:
        """`value` (command-line text, or a value from the API or JSON) as this setting's type,
        checked against its choices and range; UsageError (one line, naming `name`) otherwise."""
        label = name or self.name or "setting"
        value = self.typed(value, label)
        self.check(value, label)
        return value

    def typed(self, value: Any, label: str = "") -> Any:
        """`value` as this setting's type, not yet range-checked: text is parsed, any other value
        must already have the type (an int for a float is widened); UsageError otherwise."""
        label = label or self.name or "setting"
        kind = TYPES[self.type]
        if isinstance(value, str):
            text = value.strip()
            try:
                if self.type == "bool":
                    if text.lower() not in _TRUE | _FALSE:
                        raise ValueError(text)
                    return text.lower() in _TRUE
                if self.type == "str":
                    return value
                return kind(text)
            except ValueError:
                raise UsageError(f"{label}: expected {self.type}, got {value!r}") from None
        ok = {
            "bool": isinstance(value, bool),
            "int": isinstance(value, numbers.Integral) and not isinstance(value, bool),
            "float": isinstance(value, numbers.Real) and not isinstance(value, bool),
            "str": False,
        }[self.type]
        if not ok:
            raise UsageError(f"{label}: expected {self.type}, got {value!r}")
        return TYPES[self.type](value)  # numpy scalars and ints for floats become plain Python values

    def check(self, value: Any, name: str = "") -> None:
        """Raise UsageError unless `value` is finite (floats), one of `choices` and within `min`..`max`."""
        label = name or self.name or "setting"
        if self.type == "float" and not math.isfinite(value):
            raise UsageError(f"{label}: {value!r} is not a finite number")
        if self.choices and value not in self.choices:
            raise UsageError(f"{label}: {value!r} is not one of {list(self.choices)}")
        if self.min is not None and value < self.min:
            raise UsageError(f"{label}: {value!r} is below its minimum {self.min!r}")
        if self.max is not None and value > self.max:
            raise UsageError(f"{label}: {value!r} is above its maximum {self.max!r}")

    def limits(self) -> str:
        """The declared constraints in words ("choices: a, b", ">= 1", "0 .. 1"), or ""."""
        if self.choices:
            return "choices: " + ", ".join(map(str, self.choices))
        low, high = self.text(self.min), self.text(self.max)
        if self.min is not None and self.max is not None:
            return f"{low} .. {high}"
        if self.min is not None:
            return f">= {low}"
        return f"<= {high}" if self.max is not None else ""

    def text(self, value) -> str:
        """`value` as help texts show it: ints in full, floats in %g."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return repr(value)
        return str(int(value)) if self.type == "int" else f"{value:g}"

    def describe(self) -> str:
        """`name (type, limits, default D)`: one entry of a generated help text."""
        default = f"default {self.text(self.default)}" if self.default != "" else ""
        facts = [self.type, self.limits(), default]
        return f"{self.name} ({', '.join(f for f in facts if f)})"


# --- settings as dataclass fields --------------------------------------------------------------


def setting(
    default,
    help: str,
    *,
    type: str = "",
    name: str = "",
    choices: tuple = (),
    min: float | None = None,
    max: float | None = None,
    short: str = "",
) -> Any:
    """A dataclass field declared as a Setting (its type from the field's annotation unless given);
    `declared(cls)` lists them, `check_fields(obj)` checks an instance's values."""
    meta = {"help": help, "type": type, "name": name, "choices": choices, "min": min, "max": max, "short": short}
    return dataclasses.field(default=default, metadata={"setting": meta})


def declared(cls) -> list[Setting]:
    """Every field of dataclass `cls` declared with `setting(...)`, as a Setting, in order."""
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("setting")
        if meta is None:
            continue
        kind = meta["type"] or (f.type if isinstance(f.type, str) else f.type.__name__)
        out.append(
            Setting(
                type=kind,
                default=f.default,
                help=meta["help"],
                choices=meta["choices"],
                min=meta["min"],
                max=meta["max"],
                name=meta["name"] or f.name,
                field=f.name,
                short=meta["short"],
            )
        )
    return out


def check_fields(obj, prefix: str = "") -> None:
    """Parse every declared field of `obj` (a dataclass instance) in place: typed, in range, or UsageError.

    Text values are parsed (the API may pass "1e-3"); `prefix` starts each message (e.g. "--").
    """
    for s in declared(type(obj)):
        value = s.parse(getattr(obj, s.field), prefix + s.name)
        object.__setattr__(obj, s.field, value)


def resolve_options(options: dict, given: dict | None, owner: str, where: str = "") -> dict:
    """A plugin's declared `options` {key: Setting} with `given` {key: text or value} parsed over
    their defaults; an unknown key or a bad value is a UsageError naming `owner` (`where`, e.g.
    "stitcher probe_weighted", for the unknown-key message; default `owner`)."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(options))
    if unknown:
        known = ", ".join(sorted(options)) or "none"
        raise UsageError(f"{where or owner}: unknown option(s) {', '.join(unknown)} (known: {known})")
    return {k: opt.parse(given[k], f"{owner}.{k}") if k in given else opt.default for k, opt in options.items()}


def parse_items(settings: list[Setting], texts: dict[str, Any], what: str) -> dict:
    """{name: text or value} -> {field: typed value}, every name one of `settings` (UsageError
    naming `what`, e.g. "simulation setting", and listing the known names otherwise)."""
    by_name = {s.name: s for s in settings}
    out = {}
    for key, value in texts.items():
        if key not in by_name:
            raise UsageError(f"unknown {what} {key!r}; known: {', '.join(by_name)}")
        out[by_name[key].field] = by_name[key].parse(value, f"{what} {key}")
    return out
