"""Data-parallel training: `ptycho train --nproc 2` (two gloo processes under torchrun) follows the
loss curve of one process with twice the batch, and rank 0 alone writes the checkpoint.

The data are made so that the training groups split evenly into global batches (32 groups, 8 per
step): then step s of the two ranks together is exactly step s of one process, and the curves agree
to float rounding (fp32).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ptycho_cli.main import State, cli
from ptycho_core import parallel
from ptycho_core.io import save_dataset
from ptycho_core.plugins import PluginHost
from ptycho_core.simulate import SimConfig, simulate

#: 36 patterns: 32 training and 4 validation groups at gridsize 1.
DATA = SimConfig(patch_size=16, object_size=40, step=4, train_objects=1)
TRAIN = ["-g", "fno", "--gridsize", "1", "--epochs", "3", "--precision", "fp32", "--lr", "3e-3",
         "-o", "width=4", "-o", "blocks=1", "-o", "modes=4", "-o", "cnn_blocks=1"]  # fmt: skip


def _require_fno():
    names = {s.name for s in PluginHost(load="ptycho-fno").registry().generators() if s.available}
    if "fno" not in names:
        if os.environ.get("CI") == "true":
            pytest.fail("the fno plugin is not installed")
        pytest.skip("the fno plugin is not installed")


@pytest.mark.slow
def test_two_gloo_processes_follow_one_process_with_twice_the_batch(tmp_path):
    _require_fno()
    data = save_dataset(simulate(DATA), tmp_path / "scan.npz")
    env = {**os.environ, "PTYCHO_LOAD_PLUGINS": "ptycho-fno", "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run(
        [sys.executable, "-m", "ptycho_cli", "train", *TRAIN, "--data", str(data), "--out", str(tmp_path / "ddp"),
         "--batch-size", "4", "--nproc", "2"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "2 data-parallel processes" in ddp.stderr
    assert ddp.stdout.count("checkpoint written to") == 1, "rank 0 alone reports and writes"
    one = CliRunner().invoke(
        cli,
        ["train", *TRAIN, "--data", str(data), "--out", str(tmp_path / "one"), "--batch-size", "8"],
        obj=State(host=PluginHost(load="ptycho-fno")),
        catch_exceptions=False,
    )
    assert one.exit_code == 0, one.output
    curves = [json.loads((tmp_path / run / "history.json").read_text()) for run in ("ddp", "one")]
    for key in ("loss", "val_loss"):
        assert len(curves[0][key]) == 3
        assert curves[0][key] == pytest.approx(curves[1][key], rel=1e-5), key
    assert curves[0]["loss"][0] != pytest.approx(curves[0]["loss"][-1], rel=1e-3), "it trained"
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


def test_torchrun_environment_is_read_and_nproc_is_stripped_from_the_relaunch():
    assert parallel.ranks({}) is None and parallel.ranks({"RANK": "0", "WORLD_SIZE": "1"}) is None
    assert parallel.ranks({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == parallel.Ranks(1, 2, 1)
    assert not parallel.is_writer({"RANK": "1", "WORLD_SIZE": "2"}) and parallel.is_writer({})
    assert parallel.without_nproc(["train", "--nproc", "2", "-g", "fno", "--nproc=3"]) == ["train", "-g", "fno"]
    command = parallel.launch_command(2, ["train", "-g", "fno"])
    assert command[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m"]
    assert command[6:] == ["ptycho_cli", "train", "-g", "fno"]


def test_data_parallel_training_of_a_numpy_generator_is_refused(tmp_path):
    from ptycho_core.testing import dummies

    host = PluginHost(load="")
    host.register(dummies, "ptycho-dummies")
    data = save_dataset(simulate(DATA), tmp_path / "scan.npz")
    args = ["train", "-g", "dummy_intensity", "--data", str(data), "--out", str(tmp_path / "m"), "--nproc", "2"]
    result = CliRunner().invoke(cli, args, obj=State(host=host))
    assert result.exit_code == 2 and "needs a torch generator; dummy_intensity is numpy" in result.output
