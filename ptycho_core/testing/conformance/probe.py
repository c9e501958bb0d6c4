"""Run in a fresh interpreter by the registration check: import a plugin, call its hooks with a
recording `register`, and print which heavy modules that imported.

    python -m ptycho_core.testing.conformance.probe (dist=NAME | module=MODULE) numpy,torch,...

Prints one line, MARKER followed by JSON {"plugins", "recorded": {kind: [names]}, "before",
"heavy"}; "before" lists the heavy modules already imported before the plugin was.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from importlib import metadata

MARKER = "@@ptycho-conformance@@"

HOOK_KINDS = {
    "ptycho_register_generators": "generator",
    "ptycho_register_loaders": "loader",
    "ptycho_register_stitchers": "stitcher",
}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def plugin_objects(target: str) -> list[tuple[str, object]]:
    """(entry-point value or module name, loaded object) for `dist=NAME` or `module=MODULE`."""
    if target.startswith("dist="):
        want = _canonical(target[5:])
        eps = [
            ep
            for ep in metadata.entry_points(group="ptycho")
            if ep.dist is not None and _canonical(ep.dist.name) == want
        ]
        if not eps:
            raise SystemExit(f"no 'ptycho' entry point belongs to distribution {target[5:]!r}")
        return [(ep.value, ep.load()) for ep in eps]
    return [(target[7:], importlib.import_module(target[7:]))]


def probe(target: str, heavy: list[str]) -> dict:
    """Import the plugin(s) of `target`, call every registration hook, report names and imports."""
    before = sorted(m for m in heavy if m in sys.modules)
    objs = plugin_objects(target)
    recorded: dict[str, list[str]] = {"generator": [], "loader": [], "stitcher": []}
    for _, obj in objs:
        for hook, kind in HOOK_KINDS.items():
            fn = getattr(obj, hook, None)
            if callable(fn):
                fn(register=lambda spec, kind=kind: recorded[kind].append(spec.name))
    heavy_now = sorted(m for m in heavy if m in sys.modules)
    return {"plugins": [v for v, _ in objs], "recorded": recorded, "before": before, "heavy": heavy_now}


def main(argv: list[str]) -> None:
    print(MARKER + json.dumps(probe(argv[0], argv[1].split(","))))


if __name__ == "__main__":
    main(sys.argv[1:])
