"""The README's error promise for every command: a bad flag or value, a refused option and a
patch-size mismatch print ONE line (`error: ...`) and exit 2; a comparison with a failed run exits 1.
All in-process through CliRunner, with the numpy dummies (no framework)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ptycho_cli.main import State, cli
from ptycho_core.plugins import PluginHost
from ptycho_core.testing import dummies


@pytest.fixture
def host():
    host = PluginHost(load="")
    host.register(dummies, "ptycho-dummies")
    return host


def _invoke(host, *args):
    return CliRunner().invoke(cli, [str(a) for a in args], obj=State(host=host))


def _one_line_exit_2(result, *fragments):
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], result.output


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["compare", "--epochs", "0"], ("error: compare: ", "--epochs", "0")),
        (["train", "-g", "dummy_intensity", "--loss", "l2"], ("error: train: ", "--loss", "l2")),
        (["compare", "--no-such-flag"], ("--no-such-flag",)),
        (["simulate", "--patch-size", "sixteen"], ("--patch-size",)),
    ],
)
def test_click_validated_options_print_one_line_and_exit_2(host, tmp_path, args, fragments):
    _one_line_exit_2(_invoke(host, *args, "--out", tmp_path / "x"), *fragments)


def _simulated(host, tmp_path, name, patch_size):
    path = tmp_path / f"{name}.npz"
    size = 3 * patch_size
    result = _invoke(host, "simulate", "--out", path, "--patch-size", patch_size, "--object-size", size)
    assert result.exit_code == 0, result.output
    return path


def test_reconstruct_with_another_patch_size_prints_one_line_and_exits_2(host, tmp_path):
    train = _simulated(host, tmp_path, "train16", 16)
    other = _simulated(host, tmp_path, "other32", 32)
    model = tmp_path / "model"
    result = _invoke(host, "train", "-g", "dummy_intensity", "--data", train, "--out", model, "--epochs", "1")
    assert result.exit_code == 0, result.output
    result = _invoke(host, "reconstruct", "--model", model, "--data", other, "--out", tmp_path / "r.npz")
    _one_line_exit_2(result, "patterns are 32x32, the model expects 16x16")


def test_compare_with_a_failed_run_exits_1_on_the_command_line(host, tmp_path):
    args = ["compare", "-g", "dummy_raising", "--sim", "object_size=48", "--epochs", "1", "--out", tmp_path / "c"]
    result = _invoke(host, *args)
    assert result.exit_code == 1, result.output
    assert "1 of 1 run(s) failed" in result.output and "Traceback" not in result.output
