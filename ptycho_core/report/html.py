"""report.html: the comparison's self-contained page (the table, the figures as base64 PNG,
failed and skipped runs, provenance)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from ptycho_core import agreement, rundir
from ptycho_core.metric_registry import finite
from ptycho_core.report.cells import best_values, columns, coverage_note, format_value, method_note

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; font-size: 0.9em; }
div.scroll { overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f0f0f0; }
td.name, th.name, td.status { text-align: left; }
td.best { font-weight: bold; }
td.failed { color: #b00; }
img { max-width: 100%; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.85em; }
"""


def _img_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def html_table(rows: list[dict]) -> str:
    """The metrics table as an HTML <table> (best values bold, failures in red)."""
    best = best_values(rows)
    cols = columns()
    head = "".join(f'<th title="{html.escape(c.help)}">{html.escape(c.label)}</th>' for c in cols)
    out = [f'<div class="scroll"><table><tr><th class="name">generator</th>{head}<th class="name">status</th></tr>']
    for row in rows:
        cells = [f'<td class="name">{html.escape(str(row["generator"]))}</td>']
        for col in cols:
            value = row.get(col.key)
            is_best = col.key in best and finite(value) and value == best[col.key] and len(rows) > 1
            cells.append(f"<td{' class=best' if is_best else ''}>{html.escape(format_value(row, col))}</td>")
        ok = row["status"] == "ok"
        cells.append(f'<td class="status{"" if ok else " failed"}">{html.escape(row["status"])}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table></div>")  # a table wider than the window scrolls inside its box
    return "\n".join(out)


def column_legend(batch: int | None = None) -> str:
    """Every column's label and meaning, as the table labels it (HTML list)."""
    items = []
    for col in columns():
        text = col.help
        if col.key == "inference_patterns_per_s" and batch:
            text += f" ({batch} groups per predict call)"
        unit = f" ({html.escape(col.unit)})" if col.unit else ""
        items.append(f"<li><b>{html.escape(col.label)}</b>{unit}: {html.escape(text)}</li>")
    return '<ul class="legend">' + "".join(items) + "</ul>"


def write_html(path, *, rows, runs, skipped, provenance, figures: dict, seeds: int = 1) -> Path:
    """report.html: self-contained (figures embedded as base64 PNG; no external resources).
    rows: `rundir.Summary`s; runs: `rundir.Row`s (the failed ones are listed with their logs)."""
    path = Path(path)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>ptycho compare report</title>',
        f"<style>{_STYLE}</style></head><body>",
        "<h1>ptycho compare</h1>",
        f"<p>{html.escape(str(provenance.get('data', {}).get('description', '')))}</p>",
        _probe_note(provenance, rows),
        "<h2>Metrics</h2>",
    ]
    if seeds > 1:
        parts.append(f"<p>mean ± sample standard deviation over {seeds} seeds</p>")
    parts.append(html_table(rows))
    parts.append("<p>Amplitude and phase metrics against the ground truth after one global complex scalar.</p>")
    parts.append(column_legend(provenance.get("inference_batch_groups")))
    parts.append(f"<p>{html.escape(method_note())} {html.escape(coverage_note(rows))}</p>")
    parts.append("<h3>Metrics without ground truth</h3>")
    parts.extend(f"<p>{html.escape(text)}</p>" for text in agreement.method_paragraphs(provenance.get("reference")))
    failed = [r for r in runs if not r.ok]
    if failed:
        parts.append("<h2>Failed runs</h2><ul>")
        for r in failed:
            log = f"{r.run_dir}/run.log"
            parts.append(
                f"<li><b>{html.escape(str(r.run))}</b>: {html.escape(str(r.reason))} "
                f'(log: <a href="{html.escape(log)}">{html.escape(log)}</a>)</li>'
            )
        parts.append("</ul>")
    if skipped:
        parts.append("<h2>Skipped generators</h2><ul>")
        for s in skipped:
            parts.append(f"<li><b>{html.escape(str(s['generator']))}</b>: {html.escape(str(s['reason']))}</li>")
        parts.append("</ul>")
    titles = {
        "comparison": "Reconstructions",
        "errors": "Error maps",
        "frc": "Fourier ring correlation",
        "quality": "Quality against seconds",
        "training": "Training",
    }
    for key, fig_path in figures.items():
        parts.append(f"<h2>{html.escape(titles.get(key, key))}</h2>")
        parts.append(_img_tag(fig_path, key))
    parts.append("<h2>Provenance</h2>")
    parts.append(f"<pre>{html.escape(rundir.dumps(provenance))}</pre>")
    parts.append("</body></html>")
    return rundir.write_text(path, "\n".join(parts) + "\n")


def _probe_note(provenance: dict, rows: list[dict]) -> str:
    """One paragraph: the probe decision and the probe each row used (`harness.probe`)."""
    decision = provenance.get("probe") or {}
    used = ", ".join(f"{r['generator']}: {r['probe_source']}" for r in rows if r.get("probe_source"))
    text = f"Probe: {decision.get('reason', 'the data’s')}." + (f" Used: {used}." if used else "")
    return f"<p>{html.escape(text)}</p>"
