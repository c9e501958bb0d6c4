"""`ptycho simulate` and `ptycho inspect`."""

import json

import numpy as np

from ptycho_core.io.npz import load_npz, save_npz
from ptycho_core.simulate import SimConfig, simulate_pair

SMALL = ["--patch-size", "16", "--object-size", "40", "--step", "4", "--nphotons", "1e4"]


def test_simulate_writes_train_and_test_files_from_the_given_config(invoke, tmp_path):
    train_path, test_path = tmp_path / "train.npz", tmp_path / "test.npz"
    result = invoke(
        "simulate",
        "--out",
        train_path,
        "--test-out",
        test_path,
        "--object",
        "grf",
        "--seed",
        "5",
        *SMALL,
        "--sim",
        "train_objects=1",
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {train_path} (train)" in result.stdout and f"wrote {test_path} (test)" in result.stdout
    assert "object=grf" in result.stdout
    train, test = load_npz(train_path), load_npz(test_path)
    cfg = SimConfig(object="grf", train_objects=1, patch_size=16, object_size=40, step=4.0, nphotons=1e4, seed=5)
    expected_train, expected_test = simulate_pair(cfg)
    np.testing.assert_array_equal(train.diffraction, expected_train.diffraction)
    np.testing.assert_array_equal(test.object, expected_test.object)
    assert train.metadata["simulation"] == cfg.to_dict()


def test_simulate_defaults_come_from_default_sim(invoke, tmp_path, monkeypatch):
    import ptycho_core.simulate as simulate_module

    seen = {}

    def fake_pair(cfg):
        seen["cfg"] = cfg
        return simulate_pair(SimConfig(train_objects=1, patch_size=16, object_size=24, step=4.0))

    monkeypatch.setattr(simulate_module, "simulate_pair", fake_pair)
    result = invoke("simulate", "--out", tmp_path / "d.npz", "--json")
    assert result.exit_code == 0, result.output
    assert seen["cfg"] == simulate_module.DEFAULT_SIM
    report = json.loads(result.stdout)
    assert report["config"] == simulate_module.DEFAULT_SIM.to_dict() and list(report["files"]) == ["train"]


def test_simulate_rejects_bad_settings_with_one_line(invoke, tmp_path, one_line_error):
    line = one_line_error(invoke("simulate", "--out", tmp_path / "d.npz", "--patch-size", "15"))
    assert "patch size" in line
    assert not (tmp_path / "d.npz").exists()
    line = one_line_error(invoke("simulate", "--out", tmp_path / "d.h5", *SMALL))
    assert ".npz" in line


def test_inspect_prints_the_summary_of_a_valid_file(invoke, tiny_pair, tmp_path):
    path = save_npz(tiny_pair[0], tmp_path / "d.npz")
    result = invoke("inspect", path)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == f"{path}: valid"
    assert "patterns" in result.stdout and str(tiny_pair[0].n) in result.stdout
    report = json.loads(invoke("inspect", path, "--json").stdout)
    assert report["valid"] is True and report["summary"]["patterns"] == tiny_pair[0].n
    assert report["metadata"]["counts_scale"] == 1.0


def test_inspect_lists_conversions_and_skips_of_the_ptychopinn_sample(invoke, sample_npz):
    result = invoke("inspect", sample_npz)
    assert result.exit_code == 0
    out = result.stdout
    assert "ptychopinn-raw" in out
    assert "conversion: diff3d -> diffraction (legacy key)" in out
    assert "skipped: _metadata: object array" in out
    assert "ground_truth_patches: matches" in out
    counts_line = next(line for line in out.splitlines() if "counts_scale" in line)
    assert counts_line.split() == ["counts_scale", "null"]


def test_inspect_of_an_unknown_file_type_exits_2(invoke, tmp_path, one_line_error):
    path = tmp_path / "scan.tiff"
    path.write_bytes(b"II*\x00")
    line = one_line_error(invoke("inspect", path))
    assert "no loader" in line and ".npz" in line
