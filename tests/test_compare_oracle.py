"""A comparison's table is right: an oracle that returns the true patches scores near-perfect
through `compare.run`; the same oracle shifted, reordered or twinned scores badly; every CSV
column holds what its header says; `--seeds 2`, `--force` and gridsize 2 go through the API."""

from __future__ import annotations

import csv
import math

import pytest

from ptycho_core import compare
from ptycho_core.io import save_dataset
from ptycho_core.plugins import PluginHost
from ptycho_core.simulate import SimConfig, simulate_pair
from ptycho_core.testing import dummies

TINY = SimConfig(patch_size=16, object_size=48, step=4, train_objects=1)
ORACLES = ["dummy_oracle", "dummy_oracle_shifted", "dummy_oracle_reordered", "dummy_oracle_twin"]


def _run(tmp, out, generators, **kwargs):
    host = PluginHost(load="")
    host.register(dummies.OraclePlugin(), "ptycho-oracle")
    options = [f"{name}.truth={tmp / 'test.npz'}" for name in generators]
    return compare.run(
        generators, host=host, out=out, data=str(tmp / "train.npz"), test_data=str(tmp / "test.npz"),
        simulate=None, options=options, epochs=1, **kwargs,
    )  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oracle")
    train, test = simulate_pair(TINY)
    save_dataset(train, tmp / "train.npz")
    save_dataset(test, tmp / "test.npz")
    return tmp


@pytest.fixture(scope="module")
def oracles(data):
    out = data / "cmp"
    result = _run(data, out, ORACLES, seeds=2, jobs=2)
    return result, out


def _row(result, name):
    return next(r for r in result.rows if r["generator"] == name)


def test_the_oracle_scores_near_perfect(oracles):
    result, _ = oracles
    row = _row(result, "dummy_oracle")
    assert result.exit_code == 0 and row["ok_runs"] == 2
    assert row["amp_ssim"] > 0.97 and row["phase_ssim"] > 0.97, row
    assert row["data_error"] < 0.1 and row["twin_share"] < 0.1 and row["amp_ssim_std"] == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize("name", ["dummy_oracle_shifted", "dummy_oracle_reordered", "dummy_oracle_twin"])
def test_spoiled_oracles_score_badly(oracles, name):
    result, _ = oracles
    row, best = _row(result, name), _row(result, "dummy_oracle")
    assert row["amp_ssim"] < best["amp_ssim"] - 0.2 or row["phase_ssim"] < best["phase_ssim"] - 0.2, row
    assert row["data_error"] > 5 * best["data_error"], row
    if name == "dummy_oracle_twin":
        assert row["twin_share"] > 0.9, row


def test_every_csv_column_holds_what_its_header_says(oracles):
    result, out = oracles
    with open(out / "metrics.csv", newline="") as fh:
        lines = list(csv.DictReader(fh))
    assert [line["generator"] for line in lines] == ORACLES
    for line, row in zip(lines, result.rows, strict=True):
        assert set(line) >= {"amp_ssim", "amp_ssim_std", "phase_ssim", "data_error", "twin_share"}
        for key, cell in line.items():
            value = row.get(key)
            if isinstance(value, bool) or value is None:
                assert cell in ("", str(value), str(value).lower(), str(int(value or 0))), (key, cell, value)
            elif isinstance(value, (int, float)):
                assert math.isclose(float(cell), value, rel_tol=1e-6, abs_tol=1e-12), (key, cell, value)
            else:
                assert cell == str(value), (key, cell, value)


def test_force_redoes_finished_runs_and_gridsize_2_scores_the_oracle_near_perfect(data, oracles):
    _, out = oracles
    redo = _run(data, out, ["dummy_oracle"], seeds=2, force=True)
    assert all(not r.reused for r in redo.runs) and redo.exit_code == 0
    grid = _run(data, data / "grid2", ["dummy_oracle"], gridsize=2)
    (row,) = grid.rows
    assert row["amp_ssim"] > 0.97 and row["phase_ssim"] > 0.97, row
