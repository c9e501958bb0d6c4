"""The spec check: a registered record is complete (name, one-line summary, factory string,
requires, typed options with defaults and help)."""

from __future__ import annotations

from ptycho_core.errors import PtychoError
from ptycho_core.registry import GeneratorSpec, LoaderSpec, Option, StitcherSpec
from ptycho_core.testing.conformance.base import fail


def _check_option(owner: str, key: str, opt) -> None:
    if not isinstance(opt, Option):
        raise fail(f"{owner}: option {key!r} must be a ptycho_core.registry.Option, not {type(opt).__name__}")
    if not key.isidentifier():
        raise fail(f"{owner}: option name {key!r} must be a Python identifier (the factory gets it as a keyword)")
    value = opt.default
    try:
        good = isinstance(value, str) == (opt.type == "str") and opt.typed(value, key) is not None
    except PtychoError:
        good = False
    if not good:
        raise fail(f"{owner}: option {key!r} is declared {opt.type} but its default {value!r} is not")
    if not str(opt.help).strip():
        raise fail(f"{owner}: option {key!r} has no help text (it is shown by `ptycho describe`)")
    if opt.choices and value not in opt.choices:
        raise fail(f"{owner}: option {key!r} default {value!r} is not one of its choices {list(opt.choices)}")
    try:
        opt.check(value, key)
    except PtychoError as exc:
        raise fail(f"{owner}: option {key!r} default is outside its declared limits: {exc}") from None


def check_spec(spec, kind: str) -> None:
    """The record is complete: name, one-line summary, factory string, requires, typed options."""
    types = {"generator": GeneratorSpec, "loader": LoaderSpec, "stitcher": StitcherSpec}
    if not isinstance(spec, types[kind]):
        raise fail(f"expected a {types[kind].__name__}, got {type(spec).__name__}")
    owner = f"{kind} {spec.name!r}"
    summary = str(spec.summary or "")
    if not summary.strip() or "\n" in summary:
        raise fail(f"{owner}: summary must be one non-empty line (it is a column of the listing)")
    module, _, attr = spec.factory.partition(":")
    if not module or not attr:
        raise fail(f"{owner}: factory must be 'module:attr', got {spec.factory!r}")
    for req in spec.requires:
        if not isinstance(req, str) or not req or "." in req:
            raise fail(f"{owner}: requires must list top-level module names, got {req!r}")
    if kind == "generator":
        if not str(spec.framework).strip():
            raise fail(f"{owner}: framework is empty (say 'torch', 'tensorflow', 'numpy', ...)")
        framework_module = {"torch": "torch", "tensorflow": "tensorflow", "jax": "jax"}.get(spec.framework)
        if framework_module and framework_module not in spec.requires:
            raise fail(
                f"{owner}: framework {spec.framework!r} is not in requires {list(spec.requires)}: the generator "
                "would be listed as available where the framework is missing"
            )
        if spec.kind not in ("learned", "iterative"):
            raise fail(f"{owner}: kind must be 'learned' or 'iterative', got {spec.kind!r}")
    if kind == "loader":
        if not spec.extensions:
            raise fail(f"{owner}: extensions is empty: no file would ever be given to this loader")
        for ext in spec.extensions:
            # '.h5', or a standard file-name ending such as Ptychodus's 'product.h5'
            if len(ext) < 2 or "/" in ext or "." not in ext[:-1]:
                raise fail(
                    f"{owner}: extension {ext!r} must start with '.' (for example '.h5') or be a file-name "
                    "ending such as 'product.h5'"
                )
    for key, opt in getattr(spec, "options", {}).items():
        _check_option(owner, key, opt)
