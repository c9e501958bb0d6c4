"""`ptycho convert IN OUT`: read a dataset with any loader, write it in another format."""

from __future__ import annotations

import json

import click

from ptycho_cli.options import data_file_options


@click.command()
@click.argument("source", metavar="IN")
@click.argument("target", metavar="OUT")
@click.option(
    "--to",
    "fmt",
    default=None,
    metavar="FORMAT",
    help="Output format: npz, ptychopinn, cxi or ptychodus. Default: from OUT's suffix "
    "(.npz -> npz, .cxi -> cxi, product.h5 -> ptychodus).",
)
@click.option(
    "--scan",
    "scan_path",
    default=None,
    metavar="FILE",
    help="For a reconstruction IN: the scan it was made from (its probe and geometry for a Ptychodus product).",
)
@data_file_options
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@click.pass_obj
def convert(state, source, target, fmt, scan_path, loader, probe_file, crop_to, bin_by, as_json):
    """Convert a dataset between ptycho .npz, PtychoPINN .npz, CXI and Ptychodus files, or a
    reconstruction between ptycho's recon .npz and a Ptychodus product file.

    IN is read by the loader for its suffix (or --loader), validated and written to OUT, with the
    geometry (pixel size, energy, distance) carried along. A Ptychodus pair is named by either
    file (Xproduct.h5 / Xdiffraction.h5); writing one writes both.

    \b
    Examples:
      ptycho simulate --out scan.cxi
      ptycho convert scan.cxi scan-product.h5            Ptychodus product + scan-diffraction.h5
      ptycho convert scan-product.h5 scan.npz            ptycho's own .npz
      ptycho convert scan.npz raw.npz --to ptychopinn    PtychoPINN raw (diffraction, xcoords, ...)
      ptycho convert recon.npz recon-product.h5 --scan scan.cxi    a reconstruction for Ptychodus
      ptycho convert recon-product.h5 recon.npz          a lone Ptychodus product -> ptycho's recon .npz
      ptycho convert siemens-star-small.npz star64.npz --crop 64   tike's pixel-unit scan, centred 64 crop
    """
    from ptycho_core import io
    from ptycho_core.errors import UsageError
    from ptycho_core.io import reconstruction

    registry = state.registry()
    if reconstruction.is_reconstruction(source):
        scan = (
            None
            if scan_path is None
            else io.load_dataset(scan_path, registry, loader=loader, probe=probe_file, crop=crop_to, bin=bin_by)
        )
        rec = reconstruction.read(source)
        written = reconstruction.write(rec, target, scan)
        report = {"source": source, "target": str(written), "object_shape": list(rec.object.shape)}
        report["positions"] = len(rec.positions)
        if as_json:
            click.echo(json.dumps(report, indent=2))
        else:
            shape = "x".join(map(str, rec.object.shape))
            click.echo(f"{source} (reconstruction) -> {written}: object {shape}, {len(rec.positions)} positions")
        return
    if scan_path is not None:
        raise UsageError(f"--scan applies to a reconstruction; {source} is a dataset")
    spec = io.loader_spec(source, registry, loader)
    writer = io.writer_for(target, fmt)
    dataset = io.load_dataset(source, registry, loader=spec.qualified_name, probe=probe_file, crop=crop_to, bin=bin_by)
    written = io.save_dataset(dataset, target, writer)
    pixel = dataset.metadata.get("pixel_size_m")
    report = {
        "source": source,
        "loader": spec.qualified_name,
        "target": str(written),
        "format": writer,
        "patterns": dataset.n,
        "patch_size": dataset.patch_size,
        "object_shape": None if dataset.object is None else list(dataset.object.shape),
        "pixel_size_m": pixel,
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    obj = "x".join(map(str, report["object_shape"])) if report["object_shape"] else "none"
    scale = f", {pixel:.4g} m/pixel" if pixel else ""
    click.echo(
        f"{source} ({spec.name}) -> {written} ({writer}): {dataset.n} patterns of "
        f"{dataset.patch_size}x{dataset.patch_size}, object {obj}{scale}"
    )
