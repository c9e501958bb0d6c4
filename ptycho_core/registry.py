"""Cheap records describing what plugins offer, and the lookups over them.

Specs never hold a framework object: a factory is a `"module:attr"` string, importable only
where it runs (a spawned child for `ptycho compare`). Standard library only at module level.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field

from ptycho_core.errors import PluginError, UsageError
from ptycho_core.generator import SHARED_SETTINGS, resolve_train_config, train_settings
from ptycho_core.settings import TYPES, Setting, resolve_options
from ptycho_core.torch.settings import SETTINGS as TORCH_SETTINGS

#: Option types a spec may declare; values cross process boundaries as plain JSON.
OPTION_TYPES = TYPES

#: One statically declared generator or stitcher option: a `ptycho_core.settings.Setting`
#: (`Option(type, default, help, choices=(), min=None, max=None)`, its name the key it is declared
#: under). `choices`, `min` and `max` are checked before any work, by the command line and by
#: `compare`'s planning, so a bad value is one line and exit 2.
Option = Setting


def reserved_option_names() -> frozenset:
    """TrainConfig field and option names and every engine setting's name: generator options may
    not shadow them (docs/design.md#plugins)."""
    names = {n for s in train_settings() for n in (s.field, s.name)}
    return frozenset(names | {s.name for s in TORCH_SETTINGS} | {"engine"})


def default_engine_settings(framework: str, kind: str) -> tuple:
    """The engine settings of a spec that declares none: the torch engine's for a learned torch
    generator (it trains with `ptycho_core.torch.trainer`), else none."""
    if framework == "torch" and kind == "learned":
        return TORCH_SETTINGS
    return ()


@dataclass(frozen=True)
class _Spec:
    name: str
    summary: str
    factory: str
    requires: tuple = ()
    #: Filled in by discovery: the distribution that registered this spec, and its version.
    distribution: str = ""
    version: str = ""

    def __post_init__(self):
        if not self.name or ":" in self.name or "," in self.name or " " in self.name:
            raise ValueError(f"invalid name {self.name!r}: no ':', ',' or spaces")
        if not isinstance(self.factory, str) or self.factory.count(":") != 1:
            raise ValueError(f"{self.name}: factory must be a 'module:attr' string, not {self.factory!r}")
        object.__setattr__(self, "requires", tuple(self.requires))

    @property
    def qualified_name(self) -> str:
        return f"{self.distribution}:{self.name}" if self.distribution else self.name

    def missing_requirements(self) -> list[str]:
        """Required top-level modules that are not importable (checked without importing)."""
        return [m for m in self.requires if not module_available(m)]

    @property
    def available(self) -> bool:
        return not self.missing_requirements()

    def status(self) -> str:
        missing = self.missing_requirements()
        return "available" if not missing else "unavailable: missing " + ", ".join(missing)

    def load_factory(self) -> Callable:
        """Import and return the factory (this is where frameworks get imported)."""
        return resolve_factory(self.factory)


@dataclass(frozen=True)
class GeneratorSpec(_Spec):
    """A generator: a network (or solver) mapping diffraction to object patches.

    `framework` is a label ("torch", "tensorflow", "numpy"); `kind` is "learned" (fit/predict)
    or "iterative" (reconstruct); `supervised` generators see ground-truth patches in training.
    `options` maps option name -> Option; the core calls `factory(**options)`.
    `engine_settings`: the settings of the framework engine that trains it (`TrainConfig.engine`,
    e.g. `ptycho_core.torch.settings.SETTINGS`: precision, compile); None: the torch engine's for
    a learned torch generator, else none. A value the engine does not declare or accept is refused
    while a comparison is planned.
    `train_defaults` maps TrainConfig field (or engine setting) -> the plugin's default for this
    generator (e.g. {"epochs": 30, "lr": 2e-3}); an explicit CLI or API value wins over it, and it
    wins over TrainConfig's own default (`train_config`). `child_env` maps environment variable -> value
    for the compare child running this generator, set before the child imports anything; the
    text "{threads}" in a value becomes the child's thread budget.
    """

    framework: str = "numpy"
    kind: str = "learned"
    supervised: bool = False
    options: dict = field(default_factory=dict)
    description: str = ""
    reference: str = ""
    train_defaults: dict = field(default_factory=dict)
    child_env: dict = field(default_factory=dict)
    engine_settings: tuple | None = None

    def __post_init__(self):
        super().__post_init__()
        engine = self.engine_settings
        engine = default_engine_settings(self.framework, self.kind) if engine is None else tuple(engine)
        if not all(isinstance(s, Setting) and s.name for s in engine):
            raise ValueError(f"{self.name}: engine_settings must be named ptycho_core.settings.Setting objects")
        object.__setattr__(self, "engine_settings", engine)
        if self.kind not in ("learned", "iterative"):
            raise ValueError(f"{self.name}: kind must be 'learned' or 'iterative'")
        for key, opt in self.options.items():
            if not isinstance(opt, Option):
                raise ValueError(f"{self.name}: option {key!r} must be an Option")
            if key in reserved_option_names():
                raise ValueError(f"{self.name}: option {key!r} shadows a TrainConfig field")
        shared = sorted(set(self.train_defaults) & SHARED_SETTINGS)
        if shared:
            raise ValueError(f"{self.name}: train_defaults may not set {', '.join(shared)} (shared by every generator)")
        try:
            self.train_config()
        except (TypeError, UsageError) as exc:
            raise ValueError(f"{self.name}: bad train_defaults: {exc}") from None
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.child_env.items()):
            raise ValueError(f"{self.name}: child_env must map names to strings")

    def train_config(self, given: dict | None = None):
        """The TrainConfig this generator trains with: `given` (explicit values by field name) over
        `train_defaults` over TrainConfig's defaults."""
        return resolve_train_config(given, self.train_defaults, self.engine_settings, self.name)

    def resolve_options(self, given: dict | None = None) -> dict:
        """Defaults overlaid with `given` (already typed or text); unknown keys are an error."""
        return resolve_options(self.options, given, self.name)


@dataclass(frozen=True)
class LoaderSpec(_Spec):
    """A dataset reader: `factory(path) -> ptycho_core.data.Dataset` for files ending in one of
    `extensions`."""

    extensions: tuple = ()

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "extensions", tuple(e.lower() for e in self.extensions))


@dataclass(frozen=True)
class StitcherSpec(_Spec):
    """A stitcher: `factory(patches, positions, shape, probe, **options) -> (object, weights)`."""

    options: dict = field(default_factory=dict)

    def resolve_options(self, given: dict | None = None) -> dict:
        """Defaults overlaid with `given` (already typed or text); unknown keys are an error."""
        return resolve_options(self.options, given, self.name, f"stitcher {self.name}")


def module_available(name: str) -> bool:
    """True when `name` is importable: `find_spec` finds it with a real origin.

    Uninstall leftovers look like namespace packages (origin None) and do not count.
    """
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin is not None


def resolve_factory(path: str) -> Callable:
    """Import `"module:attr"` and return the attribute."""
    module_name, _, attr = path.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(f"cannot import {module_name!r} for factory {path!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginError(f"factory {path!r}: {module_name} has no attribute {attr!r}") from None
    return obj


@dataclass
class Problem:
    """A plugin problem found during discovery (import failure, hook failure, duplicate...)."""

    plugin: str
    message: str

    def as_dict(self) -> dict:
        return {"plugin": self.plugin, "message": self.message}


class Registry:
    """Everything the loaded plugins registered, by kind, with name resolution.

    `dist:name` always resolves; a bare name resolves when exactly one distribution registered it
    (otherwise the lookup fails, naming the candidates).
    """

    KINDS = ("generator", "loader", "stitcher")

    def __init__(self):
        self._specs: dict[str, list] = {k: [] for k in self.KINDS}
        self.problems: list[Problem] = []
        self.plugins: list[dict] = []

    def add(self, kind: str, spec) -> None:
        self._specs[kind].append(spec)

    def all(self, kind: str, pattern: str | None = None) -> list:
        specs = sorted(self._specs[kind], key=lambda s: (s.name, s.distribution))
        if pattern:
            specs = [s for s in specs if fnmatch.fnmatch(s.name, pattern)]
        return specs

    def generators(self, pattern: str | None = None) -> list[GeneratorSpec]:
        return self.all("generator", pattern)

    def loaders(self) -> list[LoaderSpec]:
        return self.all("loader")

    def stitchers(self) -> list[StitcherSpec]:
        return self.all("stitcher")

    def duplicates(self, kind: str) -> dict[str, list[str]]:
        """Bare names registered by more than one distribution -> those distributions."""
        seen: dict[str, list[str]] = {}
        for spec in self._specs[kind]:
            seen.setdefault(spec.name, []).append(spec.distribution)
        return {name: dists for name, dists in seen.items() if len(dists) > 1}

    def get(self, kind: str, name: str):
        """Resolve `name` or `dist:name`; raise UsageError listing what is registered."""
        dist, _, bare = name.rpartition(":")
        matches = [s for s in self._specs[kind] if s.name == bare and (not dist or s.distribution == dist)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            known = ", ".join(s.qualified_name if dist else s.name for s in self.all(kind)) or "none"
            raise UsageError(f"unknown {kind} {name!r} (installed: {known})")
        options = ", ".join(s.qualified_name for s in matches)
        raise UsageError(f"{kind} name {name!r} is registered by several plugins; use one of {options}")

    def generator(self, name: str) -> GeneratorSpec:
        return self.get("generator", name)

    def loader(self, name: str) -> LoaderSpec:
        return self.get("loader", name)

    def stitcher(self, name: str) -> StitcherSpec:
        return self.get("stitcher", name)

    def loader_for(self, path: str) -> LoaderSpec:
        """The loader with the longest extension matching `path` (`.mynet.h5` wins over `.h5`);
        among equally long matches, the first by name."""
        low = str(path).lower()
        matches = [(-len(ext), i) for i, s in enumerate(self.loaders()) for ext in s.extensions if low.endswith(ext)]
        if matches:
            return self.loaders()[min(matches)[1]]
        exts = sorted({e for s in self.loaders() for e in s.extensions})
        raise UsageError(f"{path}: no loader for this file type (known extensions: {', '.join(exts) or 'none'})")


def spec_as_dict(spec) -> dict:
    """A JSON-able description of any spec (options included)."""
    out = {}
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        if f.name == "options":
            value = {k: dataclasses.asdict(v) for k, v in value.items()}
        elif f.name == "engine_settings":
            value = [dataclasses.asdict(s) for s in value]
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out
