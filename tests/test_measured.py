"""Measured data (issue 21): tike's pixel-unit scans and the Siemens star, the split policy of one
scan, one refined probe for every row, iterative rows that keep their best finite iterate, and
figures drawn against the reference row."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from ptycho_core import compare, data
from ptycho_core.errors import DataError, UsageError
from ptycho_core.io import load_dataset, save_dataset
from ptycho_core.io.tike import from_tike
from ptycho_core.plugins import PluginHost
from ptycho_core.simulate import SimConfig, simulate_pair
from ptycho_core.testing import dummies

TINY = SimConfig(train_objects=1, patch_size=16, object_size=48, step=4)


def _host() -> PluginHost:
    host = PluginHost(load="")
    host.register(dummies, "ptycho-dummies")
    return host


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A tiny scan saved as a measured one: no object, a probe guess 0.8 x the truth, no 'simulate' source."""
    test = simulate_pair(TINY)[1]
    ds = dataclasses.replace(test, object=None, probe=(0.8 * test.probe).astype(np.complex64), metadata={})
    path = tmp_path_factory.mktemp("measured") / "scan.npz"
    save_dataset(ds, path)
    return path


# --- the tike layout and the star ------------------------------------------------------------------


def test_tike_layout_converts_counts_corners_and_probe_scale(tiny_pair):
    ds = tiny_pair[1]
    n = ds.patch_size
    counts = np.fft.ifftshift(ds.diffraction.astype(np.float64) ** 2, axes=(-2, -1))[None]  # DC at the corner
    corners = (ds.positions - n / 2 - 30.0)[None]  # minimum corners, negative after the offset
    out = from_tike(counts, corners, (ds.probe * 1e-3)[None, None, None, None], "scan")
    np.testing.assert_allclose(out.diffraction, ds.diffraction, rtol=1e-5, atol=1e-5)
    shift = out.positions - ds.positions
    np.testing.assert_allclose(shift, np.round(shift[0:1]).repeat(len(shift), 0), atol=1e-9)  # one whole-pixel shift
    assert out.positions.min() >= n // 2
    energy = (np.abs(out.probe.astype(np.complex128)) ** 2).sum()
    assert energy == pytest.approx((ds.diffraction.astype(np.float64) ** 2).sum((1, 2)).mean(), rel=1e-5)
    assert out.metadata["format"] == "tike-npz" and len(out.metadata["conversions"]) == 3
    with pytest.raises(DataError, match="one view"):
        from_tike(np.concatenate([counts, counts]), np.concatenate([corners, corners]), ds.probe)


def test_the_siemens_star_loads_as_a_measured_scan(siemens_star):
    ds = load_dataset(siemens_star)
    assert ds.n == 516 and ds.patch_size == 128 and not ds.has_ground_truth
    mean = (ds.diffraction.astype(np.float64) ** 2).mean(axis=0)
    yy, xx = np.mgrid[:128, :128]
    centre = ((mean * yy).sum() / mean.sum(), (mean * xx).sum() / mean.sum())
    assert abs(centre[0] - 64) < 4 and abs(centre[1] - 64) < 4  # fftshifted: the direct beam in the middle
    assert ds.positions.min() >= 64 and ds.metadata["format"] == "tike-npz"
    energy = (np.abs(ds.probe.astype(np.complex128)) ** 2).sum()
    assert energy == pytest.approx(ds.summary()["mean_counts_per_pattern"], rel=1e-4)
    small = load_dataset(siemens_star, crop=64)
    assert small.patch_size == 64 and small.metadata["preprocess"][0]["to"] == 64
    np.testing.assert_allclose(small.positions, ds.positions / 2)


# --- the split policy ------------------------------------------------------------------------------


def test_one_scan_without_truth_trains_on_the_scan_it_reconstructs(tiny_pair):
    scan = dataclasses.replace(tiny_pair[0], object=None)
    train, test, info = data.split_scan(scan)
    assert info == {"kind": "none", "policy": "none", "train": scan.n, "test": scan.n, "dropped": 0}
    assert train is test
    train, test, info = data.split_scan(scan, "interleaved")
    assert (info["train"], info["test"]) == ((scan.n + 1) // 2, scan.n // 2)


def test_a_spatial_split_that_drops_most_of_the_scan_is_refused_unless_allowed():
    scan = simulate_pair(SimConfig(train_objects=1, patch_size=16, object_size=64, step=4))[0]
    with pytest.raises(DataError, match=r"would drop 96 of 144 patterns \(67%, more than 50%\).* --max-dropped"):
        data.split_scan(scan)  # with ground truth the default is spatial
    _, _, info = data.split_scan(scan, "spatial", max_dropped=0.7)
    assert (info["policy"], info["train"], info["test"], info["dropped"]) == ("spatial", 24, 24, 96)


# --- one probe for everyone ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def refined(measured, tmp_path_factory):
    out = tmp_path_factory.mktemp("refined") / "cmp"
    options = {"dummy_iterative": {"iterations": "6"}}
    names = "dummy_iterative,dummy_intensity"
    result = compare.run(names, host=_host(), data=str(measured), out=out, epochs=1, options=options)
    return result, out


def test_measured_data_gives_every_learned_row_the_reference_rows_refined_probe(refined, measured):
    result, out = refined
    ok = {r.generator for r in result.runs if r.ok}
    assert {"dummy_iterative", "dummy_intensity"} <= ok
    iterative = json.loads((out / "runs" / "dummy_iterative" / "run.json").read_text())
    learned = json.loads((out / "runs" / "dummy_intensity" / "run.json").read_text())
    assert iterative["options"]["refine_probe"] is True and iterative["probe_source"] == "refined"
    assert learned["probe_source"] == "dummy_iterative (refined)"
    ref_probe = np.load(out / "runs" / "dummy_iterative" / "probe.npy", allow_pickle=False)
    given = load_dataset(measured).probe
    assert not np.allclose(ref_probe, given)  # it was refined
    np.testing.assert_array_equal(np.load(out / "runs" / "dummy_intensity" / "probe.npy"), ref_probe)
    with np.load(out / "data-probe" / "train.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(z["probe"], ref_probe)  # the physics loss uses it too
    positions = np.load(out / "runs" / "dummy_intensity" / "positions.npy", allow_pickle=False)
    assert positions.shape == (load_dataset(measured).n, 2)
    provenance = result.provenance
    assert provenance["probe"]["from"] == "dummy_iterative" and provenance["probe"]["policy"] == "refined"
    assert provenance["split"]["policy"] == "none"
    rows = {r["generator"]: r for r in result.rows}
    assert rows["dummy_intensity"]["probe_source"] == "dummy_iterative (refined)"
    with pytest.raises(UsageError, match="supervised and the training data has no ground-truth object"):
        compare.run("dummy_supervised", host=_host(), data=str(measured), out=out.parent / "sup")
    assert (out / "comparison.png").stat().st_size > 0 and (out / "errors.png").stat().st_size > 0


def test_probe_from_data_keeps_the_files_probe_and_simulations_keep_their_exact_probe(measured, tmp_path):
    options = {"dummy_iterative": {"iterations": "2"}}
    kept = compare.run(
        "dummy_iterative,dummy_intensity",
        host=_host(),
        data=str(measured),
        out=tmp_path / "a",
        epochs=1,
        options=options,
        probe_from="data",
    )
    assert kept.provenance["probe"]["policy"] == "data"
    assert {r.probe_source for r in kept.runs} == {"data"}
    assert (
        json.loads((tmp_path / "a" / "runs" / "dummy_iterative" / "run.json").read_text())["options"]["refine_probe"]
        is False
    )
    sim = compare.run(
        "dummy_iterative,dummy_intensity", host=_host(), simulate=TINY, out=tmp_path / "b", epochs=1, options=options
    )
    assert sim.provenance["probe"]["policy"] == "data" and "exact" in sim.provenance["probe"]["reason"]
    with pytest.raises(UsageError, match="--probe-from dummy_intensity"):
        compare.run(
            "dummy_intensity", host=_host(), data=str(measured), out=tmp_path / "c", probe_from="dummy_intensity"
        )


def test_reconstruct_refines_the_probe_of_measured_data_unless_told(measured, tmp_path, invoke):
    host = _host()
    out = tmp_path / "recon.npz"
    result = invoke("reconstruct", "-g", "dummy_iterative", "--data", measured, "--out", out, host=host)
    assert result.exit_code == 0, result.output
    assert "refining the probe (refine_probe=true)" in result.output
    result = invoke(
        "reconstruct", "-g", "dummy_iterative", "--data", measured, "--out", out, "-o", "refine_probe=false", host=host
    )
    assert result.exit_code == 0 and "refining the probe" not in result.output


# --- end to end on the star ------------------------------------------------------------------------


@pytest.mark.slow
def test_compare_on_the_measured_star_as_a_user_runs_it(siemens_star, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    names = {s.name: s for s in PluginHost.from_environment().registry().generators()}
    missing = [n for n in ("lsqml", "fno") if n not in names or not names[n].available]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"generators {missing} not installed (make install)")
        pytest.skip(f"generators {missing} not installed")
    ptycho = str(Path(sys.executable).with_name("ptycho"))
    args = ["compare", "--data", siemens_star, "--crop", "32", "-g", "lsqml,fno", "--epochs", "1"]
    args += ["-o", "lsqml.iterations=3", "--half-set", "false", "--out", "cmp"]  # half-sets: test_agreement_star
    proc = subprocess.run([ptycho, *map(str, args)], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "split none" in proc.stdout and "learned rows use lsqml's" in proc.stdout
    out = tmp_path / "cmp"
    report = json.loads((out / "metrics.json").read_text())
    assert report["provenance"]["split"]["policy"] == "none"
    assert report["provenance"]["probe"]["from"] == "lsqml"
    runs = {r["generator"]: r for r in report["runs"]}
    assert runs["lsqml"]["probe_source"] == "refined" and runs["fno"]["probe_source"] == "lsqml (refined)"
    assert all(r["status"] == "ok" and r["data_error"] is not None for r in runs.values())
    probe = np.load(out / "runs" / "lsqml" / "probe.npy", allow_pickle=False)
    np.testing.assert_array_equal(np.load(out / "runs" / "fno" / "probe.npy", allow_pickle=False), probe)
    assert probe.shape == (32, 32)
    assert (out / "comparison.png").stat().st_size > 0
    assert "Probe: measured data" in (out / "report.html").read_text()


def test_figures_without_truth_put_the_reference_first_and_align_every_row_to_it(tmp_path):
    from ptycho_core.generator import Reconstruction
    from ptycho_core.report import measured

    rng = np.random.default_rng(0)
    obj = (1 + 0.2 * rng.random((40, 40))) * np.exp(0.3j * rng.random((40, 40)))
    weights = np.zeros((40, 40))
    weights[5:35, 5:35] = 1.0
    panels = {
        "net": Reconstruction(3 * np.exp(1j) * obj, weights=weights, positions=np.array([[10.0, 10.0]])),
        "solver": Reconstruction(obj, weights=weights, positions=np.array([[10.0, 10.0]])),
    }
    shown = measured.images(panels, None, {"net": "learned", "solver": "iterative"})
    assert [t for t, _, _ in shown] == ["reference: solver", "net"]
    assert shown[0][1].shape == (30, 30)  # the whole covered region, not the box of scan centres
    np.testing.assert_allclose(shown[1][1], shown[0][1], rtol=1e-6)  # one global scalar removed
    np.testing.assert_allclose(shown[1][2], shown[0][2], atol=1e-6)
    assert measured.comparison_figure(panels, tmp_path / "c.png", "solver").stat().st_size > 0
    assert measured.error_figure(panels, tmp_path / "e.png", "solver").stat().st_size > 0
