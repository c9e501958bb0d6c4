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
@data_file_options
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@click.pass_obj
def convert(state, source, target, fmt, loader, probe_file, as_json):
    """Convert a dataset between ptycho .npz, PtychoPINN .npz, CXI and Ptychodus files.

    IN is read by the loader for its suffix (or --loader), validated and written to OUT, with the
    geometry (pixel size, energy, distance) carried along. A Ptychodus pair is named by either
    file (Xproduct.h5 / Xdiffraction.h5); writing one writes both.

    \b
    Examples:
      ptycho simulate --out scan.cxi
      ptycho convert scan.cxi scan-product.h5            Ptychodus product + scan-diffraction.h5
      ptycho convert scan-product.h5 scan.npz            ptycho's own .npz
      ptycho convert scan.npz raw.npz --to ptychopinn    PtychoPINN raw (diffraction, xcoords, ...)
    """
    from ptycho_core import io

    registry = state.registry()
    spec = io.loader_spec(source, registry, loader)
    writer = io.writer_for(target, fmt)
    dataset = io.load_dataset(source, registry, loader=spec.qualified_name, probe=probe_file)
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
