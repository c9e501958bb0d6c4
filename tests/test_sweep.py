"""`ptycho sweep` end to end on the numpy dummies (a LocalCluster of two workers runs it), and the
grid's usage rules: one row per setting, mean ± std over seeds, resume by hash, one-line errors."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from ptycho_cli.main import State, cli
from ptycho_core.errors import UsageError
from ptycho_core.harness import sweep
from ptycho_core.plugins import PluginHost
from ptycho_core.testing import dummies

SIM = ["--sim", "patch_size=16", "--sim", "object_size=48", "--sim", "step=4", "--sim", "train_objects=1"]
ROWS = ["dummy_intensity[rate=0.25]", "dummy_intensity[rate=1.0]"]


def _invoke(*args):
    host = PluginHost(load="")
    host.register(dummies, "ptycho-dummies")
    return CliRunner().invoke(cli, list(args), obj=State(host=host), catch_exceptions=False)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "sweep"
    args = ["sweep", "-g", "dummy_intensity", "-o", "dummy_intensity.rate=0.25,1.0", "-o",
            "dummy_intensity.init_gain=0.2", "--seeds", "2", "--epochs", "2", *SIM, "--out", str(out)]  # fmt: skip
    return _invoke(*args, "--executor", "dask", "--jobs", "2"), out, args


def test_a_sweep_writes_one_row_per_setting_with_mean_and_std(swept):
    result, out, _ = swept
    assert result.exit_code == 0, result.output
    assert "ptycho sweep (mean ± std over 2 seeds)" in result.output
    with open(out / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["generator"] for r in rows] == ROWS
    assert all(r["ok_runs"] == "2" and r["status"] == "ok" and r["amp_ssim_std"] != "" for r in rows)
    runs = json.loads((out / "metrics.json").read_text())["runs"]
    assert [r["run"] for r in runs] == [f"dummy_intensity_rate={v}-seed{k}" for v in ("0.25", "1.0") for k in (0, 1)]
    config = json.loads((out / "runs" / "dummy_intensity_rate=1.0-seed1" / "run.json").read_text())
    assert config["options"] == {"rate": 1.0, "init_gain": 0.2, "phase_per_amplitude": 0.5}
    assert config["train_config"]["seed"] == 1
    gains = {r["generator"]: float(r["amp_ssim"]) for r in rows}
    assert len(set(gains.values())) > 1, "the settings train differently"


def test_a_sweep_resumes_by_hash_on_another_executor(swept):
    result, out, args = swept
    again = _invoke(*args)  # the local executor this time
    assert again.exit_code == 0, again.output
    assert again.output.count("reusing runs/") == 4 and "started" not in again.output
    assert json.loads((out / "metrics.json").read_text())["rows"][0]["reused"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "ptycho sweep needs a grid"),
        (["-o", "dummy_intensity.nope=1,2"], "dummy_intensity: unknown option(s) nope"),
        (["-o", "dummy_intensity.rate=1,1"], "expected distinct comma-separated values"),
        (["-o", "dummy_intensity.rate=fast,slow"], "dummy_intensity.rate: expected float, got 'fast'"),
        (["-o", "dummy_supervised.rate=1,2"], "'dummy_supervised' is not a generator being swept"),
        (["-o", "dummy_intensity.rate=1,2", "--scheduler", "tcp://h:1"], "--scheduler needs --executor dask"),
    ],
)
def test_bad_sweeps_are_one_line_errors_before_any_work(tmp_path, args, message):
    result = _invoke("sweep", "-g", "dummy_intensity", *args, *SIM, "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_split_grid_keeps_single_values_as_fixed_options():
    fixed, grid = sweep.split_grid(["fno.width=16,32", "fno.modes=8", "probe_weighted.x=1"])
    assert fixed == ["fno.modes=8", "probe_weighted.x=1"] and grid == {"fno": {"width": ["16", "32"]}}
    with pytest.raises(UsageError, match="NAME.KEY=VALUE"):
        sweep.split_grid(["width=16,32"])


def test_several_axes_multiply_into_one_setting_per_combination():
    from ptycho_core.harness import plan
    from ptycho_core.harness.request import CompareRequest

    host = PluginHost(load="")
    host.register(dummies, "ptycho-dummies")
    fixed, grid = sweep.split_grid(["dummy_intensity.rate=0.25,1", "dummy_intensity.init_gain=0.2,0.8"])
    request = CompareRequest(generators="dummy_intensity,dummy_nan", options=fixed, grid=grid, seeds=2)
    selection = plan.select(request, host.registry())
    plans = plan.make_plans(selection.specs, selection.option_values, selection.train, request.seeds)
    expanded = sweep.expand(plans, sweep.variants(request.grid, selection))
    settings = ["rate=0.25,init_gain=0.2", "rate=0.25,init_gain=0.8", "rate=1,init_gain=0.2", "rate=1,init_gain=0.8"]
    labels = [f"dummy_intensity[{s}]" for s in settings for _ in (0, 1)] + ["dummy_nan"] * 2
    assert [p.label for p in expanded] == labels
    assert [p.seed for p in expanded] == [0, 1] * 5
    assert expanded[3].name == "dummy_intensity_rate=0.25_init_gain=0.8-seed1"
    assert expanded[3].options == {"rate": 0.25, "init_gain": 0.8, "phase_per_amplitude": 0.5}
    assert expanded[-1] is plans[-1], "a generator outside the grid keeps its runs"
