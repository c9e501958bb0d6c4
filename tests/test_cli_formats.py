"""The formats from the command line: `ptycho convert` between every format and back, `--loader`
and `--probe` on the commands that read data, the longest-suffix rule, and `ptycho reconstruct`
writing a Ptychodus product that Ptychodus's own reader opens."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

from ptycho_core.hookspecs import hookimpl
from ptycho_core.io import load_dataset
from ptycho_core.plugins import PluginHost
from ptycho_core.registry import LoaderSpec
from ptycho_core.testing import dummies

SIM = ("--patch-size", "16", "--object-size", "32", "--sim", "train_objects=1", "--step", "4")


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


def test_convert_moves_a_scan_through_every_format_and_back_unchanged(invoke, tmp_path, core_host):
    _ok(invoke("simulate", "--out", tmp_path / "scan.cxi", *SIM))
    chain = [
        ("scan.cxi", "scan-product.h5", ()),
        ("scan-diffraction.h5", "scan.npz", ()),
        ("scan.npz", "raw.npz", ("--to", "ptychopinn")),
        ("raw.npz", "back.cxi", ()),
    ]
    for source, target, extra in chain:
        line = _ok(invoke("convert", tmp_path / source, tmp_path / target, *extra)).output
        assert f"-> {tmp_path / target}" in line and "16 patterns of 16x16" in line
    first = load_dataset(tmp_path / "scan.cxi", registry=core_host.registry())
    last = load_dataset(tmp_path / "back.cxi", registry=core_host.registry())
    np.testing.assert_allclose(last.positions, first.positions, atol=1e-9)
    np.testing.assert_allclose(last.diffraction, first.diffraction, rtol=1e-6)
    np.testing.assert_array_equal(last.probe, first.probe)
    np.testing.assert_array_equal(last.object, first.object)
    assert first.metadata["pixel_size_m"] == pytest.approx(last.metadata["pixel_size_m"])


def test_convert_refuses_an_unknown_output_suffix_before_reading(invoke, tmp_path, one_line_error):
    line = one_line_error(invoke("convert", tmp_path / "missing.cxi", tmp_path / "out.tiff"))
    assert "out.tiff" in line and ".cxi" in line and "product.h5" in line


class _MynetLoader:
    """A third-party loader claiming `.mynet.h5`, a longer suffix than the CXI loader's `.h5`."""

    @hookimpl
    def ptycho_register_loaders(self, register):
        register(LoaderSpec(name="mynet_h5", summary="test", factory="x:y", extensions=(".mynet.h5",)))


def test_the_longest_matching_suffix_chooses_the_loader(core_host):
    with core_host.registered(_MynetLoader(), "mynet", distribution="ptycho-mynet"):
        registry = core_host.registry()
        chosen = {name: registry.loader_for(name).name for name in ("a.mynet.h5", "a.h5", "A-PRODUCT.H5", "a.cxi")}
    assert chosen == {"a.mynet.h5": "mynet_h5", "a.h5": "cxi", "A-PRODUCT.H5": "ptychodus", "a.cxi": "cxi"}


def test_loader_forces_a_loader_and_inspect_names_it(invoke, tmp_path, one_line_error):
    _ok(invoke("simulate", "--out", tmp_path / "scan.cxi", *SIM))
    (tmp_path / "scan.cxi").rename(tmp_path / "scan.bin")
    assert "no loader" in one_line_error(invoke("inspect", tmp_path / "scan.bin"))
    report = json.loads(_ok(invoke("inspect", tmp_path / "scan.bin", "--loader", "cxi", "--json")).output)
    assert report["loader"] == "ptycho:cxi" and report["summary"]["patterns"] == 16
    text = _ok(invoke("inspect", tmp_path / "scan.bin", "--loader", "cxi")).output
    assert "loader         cxi (ptycho" in text
    assert "pixel size     1.292e-07 m" in text and "8000 eV, 1 m" in text and "assumed when written" in text
    line = one_line_error(invoke("inspect", tmp_path / "scan.bin", "--loader", "npz"))
    assert "scan.bin" in line and "not an NPZ archive" in line
    assert "unknown loader 'tiff'" in one_line_error(invoke("inspect", tmp_path / "scan.bin", "--loader", "tiff"))


def test_probe_file_stands_in_for_a_cxi_file_without_a_probe(invoke, tmp_path, core_host, one_line_error):
    _ok(invoke("simulate", "--out", tmp_path / "scan.cxi", *SIM))
    probe = load_dataset(tmp_path / "scan.cxi", registry=core_host.registry()).probe
    with h5py.File(tmp_path / "scan.cxi", "r+") as h5:
        del h5["entry_1/instrument_1/source_1/illumination"]
    assert "--probe FILE" in one_line_error(invoke("inspect", tmp_path / "scan.cxi"))
    np.save(tmp_path / "probe.npy", probe)
    _ok(invoke("inspect", tmp_path / "scan.cxi", "--probe", tmp_path / "probe.npy"))
    line = one_line_error(
        invoke("inspect", tmp_path / "scan.npz", "--loader", "npz", "--probe", tmp_path / "probe.npy")
    )
    assert "loader ptycho:npz" in line and "takes no --probe" in line


@pytest.fixture
def dummy_host():
    host = PluginHost(load="")
    host.register(dummies, "ptycho-dummies")
    return host


def test_train_reconstruct_and_compare_read_data_through_loader(invoke, tmp_path, dummy_host):
    _ok(invoke("simulate", "--out", tmp_path / "scan.cxi", "--test-out", tmp_path / "test.cxi", *SIM))
    for name in ("scan", "test"):
        (tmp_path / f"{name}.cxi").rename(tmp_path / f"{name}.bin")
    data = ("--data", tmp_path / "scan.bin", "--loader", "cxi")
    model = tmp_path / "model"
    _ok(invoke("train", "-g", "dummy_intensity", *data, "--out", model, "--epochs", "1", host=dummy_host))
    recon = tmp_path / "recon.npz"
    _ok(invoke("reconstruct", "--model", model, *data, "--out", recon, host=dummy_host))
    with np.load(recon, allow_pickle=False) as z:
        assert z["object"].dtype == np.complex64
    args = ("compare", "-g", "dummy_intensity", *data, "--test-data", tmp_path / "test.bin", "--epochs", "1")
    result = _ok(invoke(*args, "--out", tmp_path / "cmp", host=dummy_host))
    assert "dummy_intensity" in result.output


def test_reconstruct_writes_a_ptychodus_product_that_ptychodus_opens(invoke, tmp_path, dummy_host):
    if os.environ.get("CI") != "true":
        pytest.importorskip("ptychodus")
    from ptychodus.plugins.h5_product_file import H5ProductFileIO

    _ok(invoke("simulate", "--out", tmp_path / "scan.cxi", *SIM))
    model = tmp_path / "model"
    data = ("--data", tmp_path / "scan.cxi")
    _ok(invoke("train", "-g", "dummy_intensity", *data, "--out", model, "--epochs", "1", host=dummy_host))
    _ok(invoke("reconstruct", "--model", model, *data, "--out", tmp_path / "recon.npz", host=dummy_host))
    _ok(invoke("reconstruct", "--model", model, *data, "--out", tmp_path / "recon-product.h5", host=dummy_host))
    product = H5ProductFileIO().read(tmp_path / "recon-product.h5")
    with np.load(tmp_path / "recon.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(product.object_.get_array()[0], z["object"])
        geometry = product.object_.get_geometry()
        x_px = geometry.map_probe_positions_to_object_x_px(product.probe_positions) + 0.5
        y_px = geometry.map_probe_positions_to_object_y_px(product.probe_positions) + 0.5
        np.testing.assert_allclose(np.stack([y_px, x_px], axis=1), z["positions"], atol=1e-9)
    scan = load_dataset(tmp_path / "scan.cxi", registry=dummy_host.registry())
    np.testing.assert_array_equal(product.probes.get_array()[0, 0], scan.probe)
    assert geometry.pixel_width_m == pytest.approx(scan.metadata["pixel_size_m"])
    assert product.metadata.name == "dummy_intensity"


def test_convert_moves_a_reconstruction_to_a_ptychodus_product_and_back(invoke, tmp_path, dummy_host, one_line_error):
    """recon.npz -> Ptychodus product (probe and geometry from --scan), opened by Ptychodus's own
    reader; the lone product -> recon .npz gives back the object and positions."""
    if os.environ.get("CI") != "true":
        pytest.importorskip("ptychodus")
    from ptychodus.plugins.h5_product_file import H5ProductFileIO

    _ok(invoke("simulate", "--out", tmp_path / "scan.cxi", *SIM))
    model, data = tmp_path / "model", ("--data", tmp_path / "scan.cxi")
    _ok(invoke("train", "-g", "dummy_intensity", *data, "--out", model, "--epochs", "1", host=dummy_host))
    _ok(invoke("reconstruct", "--model", model, *data, "--out", tmp_path / "recon.npz", host=dummy_host))
    product = tmp_path / "lone-product.h5"
    line = one_line_error(invoke("convert", tmp_path / "recon.npz", product))
    assert "--scan" in line
    out = _ok(invoke("convert", tmp_path / "recon.npz", product, "--scan", tmp_path / "scan.cxi")).output
    assert "(reconstruction)" in out and "16 positions" in out
    opened = H5ProductFileIO().read(product)
    scan = load_dataset(tmp_path / "scan.cxi", registry=dummy_host.registry())
    np.testing.assert_array_equal(opened.probes.get_array()[0, 0], scan.probe)
    _ok(invoke("convert", product, tmp_path / "back.npz"))
    with np.load(tmp_path / "recon.npz", allow_pickle=False) as a, np.load(tmp_path / "back.npz") as b:
        np.testing.assert_array_equal(b["object"], a["object"])
        np.testing.assert_allclose(b["positions"], a["positions"], atol=1e-9)
        assert b["weights"].shape == a["weights"].shape and b["weights"].max() > 0
    line = one_line_error(invoke("convert", tmp_path / "scan.cxi", tmp_path / "x.npz", "--scan", tmp_path / "scan.cxi"))
    assert "--scan applies to a reconstruction" in line


def test_the_formats_guide_runs_as_pasted(tmp_path):
    import re
    import subprocess
    import sys
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "formats.md").read_text()
    blocks = re.findall(r"<!-- runnable -->\n```bash\n(.*?)```", text, re.S)
    assert len(blocks) == 6
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    script = "set -euo pipefail\n" + "\n".join(blocks)
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "loader         cxi (ptycho" in done.stdout
    assert "over the memory limit of 4.0 KiB (set to 4K)" in done.stderr
    assert "refused before reading (exit 2)" in done.stdout
    assert f"link: entry_1/instrument_1/detector_1/data -> {tmp_path / 'counts.h5'}:/measured/data" in done.stdout
    assert (tmp_path / "scan-diffraction.h5").is_file() and (tmp_path / "recon-product.h5").is_file()
    assert '"op": "crop"' in done.stdout and (tmp_path / "scan-bin2.npz").is_file()
