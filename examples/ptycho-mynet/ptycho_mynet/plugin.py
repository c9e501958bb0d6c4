"""Registration of everything ptycho-mynet offers: cheap records only, no framework import.

ptycho imports this module (the `ptycho` entry point in pyproject.toml) to list generators,
loaders and stitchers, so it must stay light: every factory is a "module:attr" string, imported
only where it runs.
"""

from ptycho_core.hookspecs import hookimpl
from ptycho_core.registry import GeneratorSpec, LoaderSpec, Option, StitcherSpec


@hookimpl
def ptycho_register_generators(register):
    register(
        GeneratorSpec(
            name="mynet",
            summary="a small convolutional network trained with the physics loss",
            framework="torch",
            supervised=False,
            requires=("torch", "safetensors"),
            factory="ptycho_mynet.network:build_mynet",
            options={
                "width": Option("int", 16, "hidden channels of every convolution", min=1, max=1024),
                "depth": Option("int", 2, "number of 3x3 convolution + GELU layers", min=1, max=64),
            },
            description="An example third-party generator, started from `ptycho new-plugin mynet`.",
        )
    )


@hookimpl
def ptycho_register_loaders(register):
    register(
        LoaderSpec(
            name="mynet_h5",
            summary="one scan in HDF5: diffraction, positions, probe, optional object",
            factory="ptycho_mynet.io:load_mynet",
            extensions=(".mynet.h5",),
            requires=("h5py", "numpy"),
        )
    )


@hookimpl
def ptycho_register_stitchers(register):
    register(
        StitcherSpec(
            name="gaussian",
            summary="weighted average of the patches under a Gaussian window",
            factory="ptycho_mynet.stitch:gaussian",
            requires=("numpy",),
            options={
                "sigma": Option("float", 0.25, "window width as a fraction of the patch size N", min=0.01, max=10.0)
            },
        )
    )
