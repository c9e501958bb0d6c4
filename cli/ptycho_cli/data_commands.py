"""Data commands: `ptycho simulate` and `ptycho inspect`.

Only click at module level; numpy and ptycho_core's numerical modules are imported inside the
command functions (listing and `ptycho --help` must stay light).
"""

from __future__ import annotations

import json

import click

from ptycho_cli.options import data_file_options, setting_options, sim_help
from ptycho_core.simconfig import SimConfig


def _registry(ctx: click.Context):
    return ctx.find_root().obj.registry()


#: SimConfig settings that `ptycho simulate` offers as their own flags (the rest through --sim).
SIM_FLAGS = (
    "object",
    "probe",
    "probe_file",
    "patch_size",
    "object_size",
    "step",
    "jitter",
    "nphotons",
    "seed",
    "test_seed",
)


@click.command("simulate")
@click.option(
    "--out", "out", required=True, metavar="FILE", help="Training (or only) dataset: .npz, .cxi or *product.h5."
)
@click.option("--test-out", "test_out", metavar="FILE", help="Also write the test dataset (other object and scan).")
@setting_options([s for s in SimConfig.settings() if s.name in SIM_FLAGS], default=None)
@click.option(
    "--sim",
    "sim_settings",
    multiple=True,
    metavar="KEY=VALUE",
    help=sim_help(
        "Any setting of SimConfig, e.g. --sim train_objects=1 --sim phase=amplitude --sim coma=0; repeatable."
    ),
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def simulate(ctx, out, test_out, sim_settings, as_json, **named):
    """Write simulated datasets (defaults: DEFAULT_SIM, the project's default lines data).

    Train and test use different objects and scans and the same probe, scaled so that the mean
    counts per training pattern equal --nphotons. Amplitudes are sqrt(Poisson counts).
    --probe-file FILE implies --probe file.
    """
    from ptycho_cli.sim_settings import sim_config
    from ptycho_core.io import save_dataset, writer_for

    for path in filter(None, (out, test_out)):
        writer_for(path)  # an unknown suffix fails before any work
    from ptycho_core.simulate import simulate_pair

    if named.get("probe_file") and named.get("probe") is None:
        named["probe"] = "file"
    cfg = sim_config(sim_settings, **named)
    train, test = simulate_pair(cfg)
    written = {"train": (train, str(save_dataset(train, out)))}
    if test_out:
        written["test"] = (test, str(save_dataset(test, test_out)))
    report = {
        "config": cfg.to_dict(),
        "files": {role: {"path": path, **ds.summary()} for role, (ds, path) in written.items()},
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for role, (ds, path) in written.items():
        s = ds.summary()
        click.echo(
            f"wrote {path} ({role}): {s['patterns']} patterns of {s['patch_size']}x{s['patch_size']}, "
            f"object {s['object_shape'][0]}x{s['object_shape'][1]}, "
            f"mean counts/pattern {s['mean_counts_per_pattern']:.4g}"
        )
    click.echo(
        "config: "
        + " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in cfg.to_dict().items() if v != "")
    )


@click.command("inspect")
@click.argument("file")
@data_file_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def inspect(ctx, file, loader, probe_file, crop_to, bin_by, as_json):
    """Validate a dataset file and print its summary and the loader that read it (exit 0 valid, 2 invalid).

    Every conversion the loader applied (legacy keys, x/y order, units, dtype casts), every
    skipped entry and every HDF5 link followed (soft, external: which file, which path) is listed.
    A file declaring an array over --max-memory is refused before it is read.
    """
    from ptycho_core.io import load_dataset, loader_spec

    registry = _registry(ctx)
    spec = loader_spec(file, registry, loader)
    ds = load_dataset(file, registry=registry, loader=loader, probe=probe_file, crop=crop_to, bin=bin_by)
    summary = ds.summary()
    meta = ds.metadata
    if as_json:
        report = {"file": file, "valid": True, "loader": spec.qualified_name, "summary": summary, "metadata": meta}
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{file}: valid")
    facts = [
        ("loader", f"{spec.name} ({spec.distribution} {spec.version})".replace(" ()", "")),
        ("patterns", summary["patterns"]),
        ("patch size", f"{summary['patch_size']}x{summary['patch_size']}"),
        ("positions y", "{:.2f} .. {:.2f}".format(*summary["positions_y"])),
        ("positions x", "{:.2f} .. {:.2f}".format(*summary["positions_x"])),
        ("median step", f"{summary['median_step']:.3g}" if "median_step" in summary else "-"),
        ("mean sum A^2", f"{summary['mean_counts_per_pattern']:.4g}"),
        ("counts_scale", json.dumps(meta.get("counts_scale"))),
        ("probe max |P|", f"{summary['probe_max_abs']:.4g}"),
        ("object", "x".join(map(str, summary["object_shape"])) if summary["object_shape"] else "none"),
        ("mask", "x".join(map(str, summary["mask"])) if summary["mask"] else "none"),
        ("source", meta.get("source", "-")),
    ]
    if "format" in meta:
        facts.append(("format", meta["format"]))
    if meta.get("pixel_size_m"):
        geometry = f"{meta['pixel_size_m']:.4g} m"
        if meta.get("energy_eV") and meta.get("distance_m") and meta.get("detector_pixel_size_m"):
            geometry += (
                f" (= wavelength x distance / (N x detector pixel): {meta['energy_eV']:g} eV, "
                f"{meta['distance_m']:g} m, {meta['detector_pixel_size_m']:g} m)"
            )
        if meta.get("geometry") == "assumed":
            geometry += ", assumed when written (the data had no geometry)"
        facts.append(("pixel size", geometry))
    width = max(len(k) for k, _ in facts)
    for key, value in facts:
        click.echo(f"  {key.ljust(width)}  {value}")
    for key in sorted(k for k in meta if k.endswith("_check")):
        check = meta[key]
        state = "matches" if check.get("matches") else check.get("note", "not checked")
        if check.get("matches"):
            state += f" (max relative error {check['max_relative_error']:.2g})"
        click.echo(f"  {key[: -len('_check')]}: {state}")
    for title, label in (("conversions", "conversion"), ("skipped", "skipped"), ("links", "link")):
        for item in meta.get(title, []):
            click.echo(f"  {label}: {item}")
