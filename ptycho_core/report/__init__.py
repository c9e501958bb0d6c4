"""Tables, figures and the HTML report of a comparison (docs/design.md#compare, outputs).

Written into the comparison folder, each file atomically (temporary file, then rename):
    metrics.csv      one row per generator: every metric of `ptycho_core.metric_registry`, in its
                     order (with --seeds K: <metric> is the mean, <metric>_std the std)
    metrics.json     {"columns", "rows", "runs", "skipped", "provenance"}
    comparison.png   ground truth and every model, amplitude and phase (`report.figures`)
    frc.png          Fourier ring correlation curves against the ground truth
    errors.png       per model, amplitude and wrapped phase error maps against the ground truth
    training.png     training and validation loss per epoch, one panel per run
    report.html      self-contained: the table, the figures (base64 PNG), skipped runs, provenance

One module per job: `cells` (a value as the tables show it, best values, "too small", the notes),
`seeds` (the seed summary), `files` (CSV and JSON), `display` (images aligned and cropped for
display), `figures`, `html`. This package exposes their public functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ptycho_core.report.cells import (
    TOO_SMALL_TEXT,
    best_values,
    columns,
    coverage_note,
    format_value,
    method_note,
    too_small,
)
from ptycho_core.report.display import display_images, length_label, nice_length, scan_box
from ptycho_core.report.figures import comparison_figure, error_figure, frc_figure, training_figure
from ptycho_core.report.files import csv_columns, json_columns, write_csv, write_json
from ptycho_core.report.html import column_legend, html_table, write_html
from ptycho_core.report.seeds import ROW_FIELDS, summarise

if TYPE_CHECKING:  # annotations only
    from ptycho_core.data import Dataset
    from ptycho_core.generator import Reconstruction
    from ptycho_core.rundir import Row, Summary

__all__ = [
    "ROW_FIELDS",
    "TOO_SMALL_TEXT",
    "best_values",
    "column_legend",
    "columns",
    "comparison_figure",
    "coverage_note",
    "csv_columns",
    "display_images",
    "error_figure",
    "format_value",
    "frc_figure",
    "html_table",
    "json_columns",
    "length_label",
    "method_note",
    "nice_length",
    "scan_box",
    "summarise",
    "too_small",
    "training_figure",
    "write_csv",
    "write_html",
    "write_json",
    "write_report",
]


def write_report(
    out_dir,
    *,
    rows: list[Summary],
    runs: list[Row],
    skipped: list[dict],
    provenance: dict,
    truth: Dataset | None,
    panels: dict[str, Reconstruction],
    histories: dict,
    pixel_size_m: float | None = None,
    seeds: int = 1,
) -> Path:
    """Write metrics.csv, metrics.json, the four figures and report.html; returns report.html.

    rows: one `rundir.Summary` per generator (`summarise`); runs: one `rundir.Row` per (generator,
    seed); truth: the test `Dataset` (its `object` and `positions`) or None; panels: {label:
    `Reconstruction`} scored on the truth's canvas (`object`, `weights`, `positions`, and `frc`
    for frc.png); histories: {run name: History dict}.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out_dir / "metrics.csv", seeds)
    write_json(
        {
            "columns": json_columns(),
            "rows": [r.to_dict() for r in rows],
            "runs": [r.to_dict() for r in runs],
            "skipped": skipped,
            "provenance": provenance,
        },
        out_dir / "metrics.json",
    )
    frc = {label: rec.frc for label, rec in panels.items() if rec.frc}
    figures = {
        "comparison": comparison_figure(truth, panels, out_dir / "comparison.png", pixel_size_m),
        "errors": error_figure(truth, panels, out_dir / "errors.png"),
        "frc": frc_figure(frc, out_dir / "frc.png"),
        "training": training_figure(histories, out_dir / "training.png"),
    }
    return write_html(
        out_dir / "report.html",
        rows=rows,
        runs=runs,
        skipped=skipped,
        provenance=provenance,
        figures=figures,
        seeds=seeds,
    )
