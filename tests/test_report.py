"""Tables, figures and the HTML report, on synthetic rows (no child processes)."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from rich.console import Console

from ptycho_cli.progress import print_table
from ptycho_core import report, rundir
from ptycho_core.data import Dataset
from ptycho_core.generator import Reconstruction


def _run(generator, seed, status="ok", **values):
    base = {
        "generator": generator,
        "run": f"{generator}-seed{seed}",
        "seed": seed,
        "status": status,
        "reason": "" if status == "ok" else "boom",
        "framework": "numpy",
        "run_dir": f"runs/{generator}",
    }
    return rundir.Row.from_dict({**base, **values})


def test_seeds_give_mean_and_sample_std_over_successful_runs():
    runs = [
        _run("a", 0, amp_ssim=0.8, parameters=10),
        _run("a", 1, amp_ssim=0.9, parameters=10),
        _run("b", 0, amp_ssim=0.5),
        _run("b", 1, status="failed"),
    ]
    a, b = report.summarise(runs, seeds=2)
    assert a["status"] == "ok" and a["amp_ssim"] == pytest.approx(0.85)
    assert a["amp_ssim_std"] == pytest.approx(math.sqrt(0.005))
    assert a["parameters"] == 10 and a["parameters_std"] == 0
    assert b["status"] == "failed 1/2: boom" and b["amp_ssim"] == 0.5 and b["amp_ssim_std"] == 0.0
    assert report.format_value(a, report.columns()[0]) == "0.850 ± 0.071"


def test_a_summary_is_typed_and_reads_like_the_dict_it_is_written_as():
    runs = [_run("a", 0, amp_ssim=0.8, parameters=10), _run("a", 1, amp_ssim=0.9, parameters=10)]
    (a,) = report.summarise(runs, seeds=2)
    assert isinstance(a, rundir.Summary) and a.ok and a.runs == a.ok_runs == 2 and a.framework == "numpy"
    assert a.metrics["amp_ssim"] == pytest.approx(0.85) and a.std["amp_ssim"] == pytest.approx(math.sqrt(0.005))
    flat = a.to_dict()
    assert list(flat)[: len(report.ROW_FIELDS) + 3] == ["generator", *report.ROW_FIELDS, "status", "amp_ssim"]
    assert list(flat)[len(report.ROW_FIELDS) + 3] == "amp_ssim_std" and "metrics" not in flat and "std" not in flat
    assert a["amp_ssim_std"] == flat["amp_ssim_std"] and a.get("reused") is False and "amp_ssim" in a
    assert a.get("no_such_key", "x") == "x" and "no_such_key" not in a
    with pytest.raises(KeyError):
        a["no_such_key"]
    assert rundir.Summary.from_dict(flat) == a


def test_single_seed_rows_keep_values_and_failed_rows_say_why():
    rows = report.summarise([_run("a", 0, amp_ssim=0.7, parameters=123), _run("b", 0, status="failed")])
    assert rows[0]["amp_ssim"] == 0.7 and rows[0]["parameters"] == 123 and "amp_ssim_std" not in rows[0]
    assert rows[1]["status"] == "failed: boom" and rows[1]["amp_ssim"] is None


def test_terminal_table_marks_failures_below_it():
    rows = report.summarise([_run("good", 0, amp_ssim=0.7), _run("bad", 0, status="failed")])
    buffer = io.StringIO()
    print_table(rows, Console(file=buffer, width=80, color_system=None))
    text = buffer.getvalue()
    assert "good" in text and "0.7" in text and "failed" in text
    assert "bad: failed: boom" in text


def test_terminal_table_leaves_out_columns_no_row_has_a_value_for():
    """Measured data: no ground-truth scores, so the table shows the data error, the agreement
    with the reference and the half-set FRC, not a row of dashes."""
    runs = [
        _run("lsqml", 0, kind="iterative", data_error=0.12, half_frc_px=8.3),
        _run("fno", 0, data_error=0.3, ref_amp_ssim=0.5, ref_phase_ssim=0.4, half_frc_px=12.0),
    ]
    buffer = io.StringIO()
    print_table(report.summarise(runs), Console(file=buffer, width=200, color_system=None))
    header = next(line for line in buffer.getvalue().splitlines() if line.startswith("generator"))
    assert "data err" in header and "ref phase SSIM" in header and "half FRC px" in header
    assert "amp SSIM " not in header.replace("ref amp SSIM", "") and "twin" not in header


def test_a_table_printed_to_a_non_terminal_keeps_every_number_whole():
    """A log file, CI or `| tee`: a plain aligned table at full width, never `0.5…`."""
    from ptycho_core import metric_registry

    terminal = metric_registry.select(terminal=True)
    values = {c.key: 0.5123456 + k for k, c in enumerate(terminal)}
    rows = report.summarise([_run("a_rather_long_generator_name", 0, **values), _run("b", 0, status="failed")])
    for width in (80, 40):
        buffer = io.StringIO()
        print_table(rows, Console(file=buffer, width=width, color_system=None))
        text = buffer.getvalue()
        assert "…" not in text and "..." not in text
        lines = text.splitlines()
        header = next(line for line in lines if line.startswith("generator"))
        assert all(c.label in header for c in terminal)
        first = next(line for line in lines if line.startswith("a_rather_long_generator_name"))
        cells = first.split()
        assert cells[-1] == "ok" and len(cells) == 2 + len(terminal)
        assert len(first) > width  # full width, not cut to the console's
    wide = io.StringIO()
    print_table(rows, Console(file=wide, width=400, color_system=None, force_terminal=True))
    assert "…" not in wide.getvalue() and "─" in wide.getvalue()  # a terminal wide enough: the rich table


def test_csv_has_std_columns_only_with_seeds(tmp_path):
    rows = report.summarise([_run("a", 0, amp_ssim=0.8), _run("a", 1, amp_ssim=0.9)], seeds=2)
    path = report.write_csv(rows, tmp_path / "m.csv", seeds=2)
    header = path.read_text().splitlines()[0].split(",")
    assert header[:4] == ["generator", "status", "amp_ssim", "amp_ssim_std"]
    single = report.write_csv(report.summarise([_run("a", 0)]), tmp_path / "s.csv")
    assert "amp_ssim_std" not in single.read_text()


def test_json_is_strict_with_nan_as_null(tmp_path):
    path = report.write_json({"x": math.nan, "y": [math.inf, 1.0], "z": np.float32(2.5)}, tmp_path / "m.json")
    assert json.loads(path.read_text()) == {"x": None, "y": [None, 1.0], "z": 2.5}


@pytest.mark.parametrize(
    ("target", "length", "label"),
    [(3.7e-6, 2e-6, "2 µm"), (9.9e-8, 5e-8, "50 nm"), (1e-3, 1e-3, "1 mm"), (0.15, 0.1, "100 mm")],
)
def test_scale_bar_lengths_are_round_numbers(target, length, label):
    assert report.nice_length(target) == pytest.approx(length)
    assert report.length_label(report.nice_length(target)) == label


def _figures_input():
    rng = np.random.default_rng(0)
    truth = (0.5 + 0.5 * rng.random((40, 40))) * np.exp(1j * rng.random((40, 40)))
    positions = np.stack(np.meshgrid(np.arange(10, 30, 4.0), np.arange(10, 30, 4.0), indexing="ij"), -1).reshape(-1, 2)
    frc = {
        "amp": {"frequency": [0, 0.25, 0.5], "frc": [1, 0.6, 0.2]},
        "phase": {"frequency": [0, 0.5], "frc": [1, 0.3]},
    }
    panel = Reconstruction(
        object=(2 * truth + 0.1 * rng.random((40, 40))).astype(np.complex64),  # not the truth up to a scalar
        weights=np.ones((40, 40), np.float32),
        positions=positions,
        frc=frc,
    )
    test = Dataset(
        diffraction=np.ones((len(positions), 8, 8), np.float32),
        positions=positions,
        probe=np.ones((8, 8), np.complex64),
        object=truth.astype(np.complex64),
    )
    return test, {"model": panel}


def test_report_writes_all_files_and_html_embeds_every_figure(tmp_path):
    truth, panels = _figures_input()
    runs = [_run("model", 0, amp_ssim=0.9, data_error=0.1), _run("broken", 0, status="failed")]
    rows = report.summarise(runs)
    path = report.write_report(
        tmp_path,
        rows=rows,
        runs=runs,
        skipped=[{"generator": "gpu_only", "reason": "unavailable: missing torch"}],
        provenance={"ptycho": "0.1.0", "data": {"description": "tiny <data>"}},
        truth=truth,
        panels=panels,
        histories={"model": {"loss": [3.0, 2.0, 1.0], "val_loss": [3.5, 2.5, None]}},
        pixel_size_m=1e-8,
    )
    for name in (
        "metrics.csv",
        "metrics.json",
        "comparison.png",
        "errors.png",
        "frc.png",
        "quality.png",
        "training.png",
    ):
        assert (tmp_path / name).stat().st_size > 0
    text = path.read_text()
    assert "<h2>Error maps</h2>" in text and "<h2>Quality against seconds</h2>" in text
    assert text.count("data:image/png;base64,") == 5  # comparison, error maps, FRC, quality, training
    assert "tiny &lt;data&gt;" in text, "text is escaped"
    assert "gpu_only" in text and "unavailable: missing torch" in text
    assert '<td class="status failed">failed: boom</td>' in text
    assert "<b>broken-seed0</b>: boom" in text and "runs/broken/run.log" in text
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["rows"] == [r.to_dict() for r in rows] and saved["rows"][0]["amp_ssim"] == 0.9
    assert [r["status"] for r in saved["runs"]] == ["ok", "failed"]
    assert "<script" not in text and "http" not in text.replace("http-equiv", "")


def test_figures_without_ground_truth_or_history_still_render(tmp_path):
    _, panels = _figures_input()
    assert report.comparison_figure(None, panels, tmp_path / "c.png").stat().st_size > 0
    assert report.comparison_figure(None, {}, tmp_path / "e.png").stat().st_size > 0
    assert report.frc_figure({}, tmp_path / "f.png").stat().st_size > 0
    assert report.training_figure({}, tmp_path / "t.png").stat().st_size > 0
    assert report.error_figure(None, panels, tmp_path / "n.png").stat().st_size > 0


def test_error_maps_show_the_reconstruction_minus_the_truth(tmp_path, monkeypatch):
    truth, panels = _figures_input()
    drawn = []
    from ptycho_core.report import figures

    original = figures.display_images

    def spy(t, p):
        images, box = original(t, p)
        drawn.append(images)
        return images, box

    monkeypatch.setattr(figures, "display_images", spy)
    assert report.error_figure(truth, panels, tmp_path / "errors.png").stat().st_size > 0
    (_, gt_amp, _), (_, amp, _) = drawn[0][:2]
    assert np.nanmax(np.abs(amp - gt_amp)) > 0  # the fixture's model differs from the truth


def test_training_figure_has_one_panel_per_run_on_its_own_scale(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    saved = []
    from ptycho_core.report import figures

    monkeypatch.setattr(figures, "_save_figure", lambda fig, path: saved.append(fig) or path)
    histories = {
        "physics": {"loss": [-2.8, -2.9, -3.0], "val_loss": [-2.7, -2.8, -2.9]},
        "supervised": {"loss": [0.5, 0.3, 0.2], "val_loss": [0.6, 0.4, None]},
        "huge": {"loss": [1e4, 10.0, 1.0], "val_loss": [None, None, None]},
    }
    report.training_figure(histories, tmp_path / "t.png")
    fig = saved[0]
    assert isinstance(fig, Figure)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.lines]
    assert [ax.get_title() for ax in panels] == list(histories)
    lims = [ax.get_ylim() for ax in panels]
    assert lims[0][1] < 0 < lims[1][0]  # each panel is scaled to its own losses
    assert panels[2].get_yscale() == "log" and panels[0].get_yscale() == "linear"


def test_html_legend_names_each_column_as_the_table_does_and_states_the_inference_batch():
    legend = report.column_legend(64)
    for col in report.columns():
        assert f"<b>{col.label}</b>" in legend
    assert "infer pat/s" not in legend and "(64 groups per predict call)" in legend
