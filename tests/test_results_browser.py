"""The leaderboard page and a comparison's report.html in a real headless browser (Debian's
Chromium, driven by Playwright): no console errors, the expected rows, working sort, a screenshot
that is not blank. Chromium comes from `make install` (Debian package chromium)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
#: Without these flags Chromium tries the network at start (closed here: errors and delays).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.slow


def _missing(what: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing (make install installs it)")
    pytest.skip(f"{what} is missing (make install installs it)")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (shutil.which("chromium") or Path(CHROMIUM).exists()):
        _missing("Chromium (Debian package chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright (pip install playwright)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        yield context
        context.close()


def _load(context, path: Path):
    """Open a file in a new page; returns (page, console errors and page errors)."""
    page = context.new_page()
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(path.resolve().as_uri(), wait_until="load")
    return page, errors


def _not_blank(png: bytes) -> float:
    """Standard deviation of the screenshot's grey levels (a blank page gives 0)."""
    import io

    import numpy as np
    from PIL import Image

    grey = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    return float(grey.std())


@pytest.fixture(scope="module")
def leaderboard_page(dummy_comparison, tmp_path_factory):
    from ptycho_core.results import queries
    from ptycho_core.results.html import write_page
    from ptycho_core.results.record import import_folders, write
    from ptycho_core.results.store import Store
    from ptycho_core.testing.results import synthetic_comparison

    folder = dummy_comparison[0]
    out = tmp_path_factory.mktemp("page") / "leaderboard.html"
    with Store.open(out.parent / "results.db") as store:
        import_folders(store, [folder])
        for index in range(3):
            write(store, synthetic_comparison(index, runs=5))
        board = queries.leaderboard(store, "amp_ssim")
        write_page(board, out, store.where)
    return out, board, folder


def test_leaderboard_page_loads_sorts_and_links(browser, leaderboard_page, tmp_path):
    path, board, folder = leaderboard_page
    page, errors = _load(browser, path)
    tables = page.locator("table.leaderboard")
    assert tables.count() == len(board["datasets"]) == 4  # the dummies' data and three synthetic sets
    for k, group in enumerate(board["datasets"]):
        names = tables.nth(k).locator("tbody tr td:nth-child(2)").all_inner_texts()
        assert names == [r["generator"] for r in group["rows"]]
    real = next(k for k, g in enumerate(board["datasets"]) if g["rows"][0]["generator"].startswith("dummy_"))
    link = tables.nth(real).locator("a").first
    assert (
        Path(page.evaluate("(a) => decodeURI(new URL(a.href).pathname)", link.element_handle()))
        == (folder / "report.html").resolve()
    )
    big = max(range(len(board["datasets"])), key=lambda k: len(board["datasets"][k]["rows"]))
    values = [float(v) for v in tables.nth(big).locator("tbody tr td.value").all_inner_texts()]
    assert values == sorted(values, reverse=True) and len(values) > 2
    tables.nth(big).locator("th", has_text="amp_ssim").click()  # descending again: unchanged
    tables.nth(big).locator("th", has_text="amp_ssim").click()  # ascending
    flipped = [float(v) for v in tables.nth(big).locator("tbody tr td.value").all_inner_texts()]
    assert flipped == sorted(values)
    shot = tmp_path / "leaderboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert _not_blank(shot.read_bytes()) > 10
    assert errors == []
    shutil.copy(shot, path.parent / "leaderboard.png")  # kept beside the page for a look


def test_comparison_report_loads_with_its_table_and_figures(browser, dummy_comparison, tmp_path):
    folder, result, _ = dummy_comparison
    page, errors = _load(browser, folder / "report.html")
    rows = page.locator("table").first.locator("tr")
    assert rows.count() == 1 + len(result.rows)
    names = [rows.nth(k).locator("td").first.inner_text() for k in range(1, rows.count())]
    assert names == [r["generator"] for r in result.rows]
    images = page.locator("img")
    assert images.count() >= 3
    widths = page.evaluate("() => Array.from(document.images).map((img) => img.naturalWidth)")
    assert all(w > 0 for w in widths), widths  # every embedded figure decodes
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=False)
    assert _not_blank(shot.read_bytes()) > 10
    assert errors == []


#: What a metrics table must do at this window width: fit, or scroll inside its own box.
NARROW = {"width": 1000, "height": 800}

_TABLE_BOX = """(selector) => {
    const table = document.querySelector(selector);
    const box = table.closest("div.scroll") || table.parentElement;
    const cells = box.querySelectorAll("tr:first-child th");
    box.scrollLeft = box.scrollWidth;
    const last = cells[cells.length - 1].getBoundingClientRect();
    return {page: document.documentElement.scrollWidth, window: window.innerWidth, box: box.clientWidth,
            table: box.scrollWidth, overflow: getComputedStyle(box).overflowX, lastRight: last.right,
            lastWidth: last.width, boxRight: box.getBoundingClientRect().right};
}"""


@pytest.mark.parametrize("which", ["report", "leaderboard"])
def test_metrics_tables_fit_or_scroll_horizontally_at_1000_px(browser, dummy_comparison, leaderboard_page, which):
    path = dummy_comparison[0] / "report.html" if which == "report" else leaderboard_page[0]
    page, errors = _load(browser, path)
    page.set_viewport_size(NARROW)
    box = page.evaluate(_TABLE_BOX, "table")
    assert box["page"] <= box["window"], box  # the page itself never runs off the window's right edge
    assert box["overflow"] == "auto", box
    if box["table"] > box["box"]:  # wider than its box: scrolled to the end, the last column is in view
        assert box["lastWidth"] > 0 and box["lastRight"] <= box["boxRight"] + 1, box
    assert errors == []
