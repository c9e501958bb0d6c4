"""End to end, as a user runs it: simulate, train a torch generator, reconstruct, score."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ptycho_core.registry import module_available

if os.environ.get("CI") != "true" and not module_available("ptycho_baseline"):
    pytest.skip("ptycho_baseline is not installed", allow_module_level=True)


def ptycho(*args, cwd):
    result = subprocess.run(
        [sys.executable, "-m", "ptycho_cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    return result


def test_simulate_train_reconstruct_score(tmp_path):
    sim = ptycho(
        "simulate",
        "--out",
        "train.npz",
        "--test-out",
        "test.npz",
        "--patch-size",
        "16",
        "--object-size",
        "48",
        cwd=tmp_path,
    )
    assert sim.returncode == 0, sim.stderr
    trained = ptycho(
        "train",
        "--generator",
        "baseline",
        "--data",
        "train.npz",
        "--out",
        "model",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--option",
        "scale=0.25",
        cwd=tmp_path,
    )
    assert trained.returncode == 0, trained.stderr
    assert "2 epochs" in trained.stdout and "checkpoint written to model" in trained.stdout
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["generator"] == "baseline" and config["options"] == {"scale": 0.25}
    assert (tmp_path / "model" / "weights.safetensors").is_file()
    history = json.loads((tmp_path / "model" / "history.json").read_text())
    assert len(history["loss"]) == 2 and all(np.isfinite(history["loss"]))

    recon = ptycho(
        "reconstruct", "--model", "model", "--data", "test.npz", "--out", "recon.npz", "--json", cwd=tmp_path
    )
    assert recon.returncode == 0, recon.stderr
    metrics = json.loads(recon.stdout)
    for key in ("amp_ssim", "phase_ssim", "amp_psnr", "data_error", "inference_patterns_per_s"):
        assert np.isfinite(metrics[key]), key
    with np.load(tmp_path / "recon.npz", allow_pickle=False) as out:
        assert out["object"].shape == (48, 48) and out["object"].dtype == np.complex64
        assert json.loads(str(out["metrics_json"]))["amp_ssim"] == pytest.approx(metrics["amp_ssim"])


def test_train_refuses_bad_usage_before_work(tmp_path):
    sim = ptycho("simulate", "--out", "d.npz", "--patch-size", "16", "--object-size", "40", cwd=tmp_path)
    assert sim.returncode == 0, sim.stderr
    unknown = ptycho("train", "-g", "nosuch", "--data", "d.npz", "--out", "m", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown generator 'nosuch'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    bad_option = ptycho("train", "-g", "baseline", "--data", "d.npz", "--out", "m", "-o", "width=3", cwd=tmp_path)
    assert bad_option.returncode == 2 and "unknown option" in bad_option.stderr
    assert not (tmp_path / "m").exists()
