"""`ptycho new-plugin NAME [--dir DIR]`: write a complete, installable plugin package.

The templates are package data of ptycho_core (`ptycho_core/templates/plugin/`, files ending in
`.tmpl`); `{{placeholders}}` in their text and `NAME` in their paths are filled in here. Standard
library and click only.
"""

from __future__ import annotations

import keyword
import re
from importlib import resources
from pathlib import Path

import click

from ptycho_core import __version__
from ptycho_core.errors import UsageError

TEMPLATE_PACKAGE = "ptycho_core"
TEMPLATE_DIR = ("templates", "plugin")
SUFFIX = ".tmpl"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def plugin_names(name: str) -> dict[str, str]:
    """The names derived from a generator name: `mynet` -> distribution `ptycho-mynet`, package
    `ptycho_mynet`, class prefix `Mynet`. Raises UsageError for names that cannot be all three."""
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise UsageError(
            f"plugin name {name!r}: use lower-case letters, digits and underscores, starting with a letter "
            "(for example: mynet)"
        )
    if name == "ptycho" or name.startswith(("ptycho_", "ptycho-")):
        raise UsageError(f"plugin name {name!r}: give the bare name (the 'ptycho-' prefix is added for you)")
    return {
        "name": name,
        "dist": "ptycho-" + name.replace("_", "-"),
        "package": "ptycho_" + name,
        "camel": "".join(part.capitalize() for part in name.split("_")),
        "core_version": __version__,
    }


def _templates():
    root = resources.files(TEMPLATE_PACKAGE)
    for part in TEMPLATE_DIR:
        root = root / part
    return root


def _walk(node, prefix: tuple[str, ...] = ()):
    """(relative path parts, template text) for every `.tmpl` file below `node`, sorted."""
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.is_dir():
            if child.name != "__pycache__":
                yield from _walk(child, prefix + (child.name,))
        elif child.name.endswith(SUFFIX):
            yield prefix + (child.name[: -len(SUFFIX)],), child.read_text(encoding="utf-8")


def _fill(text: str, names: dict[str, str]) -> str:
    for key, value in names.items():
        text = text.replace("{{" + key + "}}", value)
    left = re.findall(r"\{\{\w+\}\}", text)
    if left:  # a template bug, not a user error
        raise RuntimeError(f"unfilled template placeholders: {sorted(set(left))}")
    return text


def render_plugin(name: str, directory: str | Path = ".") -> Path:
    """Write the plugin package `directory/ptycho-NAME/` and return its path.

    Refuses (UsageError) a target that exists and is not empty. Paths in the templates use
    `NAME` for the generator name (`ptycho_NAME/`, `tests/test_NAME.py`).
    """
    names = plugin_names(name)
    target = Path(directory) / names["dist"]
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"{target} already exists and is not empty")
    files = [(parts, _fill(text, names)) for parts, text in _walk(_templates())]
    if not files:
        raise RuntimeError("no plugin templates found in ptycho_core/templates/plugin (broken installation?)")
    for parts, text in files:
        path = target.joinpath(*(p.replace("NAME", name) for p in parts))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target


@click.command("new-plugin")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where to create the ptycho-NAME/ folder.",
)
def new_plugin(name, directory):
    """Create ptycho-NAME/: a plugin package that registers the generator NAME.

    \b
    It holds pyproject.toml (entry point in the `ptycho` group), ptycho_NAME/plugin.py
    (cheap registration), ptycho_NAME/network.py (a small torch network trained by
    ptycho's torch engine), a README and tests/test_NAME.py (the conformance kit).
    It installs and passes its own tests as written:

    \b
      ptycho new-plugin mynet
      pip install -e ptycho-mynet
      ptycho list-generators
      pytest ptycho-mynet/tests
    """
    target = render_plugin(name, directory)
    for path in sorted(p for p in target.rglob("*") if p.is_file()):
        click.echo(f"  {path}")
    click.echo(f"created {target}")
    click.echo(f"next: pip install -e {target} && ptycho describe {name} && pytest {target / 'tests'}")
