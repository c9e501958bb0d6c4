"""Progress display of `ptycho train` and `ptycho compare`: one line per epoch when not a terminal."""

import io

from ptycho_cli.progress import training_progress


def test_plain_progress_prints_one_line_per_epoch_with_running_loss():
    out = io.StringIO()
    with training_progress(stream=out) as display:
        progress = display.callback("tiny")
        progress({"epoch": 1, "epochs": 2, "step": 1, "steps": 2, "loss": 0.5, "val_loss": None})
        progress({"epoch": 1, "epochs": 2, "step": 2, "steps": 2, "loss": 0.4, "val_loss": 0.45})
        progress({"epoch": 2, "epochs": 2, "step": 2, "steps": 2, "loss": 0.3, "val_loss": 0.35})
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("tiny: epoch 1/2  loss 0.4  val 0.45")
    assert lines[1].startswith("tiny: epoch 2/2  loss 0.3  val 0.35")


def test_rich_progress_renders_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    with training_progress(stream=out) as display:
        progress = display.callback("tiny")
        progress({"epoch": 1, "epochs": 1, "step": 1, "steps": 1, "loss": 0.25, "val_loss": 0.5})
    assert "tiny" in out.getvalue() and "loss 0.25" in out.getvalue()
