"""The registration check: registering a plugin (what `ptycho list-generators` does) imports no
framework. The plugin is imported in a fresh interpreter by the `probe` module."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ptycho_core.testing.conformance.base import HEAVY_MODULES, fail
from ptycho_core.testing.conformance.probe import MARKER


def registration_imports(
    distribution: str | None = None,
    module: str | None = None,
    heavy_modules: tuple[str, ...] = HEAVY_MODULES,
    extra_path: tuple[str, ...] = (),
    timeout: float = 120.0,
) -> dict:
    """Import a plugin in a fresh interpreter, call its hooks with a recording `register`.

    Give the distribution (its `ptycho` entry points are loaded) or the plugin module's name.
    Returns {"plugins", "recorded": {kind: [names]}, "heavy": heavy modules imported}.
    """
    if (distribution is None) == (module is None):
        raise ValueError("give exactly one of distribution= or module=")
    target = f"dist={distribution}" if distribution is not None else f"module={module}"
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join([*extra_path, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run(
        [sys.executable, "-m", "ptycho_core.testing.conformance.probe", target, ",".join(heavy_modules)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER) :])
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    raise fail(f"importing the plugin ({target}) and calling its hooks failed: {tail}")


def check_registration(
    spec, kind: str, module: str | None = None, heavy_modules=HEAVY_MODULES, extra_path: tuple[str, ...] = ()
) -> dict:
    """Registering the plugin (what `ptycho list-generators` does) imports none of `heavy_modules`."""
    if module is None:
        if not spec.distribution:
            raise fail(
                f"{kind} {spec.name!r} has no distribution (registered in-process?): give the plugin module "
                "(plugin_module = 'pkg.plugin')"
            )
        if spec.distribution == "ptycho":
            module = "ptycho_core.default_plugins"
    if module is not None:
        found = registration_imports(module=module, heavy_modules=heavy_modules, extra_path=extra_path)
    else:
        found = registration_imports(distribution=spec.distribution, heavy_modules=heavy_modules, extra_path=extra_path)
    if spec.name not in found["recorded"][kind]:
        raise fail(
            f"the plugin module(s) {found['plugins']} did not register {kind} {spec.name!r}: {found['recorded']}"
        )
    imported = sorted(set(found["heavy"]) - set(found["before"]))
    if imported:
        raise fail(
            f"registering {kind} {spec.name!r} imports {', '.join(imported)}: keep plugin.py to specs only and "
            "import frameworks inside the factory (a 'module:attr' string)"
        )
    return found
