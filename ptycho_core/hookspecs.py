"""The whole extension surface of ptycho: three hooks, each taking a `register` callback.

A plugin module implements any of them with `@hookimpl` and is declared under the `ptycho`
entry-point group. Registration must stay cheap: build `*Spec` records only, never import a
framework here (the factory string is resolved only where the generator runs).
"""

import pluggy

hookspec = pluggy.HookspecMarker("ptycho")
hookimpl = pluggy.HookimplMarker("ptycho")


@hookspec
def ptycho_register_generators(register):
    """Register generators: call `register(GeneratorSpec(...))` once per generator."""


@hookspec
def ptycho_register_loaders(register):
    """Register dataset loaders: call `register(LoaderSpec(...))` once per loader."""


@hookspec
def ptycho_register_stitchers(register):
    """Register stitchers: call `register(StitcherSpec(...))` once per stitcher."""
