"""The leaderboard as one self-contained HTML page (`ptycho results html --out FILE`).

One sortable table per dataset (click a column header; a few lines of inline script, no
external resources), each row linking to its comparison's report.html by a path relative to the
page, so that the page and the comparison folders can move together.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from ptycho_core import rundir
from ptycho_core.results.queries import listed

_STYLE = """
body { font-family: "DejaVu Sans", sans-serif; margin: 2em; color: #222; }
table.leaderboard { border-collapse: collapse; margin-bottom: 2em; }
div.scroll { overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; white-space: nowrap; }
th { background: #eef2f7; cursor: pointer; user-select: none; }
th.sorted-desc::after { content: " \\25BC"; } th.sorted-asc::after { content: " \\25B2"; }
td.text, th.text { text-align: left; }
td.value { font-weight: bold; background: #f3f9ee; }
.note { color: #555; }
"""

_SCRIPT = """
document.querySelectorAll("table.leaderboard").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var descending = !th.classList.contains("sorted-desc");
      table.querySelectorAll("th").forEach(function (h) { h.classList.remove("sorted-desc", "sorted-asc"); });
      th.classList.add(descending ? "sorted-desc" : "sorted-asc");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.sort, y = b.cells[column].dataset.sort;
        var nx = parseFloat(x), ny = parseFloat(y), cmp;
        if (!isNaN(nx) && !isNaN(ny)) { cmp = nx - ny; } else { cmp = String(x).localeCompare(String(y)); }
        return descending ? -cmp : cmp;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _cell(value, text: str | None = None, cls: str = "") -> str:
    sort = "" if value is None else value
    shown = text if text is not None else ("" if value is None else _number(value))
    klass = f' class="{cls}"' if cls else ""
    return f'<td{klass} data-sort="{html.escape(str(sort))}">{shown}</td>'


def _number(value) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1000:
        return f"{value:,.0f}"
    if isinstance(value, float):
        return html.escape(f"{value:.4g}")
    return html.escape(str(value))


def _table(group: dict, metric: str, page_dir: Path) -> str:
    others = [m for m in listed() if m != metric]
    head = ["#", "generator", "plugin", "version", metric, *others, "gridsize", "date", "run", "report"]
    text_columns = {"generator", "plugin", "version", "date", "report"}
    out = ['<div class="scroll"><table class="leaderboard"><thead><tr>']
    out += [f'<th class="{"text" if h in text_columns else ""}">{html.escape(h)}</th>' for h in head]
    out.append("</tr></thead><tbody>")
    for rank, row in enumerate(group["rows"], start=1):
        cells = [
            _cell(rank),
            _cell(row["generator"], html.escape(row["generator"]), "text"),
            _cell(row["plugin"] or "", None, "text"),
            _cell(row["plugin_version"] or "", None, "text"),
            _cell(row["value"], None, "value"),
            *(_cell(row["metrics"].get(m)) for m in others),
            _cell(row["gridsize"]),
            _cell(row["started"] or "", None, "text"),
            _cell(row["id"]),
            _cell(row["report"] or "", _link(row["report"], page_dir), "text"),
        ]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")  # a wide table scrolls inside its box
    return "\n".join(out)


def _link(report: str | None, page_dir: Path) -> str:
    if not report:
        return ""
    try:
        href = os.path.relpath(report, page_dir)
    except ValueError:  # another drive
        href = Path(report).as_uri()
    return f'<a href="{html.escape(Path(href).as_posix())}">report</a>'


def render(board: dict, page_dir: Path, where: str) -> str:
    """The page's HTML for a `queries.leaderboard` result."""
    metric, order = board["metric"], board["order"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>ptycho leaderboard</title>',
        f"<style>{_STYLE}</style></head><body>",
        "<h1>ptycho leaderboard</h1>",
        f'<p class="note">Best successful run per generator on each dataset by <b>{html.escape(metric)}</b> '
        f"({'higher' if order == 'max' else 'lower'} is better), from {html.escape(where)}. "
        "Click a column header to sort.</p>",
    ]
    if not board["datasets"]:
        parts.append(f"<p>No successful run has {html.escape(metric)} yet.</p>")
    for group in board["datasets"]:
        parts.append(f"<h2>{html.escape(group['description'] or 'unknown data')}</h2>")
        parts.append(f'<p class="note">data fingerprint {html.escape(group["fingerprint"][:16])}</p>')
        parts.append(_table(group, metric, page_dir))
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"


def write_page(board: dict, out, where: str) -> Path:
    """Write the leaderboard page to `out` (atomically); returns its path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return rundir.write_text(out, render(board, out.resolve().parent, where))
