"""End to end through the installed `ptycho` command: simulate, train pinn_tf, reconstruct."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PTYCHO = Path(sys.executable).with_name("ptycho")


def ptycho(*args, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PTYCHO_VERBOSE", "TF_CPP_MIN_LOG_LEVEL")}
    env["PTYCHO_LOAD_PLUGINS"] = "ptycho-pinn-tf"
    return subprocess.run([str(PTYCHO), *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


@pytest.mark.slow
def test_cli_trains_pinn_tf_at_gridsize_two_and_reconstructs_the_test_object(tmp_path, pinn_tf):
    if not PTYCHO.exists():
        pytest.fail(f"{PTYCHO} not found: install the ptycho distribution into this environment")
    sim = ptycho(
        "simulate", "--out", "train.npz", "--test-out", "test.npz",
        "--patch-size", 16, "--object-size", 48, "--step", 4,
        cwd=tmp_path,
    )  # fmt: skip
    assert sim.returncode == 0, sim.stderr

    train = ptycho(
        "train", "--generator", "pinn_tf", "--data", "train.npz", "--out", "model",
        "--gridsize", 2, "--epochs", 2, "--batch-size", 16, "--option", "filter_scale=1",
        cwd=tmp_path,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    # nothing from TensorFlow: only the CLI's own lines (header, per-epoch progress)
    assert all(line.startswith(("training pinn_tf", "pinn_tf: epoch")) for line in train.stderr.splitlines()), (
        train.stderr
    )
    model = tmp_path / "model"
    config = json.loads((model / "config.json").read_text())
    assert config["generator"] == "pinn_tf" and config["gridsize"] == 2
    assert config["options"] == {"filter_scale": 1, "overlap": True, "joint_channels": True}
    assert (model / "model.weights.h5").is_file()
    assert json.loads((model / "generator.json").read_text())["C"] == 4
    history = json.loads((model / "history.json").read_text())
    assert len(history["loss"]) == 2

    recon = ptycho(
        "reconstruct", "--model", "model", "--data", "test.npz", "--out", "recon.npz", "--json", cwd=tmp_path
    )
    assert recon.returncode == 0, recon.stderr
    assert recon.stderr == ""
    metrics = json.loads(recon.stdout)
    assert np.isfinite(metrics["data_error"])
    with np.load(tmp_path / "recon.npz", allow_pickle=False) as out:
        assert out["object"].dtype == np.complex64 and out["object"].shape == (48, 48)
        assert np.isfinite(out["object"]).all()
