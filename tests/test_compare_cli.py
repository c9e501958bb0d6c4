"""`ptycho compare` on the command line: one end-to-end run in a fresh interpreter (which also
proves the parent never imports torch or TensorFlow), and usage errors through CliRunner."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from ptycho_cli.main import State, cli
from ptycho_core.plugins import PluginHost
from ptycho_core.testing import dummies

SCRIPT = textwrap.dedent(
    """
    import sys
    from ptycho_cli.main import State, cli
    from ptycho_core.plugins import PluginHost
    from ptycho_core.testing import dummies

    if __name__ == "__main__":
        host = PluginHost(load="")
        host.register(dummies, "ptycho-dummies")
        try:
            cli.main(args=sys.argv[1:], prog_name="ptycho", obj=State(host=host))
        except SystemExit as exc:
            code = exc.code
        heavy = sorted(m for m in ("torch", "tensorflow", "keras") if m in sys.modules)
        print("HEAVY_MODULES", heavy)
        sys.exit(code)
    """
)


@pytest.fixture
def runner_host():
    host = PluginHost(load="")
    host.register(dummies, "ptycho-dummies")
    return host


def test_cli_compare_splits_one_file_and_writes_the_report_without_importing_frameworks(tmp_path):
    from ptycho_core.io import save_dataset
    from ptycho_core.simulate import DEFAULT_SIM, simulate

    data = save_dataset(simulate(DEFAULT_SIM), tmp_path / "scan.npz")
    script = tmp_path / "run_cli.py"
    script.write_text(SCRIPT)
    out = tmp_path / "cmp"
    args = [
        "compare",
        "-g",
        "dummy_intensity",
        "--data",
        str(data),
        "--epochs",
        "2",
        "--train-timeout",
        "50",
        "--out",
        str(out),
        "-o",
        "dummy_intensity.rate=0.9",
        "-o",
        "probe_weighted.x=1",
    ]
    bad = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "error: stitcher probe_weighted: unknown option(s) x" in bad.stderr
    proc = subprocess.run([sys.executable, str(script), *args[:-2]], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "HEAVY_MODULES []" in proc.stdout
    assert "…" not in proc.stdout  # stdout is a pipe: the table keeps every number whole
    assert "split along" in proc.stdout and "guard band" in proc.stdout
    assert f"report: {out / 'report.html'}" in proc.stdout
    payload = json.loads((out / "metrics.json").read_text())
    (row,) = payload["rows"]
    assert row["status"] == "ok" and row["amp_ssim"] is not None
    assert row["half_frc_px"] >= 2 and (out / "runs" / "dummy_intensity" / "halves.npz").is_file()
    assert payload["provenance"]["split"]["kind"] == "spatial"
    run = json.loads((out / "runs" / "dummy_intensity" / "run.json").read_text())
    assert run["options"]["rate"] == 0.9
    assert run["train_config"]["epochs"] == 2 and run["train_config"]["timeout"] == 50


def test_cli_unknown_generator_exits_2_with_one_line(runner_host, tmp_path):
    result = CliRunner().invoke(
        cli, ["compare", "-g", "nope", "--out", str(tmp_path / "c")], obj=State(host=runner_host)
    )
    assert result.exit_code == 2
    assert "error: unknown generator 'nope' (installed: dummy_dying" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "c").exists()


def test_cli_reference_naming_no_row_exits_2_before_any_work(runner_host, tmp_path):
    args = ["compare", "-g", "dummy_intensity", "--reference", "lsqml", "--out", str(tmp_path / "c")]
    result = CliRunner().invoke(cli, args, obj=State(host=runner_host))
    assert result.exit_code == 2 and "--reference lsqml: not a row of this comparison" in result.output
    assert not (tmp_path / "c" / "runs").exists()


def test_cli_bad_option_exits_2(runner_host, tmp_path):
    args = ["compare", "-g", "dummy_intensity", "-o", "dummy_intensity.rate=fast", "--out", str(tmp_path / "c")]
    result = CliRunner().invoke(cli, args, obj=State(host=runner_host))
    assert result.exit_code == 2 and "expected float, got 'fast'" in result.output


def test_cli_factory_refusing_an_option_value_is_one_line_and_exit_2_before_the_other_runs(runner_host, tmp_path):
    # `rate` declares no range: only the factory, inside the first child, can refuse -1.
    out = tmp_path / "c"
    args = ["compare", "-g", "dummy_intensity,dummy_supervised", "--sim", "object_size=48", "--epochs", "1"]
    args += ["-o", "dummy_intensity.rate=-1", "--out", str(out)]
    result = CliRunner().invoke(cli, args, obj=State(host=runner_host))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if "error" in line.lower() or "fail" in line.lower()]
    assert lines == ["error: dummy_intensity: bad option value: rate must be positive, not -1.0"], result.output
    assert "Traceback" not in result.output
    assert not (out / "runs" / "dummy_intensity").exists()  # not a row
    assert not (out / "runs" / "dummy_supervised").exists()  # never started
    assert not (out / "metrics.csv").exists()


def test_cli_help_explains_the_split_and_exit_codes():
    result = CliRunner().invoke(cli, ["compare", "--help"], obj=State(host=PluginHost(load="")))
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "guard band" in text and "Exit code: 0 all runs succeeded, 1 some run failed, 2 bad usage" in text


def test_train_and_compare_offer_the_same_training_options_with_one_meaning_each():
    def flags(command):
        result = CliRunner().invoke(cli, [command, "--help"], obj=State(host=PluginHost(load="")))
        assert result.exit_code == 0
        return " ".join(result.output.split())

    train, compare = flags("train"), flags("compare")
    for flag in ("--epochs", "--batch-size", "--lr", "--patience", "--val-fraction", "--clip-norm", "--train-timeout"):
        assert flag in train and flag in compare, flag
    assert "--timeout" not in train.replace("--train-timeout", "")
    assert "Hard limit" in compare and "stops gracefully" in compare and "stops gracefully" in train


def test_train_turns_a_factory_refusing_an_option_value_into_one_line_and_exit_2(runner_host, tmp_path):
    from ptycho_core.io import save_dataset
    from ptycho_core.simulate import SimConfig, simulate

    data = save_dataset(simulate(SimConfig(train_objects=1, patch_size=16, object_size=40, step=4)), tmp_path / "d.npz")
    args = ["train", "-g", "dummy_intensity", "--data", str(data), "--out", str(tmp_path / "m"), "-o", "rate=-1"]
    result = CliRunner().invoke(cli, args, obj=State(host=runner_host))
    assert result.exit_code == 2, result.output
    assert "error: dummy_intensity: bad option value: rate must be positive, not -1.0" in result.output
    assert "Traceback" not in result.output


def test_cli_compare_simulates_with_sim_settings_and_defaults_to_gridsize_2(runner_host, tmp_path):
    out = tmp_path / "c"
    args = ["compare", "-g", "dummy_intensity", "--epochs", "1", "--out", str(out)]
    args += ["--sim", "patch_size=16", "--sim", "object_size=40", "--sim", "train_objects=2"]
    args += ["--sim", "phase=independent", "--sim", "nphotons=1e4"]
    result = CliRunner().invoke(cli, args, obj=State(host=runner_host))
    assert result.exit_code == 0, result.output
    assert "2 training + 1 test 40x40 objects, aberrated probe, independent phase, 10000 photons" in result.output
    provenance = json.loads((out / "metrics.json").read_text())["provenance"]
    assert provenance["gridsize"] == 2
    simulation = provenance["data"]["simulation"]
    assert (simulation["train_objects"], simulation["phase"], simulation["nphotons"]) == (2, "independent", 1e4)
    row = json.loads((out / "metrics.json").read_text())["rows"][0]
    assert 0.0 <= row["twin_share"] <= 1.0
    bad = CliRunner().invoke(cli, ["compare", "--sim", "coma=strong", "--out", str(out)], obj=State(host=runner_host))
    assert bad.exit_code == 2 and "coma" in bad.output and "Traceback" not in bad.output
