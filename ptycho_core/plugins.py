"""Plugin discovery with per-plugin isolation (docs/design.md#plugins).

Entry points of the `ptycho` group are loaded one at a time; each plugin's hook implementations
are called separately, each with its own `register` closure, inside try/except. A plugin that
fails to import, fails its hook or implements an unknown hook is recorded as a `Problem` and
skipped; the others keep working. `PTYCHO_STRICT_PLUGINS=1` makes every problem fatal.

Environment:
    PTYCHO_LOAD_PLUGINS   unset: all entry-point plugins; set and empty: none;
                          otherwise a comma list of distribution names. Built-ins always load.
    PTYCHO_STRICT_PLUGINS "1" turns every plugin problem into an error.

Standard library and pluggy only at module level.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Iterator
from importlib import metadata

import pluggy

from ptycho_core import __version__, default_plugins, hookspecs
from ptycho_core.errors import PluginError
from ptycho_core.registry import GeneratorSpec, LoaderSpec, Problem, Registry, StitcherSpec

ENTRY_POINT_GROUP = "ptycho"
CORE_DISTRIBUTION = "ptycho"

_HOOKS = {
    "ptycho_register_generators": ("generator", GeneratorSpec),
    "ptycho_register_loaders": ("loader", LoaderSpec),
    "ptycho_register_stitchers": ("stitcher", StitcherSpec),
}


def canonical_name(name: str) -> str:
    """PEP 503 normalisation: `Ptycho_FNO` and `ptycho-fno` are the same distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


class PluginHost:
    """Owns one pluggy PluginManager and turns its plugins into a `Registry`.

    Tests register plugin objects in-process with `register(obj, name)` / `unregister(name)`
    or the `registered(obj, name)` context manager.
    """

    def __init__(self, load: str | None = None, strict: bool = False, entry_points: bool = True):
        self.pm = pluggy.PluginManager("ptycho")
        self.pm.add_hookspecs(hookspecs)
        self.strict = strict
        self._info: dict[str, dict] = {}
        self._load_problems: list[Problem] = []
        self._registry: Registry | None = None
        self.register(default_plugins, "ptycho", distribution=CORE_DISTRIBUTION, version=__version__, builtin=True)
        if entry_points:
            self.load_entry_points(load)

    @classmethod
    def from_environment(cls, environ=None) -> PluginHost:
        env = os.environ if environ is None else environ
        return cls(load=env.get("PTYCHO_LOAD_PLUGINS"), strict=_truthy(env.get("PTYCHO_STRICT_PLUGINS")))

    # -- loading ---------------------------------------------------------------------------
    def load_entry_points(self, load: str | None = None) -> None:
        """Load `ptycho` entry points one by one; `load` is PTYCHO_LOAD_PLUGINS' value."""
        if load is not None and not load.strip():
            return
        wanted = None if load is None else {canonical_name(n) for n in load.split(",") if n.strip()}
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist is not None else ep.name
            version = ep.dist.version if ep.dist is not None else ""
            if wanted is not None and canonical_name(dist) not in wanted:
                continue
            try:
                obj = ep.load()
            except BaseException as exc:  # a plugin's import may raise anything, SystemExit too
                if isinstance(exc, KeyboardInterrupt):
                    raise
                self._problem(dist, f"failed to import {ep.value}: {type(exc).__name__}: {exc}", version)
                continue
            self.register(obj, ep.name, distribution=dist, version=version)

    def _problem(self, plugin: str, message: str, version: str = "") -> None:
        self._load_problems.append(Problem(plugin, message))
        self._info.setdefault(plugin, {"name": plugin, "distribution": plugin, "version": version, "hooks": []})
        self._info[plugin]["error"] = message
        self._registry = None

    def register(self, obj, name: str, distribution: str | None = None, version: str = "", builtin=False) -> None:
        """Register a plugin object (module or instance); problems are recorded, not raised."""
        distribution = distribution or name
        try:
            self.pm.register(obj, name=name)
        except Exception as exc:  # pluggy validation errors, duplicate names
            self._problem(distribution, f"cannot register plugin {name!r}: {exc}")
            return
        unknown = sorted(
            {c.name for c in self.pm.get_hookcallers(obj) or [] if not c.has_spec()}
            | {a for a in dir(obj) if a.startswith("ptycho_") and a not in _HOOKS and callable(getattr(obj, a, None))}
        )
        if unknown:
            self.pm.unregister(obj)
            self._problem(distribution, f"implements unknown hook(s) {', '.join(unknown)}")
            return
        hooks = sorted(c.name for c in self.pm.get_hookcallers(obj) or [])
        self._info[name] = {
            "name": name,
            "distribution": distribution,
            "version": version,
            "hooks": hooks,
            "builtin": builtin,
        }
        self._registry = None

    def unregister(self, name: str) -> None:
        obj = self.pm.get_plugin(name)
        if obj is not None:
            self.pm.unregister(obj)
        self._info.pop(name, None)
        self._registry = None

    @contextlib.contextmanager
    def registered(self, obj, name: str, distribution: str | None = None, version: str = "") -> Iterator[None]:
        """Register `obj` for the duration of a `with` block (used by tests)."""
        self.register(obj, name, distribution=distribution, version=version)
        try:
            yield
        finally:
            self.unregister(name)

    # -- registry ----------------------------------------------------------------------------
    def registry(self) -> Registry:
        """Call every plugin's hooks, each isolated, and return what they registered.

        Raises PluginError in strict mode when anything went wrong.
        """
        if self._registry is not None:
            return self._registry
        reg = Registry()
        reg.problems.extend(self._load_problems)
        for name, info in self._info.items():
            obj = self.pm.get_plugin(name)
            if obj is None:
                continue
            dist, version = info["distribution"], info["version"]
            for hook_name, (kind, spec_type) in _HOOKS.items():
                impls = [i for i in getattr(self.pm.hook, hook_name).get_hookimpls() if i.plugin is obj]
                for impl in impls:
                    self._call_hook(reg, impl, kind, spec_type, dist, version)
        for kind in Registry.KINDS:
            for bare, dists in reg.duplicates(kind).items():
                choices = ", ".join(f"{d}:{bare}" for d in dists)
                reg.problems.append(
                    Problem(", ".join(dists), f"{kind} {bare!r} is registered by several plugins; use {choices}")
                )
        reg.plugins = [dict(v) for v in self._info.values()]
        if self.strict and reg.problems:
            details = "; ".join(f"{p.plugin}: {p.message}" for p in reg.problems)
            raise PluginError(f"plugin problems (PTYCHO_STRICT_PLUGINS=1): {details}")
        self._registry = reg
        return reg

    @staticmethod
    def _call_hook(reg: Registry, impl, kind: str, spec_type: type, dist: str, version: str) -> None:
        seen: set[str] = set()
        pending: list = []

        def register(spec):
            if not isinstance(spec, spec_type):
                raise TypeError(f"register() expects a {spec_type.__name__}, got {type(spec).__name__}")
            if spec.name in seen:
                raise ValueError(f"{kind} {spec.name!r} registered twice by the same plugin")
            seen.add(spec.name)
            pending.append(dataclasses.replace(spec, distribution=dist, version=version))

        try:
            impl.function(register=register)
        except BaseException as exc:  # a hook may raise anything, SystemExit too
            if isinstance(exc, KeyboardInterrupt):
                raise
            # A failing hook is skipped whole: half a registration is worse than none.
            reg.problems.append(Problem(dist, f"hook {impl.function.__name__} failed: {type(exc).__name__}: {exc}"))
            return
        for spec in pending:
            reg.add(kind, spec)


def load_registry(environ=None) -> Registry:
    """Discover plugins as configured by the environment and return their registry."""
    return PluginHost.from_environment(environ).registry()
