"""The core's own loaders and stitchers, registered through the same hooks as any plugin."""

from ptycho_core.hookspecs import hookimpl
from ptycho_core.registry import LoaderSpec, Option, StitcherSpec


@hookimpl
def ptycho_register_loaders(register):
    register(
        LoaderSpec(
            name="npz",
            summary="NumPy .npz: ptycho's own files and the PtychoPINN raw contract",
            factory="ptycho_core.io.npz:load_npz",
            extensions=(".npz",),
            requires=("numpy",),
        )
    )
    register(
        LoaderSpec(
            name="cxi",
            summary="CXI (cxidb): counts, translations in metres, detector geometry, probe",
            factory="ptycho_core.io.cxi:load_cxi",
            extensions=(".cxi", ".h5", ".hdf5"),
            requires=("numpy", "h5py"),
        )
    )

    register(
        LoaderSpec(
            name="ptychodus",
            summary="Ptychodus product.h5 (probe, object, positions in metres) + diffraction.h5",
            factory="ptycho_core.io.ptychodus:load_ptychodus",
            extensions=("product.h5", "diffraction.h5"),
            requires=("numpy", "h5py"),
        )
    )


@hookimpl
def ptycho_register_stitchers(register):
    register(
        StitcherSpec(
            name="probe_weighted",
            summary="least-squares stitching, weights |P|^2 (default)",
            factory="ptycho_core.stitch:probe_weighted",
            requires=("numpy",),
        )
    )
    register(
        StitcherSpec(
            name="mean",
            summary="uniform weights over a central crop of each patch",
            factory="ptycho_core.stitch:mean",
            requires=("numpy",),
            options={"crop": Option("int", 0, "side of the central crop in pixels (0: N//2)", min=0, max=65536)},
        )
    )
