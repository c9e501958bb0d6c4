"""The report says how much of the test region was covered and scored, and marks a metric whose
scored area was too small instead of giving it a number (issue 15)."""

from __future__ import annotations

import csv
import io

from rich.console import Console

from ptycho_cli.progress import print_table
from ptycho_core import metrics, report, rundir

COVERAGE = {"covered_fraction": 0.26, "scored_fraction": 0.12, "region_pixels": 2600.0}


def _run(generator, **values):
    base = {"generator": generator, "run": generator, "seed": 0, "status": "ok", "reason": "", "framework": "numpy"}
    return rundir.Row.from_dict({**base, **COVERAGE, **values})


def _rows():
    small_frc = {"frc_side": 11.0, "frc_too_small": 1.0, "area_too_small": 0.0, "amp_ssim": 0.4}
    return report.summarise([_run("a", **small_frc), _run("b", **small_frc, frc_amp_px=None)])


def test_a_metric_without_a_number_because_the_area_is_too_small_says_so_everywhere(tmp_path):
    rows = _rows()
    frc_col = next(c for c in report.columns() if c.key == "frc_amp_px")
    ssim_col = next(c for c in report.columns() if c.key == "amp_ssim")
    psnr_col = next(c for c in report.columns() if c.key == "amp_psnr")
    assert report.format_value(rows[0], frc_col) == "too small"
    assert report.format_value(rows[0], ssim_col) == "0.400"
    assert report.format_value(rows[0], psnr_col) == "-", "missing for another reason: no note"

    buffer = io.StringIO()
    print_table(rows, Console(file=buffer, width=250, color_system=None))
    text = buffer.getvalue()
    assert "too small" in text and "Covered: 26% of the scan rectangle" in text and "11 px" in text
    assert "too small to score: FRC." in text

    path = report.write_csv(rows, tmp_path / "m.csv")
    first = next(csv.DictReader(path.read_text().splitlines()))
    assert first["frc_amp_px"] == "too small" and first["amp_psnr"] == "" and first["amp_ssim"] == "0.4"
    assert first["covered_fraction"] == "0.26" and first["frc_side"] == "11.0" and first["frc_too_small"] == "1.0"

    html = report.html_table(rows)
    assert html.count(">too small<") == 4  # FRC amp and phase, two rows


def test_the_report_states_coverage_and_the_frc_method_with_its_thresholds(tmp_path):
    rows = report.summarise([_run("a", frc_side=40.0, frc_too_small=0.0, area_too_small=0.0, frc_amp_px=3.0)])
    note = report.coverage_note(rows)
    assert note.startswith("Covered: 26% of the scan rectangle") and "SSIM scored on 12%" in note
    assert "FRC on a 40 px covered square" in note and "too small" not in note
    method = report.method_note()
    assert f"{metrics.FRC_MIN_SIDE} px" in method and str(metrics.MIN_SCORED_PIXELS) in method
    assert "largest square" in method and "Hann" in method and "0.5" in method
    html = report.write_html(tmp_path / "r.html", rows=rows, runs=[], skipped=[], provenance={}, figures={})
    text = html.read_text()
    assert "Covered: 26% of the scan rectangle" in text and "largest square" in text
    covered = next(c for c in report.columns() if c.key == "covered_fraction")
    assert report.format_value(rows[0], covered) == "26%"


def test_without_coverage_figures_the_report_says_nothing_about_them():
    rows = report.summarise([rundir.Row(generator="a", run="a", seed=0, status="ok")])
    assert report.coverage_note(rows) == ""
    assert all(not report.too_small(rows[0], key) for key in ("frc_amp_px", "amp_ssim"))
