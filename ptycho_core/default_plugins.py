"""The core's own loaders and stitchers, registered through the same hooks as any plugin."""

from ptycho_core.hookspecs import hookimpl
from ptycho_core.registry import LoaderSpec, Option, StitcherSpec


@hookimpl
def ptycho_register_loaders(register):
    register(
        LoaderSpec(
            name="npz",
            summary="NumPy .npz: ptycho's own files, the PtychoPINN raw contract and tike's pixel-unit scans",
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
            name="gauge",
            summary="each patch's complex scalar and the common error, estimated from the overlaps; then |P|^2",
            factory="ptycho_core.gauge:gauge",
            requires=("numpy", "scipy"),
            options={
                "common": Option("bool", True, "also estimate and subtract the error common to every patch"),
                "prior": Option(
                    "float",
                    0.0,
                    "weight pulling each scalar towards 1 against a slow drift across the scan (0: pure synchronisation)",
                    min=0.0,
                ),
            },
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
