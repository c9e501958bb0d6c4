"""Terminal progress for long work: a rich progress bar on a terminal, plain lines otherwise.

Trainers call `progress(event)` with dicts {epoch, epochs, step, steps, loss, val_loss}; this turns
those events into one bar per generator with the running loss.
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
            print(f"{name}: epoch {epoch}/{epochs}  loss {loss_text}{val_text}  ({elapsed:.0f} s)", file=self.stream,
                  flush=True)

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
