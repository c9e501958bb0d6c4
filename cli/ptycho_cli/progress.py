"""Terminal rendering of long work: a rich progress bar on a terminal, plain lines otherwise.

`training_progress` turns a trainer's `progress(event)` dicts {epoch, epochs, step, steps, loss,
val_loss} into one bar per generator (`ptycho train`); `CompareDisplay` renders a comparison's
events (`ptycho_core.harness.events`) and `print_result` its table (`ptycho compare`). The core
returns data and emits events; only this module prints them.
"""

from __future__ import annotations

import contextlib
import sys
import time


class _PlainProgress:
    """One line per epoch: for logs and non-interactive terminals."""

    def __init__(self, stream):
        self.stream = stream
        self.start = time.perf_counter()

    def callback(self, name: str):
        last = {"epoch": None}

        def progress(event: dict) -> None:
            epoch, epochs = event.get("epoch"), event.get("epochs")
            if event.get("step") != event.get("steps") or epoch == last["epoch"]:
                return
            last["epoch"] = epoch
            val = event.get("val_loss")
            val_text = f"  val {val:.4g}" if isinstance(val, (int, float)) else ""
            loss = event.get("loss")
            loss_text = f"{loss:.4g}" if isinstance(loss, (int, float)) else "-"
            elapsed = time.perf_counter() - self.start
            print(
                f"{name}: epoch {epoch}/{epochs}  loss {loss_text}{val_text}  ({elapsed:.0f} s)",
                file=self.stream,
                flush=True,
            )

        return progress


class _RichProgress:
    def __init__(self, progress):
        self.progress = progress
        self.tasks: dict[str, int] = {}

    def callback(self, name: str):
        task = self.progress.add_task(name, total=None, loss="")

        def progress(event: dict) -> None:
            epochs, steps = event.get("epochs") or 1, event.get("steps") or 1
            epoch, step = event.get("epoch") or 1, event.get("step") or 0
            loss, val = event.get("loss"), event.get("val_loss")
            text = f"epoch {epoch}/{epochs}"
            if isinstance(loss, (int, float)):
                text += f"  loss {loss:.4g}"
            if isinstance(val, (int, float)):
                text += f"  val {val:.4g}"
            self.progress.update(task, total=epochs * steps, completed=(epoch - 1) * steps + step, loss=text)

        return progress


@contextlib.contextmanager
def training_progress(stream=None, force_plain: bool = False):
    """Yield an object whose `.callback(name)` returns a progress callback for one generator."""
    stream = stream or sys.stderr
    if force_plain or not stream.isatty():
        yield _PlainProgress(stream)
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description:<16}"),
        BarColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
        console=Console(file=stream),
    ) as progress:
        yield _RichProgress(progress)


class CompareDisplay:
    """Renders a comparison's events (`ptycho_core.harness.events`): notes as lines, and one
    progress line per run: a rich bar on a terminal, one plain line per epoch otherwise.

    Use as `with CompareDisplay(console) as display: harness.run(request, display)`.
    """

    def __init__(self, console=None):
        from rich.console import Console

        self.console = console or Console()
        self.plain = not self.console.is_terminal
        self.progress = None
        self.tasks: dict[str, int] = {}
        self.pending: dict[str, tuple] = {}
        self.printed: dict[str, int] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stop()

    def line(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def __call__(self, event) -> None:
        from ptycho_core.harness import events as ev

        handlers = {
            ev.Note: lambda e: self.line(e.text),
            ev.ChildrenStarting: lambda e: self._start(e.runs),
            ev.RunStarted: self._run_started,
            ev.RunProgress: self._progress,
            ev.RunPredicting: self._predicting,
            ev.RunFinished: self._finished,
            ev.ChildrenDone: lambda e: self._stop(),
        }
        handler = handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _start(self, names) -> None:
        if self.plain:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        width = max((len(n) for n in names), default=8)
        self.progress = Progress(
            TextColumn(f"{{task.description:<{width}}}"),
            BarColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.progress.__enter__()
        for name in names:
            self.tasks[name] = self.progress.add_task(name, total=None, start=False, status="waiting")

    def _stop(self) -> None:
        if self.progress is not None:
            self.progress.__exit__(None, None, None)
            self.progress = None

    def _run_started(self, event) -> None:
        if self.progress is None:
            self.line(f"{event.run}: started")
            return
        self.progress.start_task(self.tasks[event.run])
        self.progress.update(self.tasks[event.run], status="starting")

    def _progress(self, e) -> None:
        text = f"epoch {e.epoch}/{e.epochs}"
        if isinstance(e.loss, (int, float)):
            text += f"  loss {e.loss:.4g}"
        if isinstance(e.val_loss, (int, float)):
            text += f"  val {e.val_loss:.4g}"
        if self.progress is not None:
            steps = max(1, e.steps or 0)
            total = max(1, (e.epochs or 0) * steps)
            done = max(0, ((e.epoch or 0) - 1) * steps + (e.step or 0))
            self.progress.update(self.tasks[e.run], total=total, completed=min(done, total), status=text)
            return
        # Plain lines: one per epoch, printed at its end event (which carries the validation loss).
        if e.epoch_end and self.printed.get(e.run) != e.epoch:
            self.printed[e.run] = e.epoch
            self.line(f"{e.run}: {text}")

    def _predicting(self, event) -> None:
        if self.progress is not None:
            self.progress.update(self.tasks[event.run], status=event.status)

    def _finished(self, e) -> None:
        text = f"done in {e.seconds:.0f} s" if e.ok else f"FAILED: {e.reason}"
        if self.progress is None:
            self.line(f"{e.run}: {text}")
            return
        task = self.tasks[e.run]
        total = self.progress.tasks[task].total or 1
        completed = total if e.ok else self.progress.tasks[task].completed
        self.progress.update(task, total=total, completed=completed, status=text)
        self.progress.stop_task(task)


def _short(value: float) -> str:
    """Compact number for the terminal: 0.594, 18.7, 1.2k, 3.4M."""
    a = abs(value)
    if a >= 1e6:
        return f"{value / 1e6:.3g}M"
    if a >= 1e4:
        return f"{value / 1e3:.3g}k"
    if a >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def _cell(row: dict, col) -> str:
    from ptycho_core.metric_registry import finite
    from ptycho_core.report import TOO_SMALL_TEXT, too_small

    value = row.get(col.key)
    if not finite(value):
        return TOO_SMALL_TEXT if too_small(row, col.key) else "-"
    text = col.fmt.format(value) if "%" in col.fmt else _short(value)
    if finite(row.get(f"{col.key}_std")):
        text += "±" + _short(row[f"{col.key}_std"])
    return text


def print_table(rows: list[dict], console, seeds: int = 1, title: str = "ptycho compare") -> None:
    """The metrics table (the `terminal` metrics of ptycho_core.metric_registry); failure reasons
    below it. A column no row has a value for is left out (measured data has no ground-truth
    scores, a comparison without a reference row no agreement), unless every row failed.
    metrics.csv and report.html have every column.

    On a terminal wide enough for it: a rich table, best values in bold. Otherwise (a log file,
    CI, `| tee`, a narrow window): a plain aligned table at its full width. No number is ever
    shortened to fit.
    """
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from ptycho_cli.listing import _table
    from ptycho_core import metric_registry
    from ptycho_core.report import best_values, coverage_note, too_small

    title += f" (mean ± std over {seeds} seeds)" if seeds > 1 else ""
    cols = metric_registry.select(terminal=True)
    filled = [c for c in cols if any(metric_registry.finite(r.get(c.key)) or too_small(r, c.key) for r in rows)]
    cols = filled or cols
    best = best_values(rows)
    headers = ["generator", *(c.label for c in cols), "status"]
    cells = [
        [str(row["generator"]), *(_cell(row, col) for col in cols), "ok" if row["status"] == "ok" else "failed"]
        for row in rows
    ]
    table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0))
    table.add_column("generator", no_wrap=True)
    for col in cols:
        table.add_column(col.label, justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for row, line in zip(rows, cells, strict=True):
        shown = [
            f"[bold]{escape(text)}[/bold]"
            if col.key in best and row.get(col.key) == best[col.key] and len(rows) > 1
            else escape(text)
            for col, text in zip(cols, line[1:-1], strict=True)
        ]
        status = "[green]ok[/green]" if line[-1] == "ok" else "[red]failed[/red]"
        table.add_row(escape(line[0]), *shown, status)
    say = lambda text: console.print(text, highlight=False, markup=False, soft_wrap=True, crop=False)  # noqa: E731
    if console.is_terminal and console.measure(table).maximum <= console.width:
        console.print(table)
    else:
        say(title)
        say(_table(headers, cells, right=range(1, len(headers) - 1)))
    if coverage_note(rows):
        say(coverage_note(rows))
    for row in rows:
        if row["status"] != "ok":
            say(f"{row['generator']}: {row['status']}")


def print_result(result, console, title: str = "ptycho compare") -> None:
    """The table, a failure summary and the report's path of a `CompareResult`."""
    print_table(result.rows, console, seeds=result.seeds, title=title)
    failed = result.failed
    say = lambda text: console.print(text, highlight=False, markup=False, soft_wrap=True)  # noqa: E731
    if failed:
        say(f"{len(failed)} of {len(result.runs)} run(s) failed; see runs/<name>/run.log")
    say(f"report: {result.report}")
