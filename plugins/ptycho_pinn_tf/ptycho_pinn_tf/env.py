"""Import TensorFlow and Keras 3 quietly, with the environment they need set first.

Importing this module sets `KERAS_BACKEND=tensorflow` and (unless the user asked for verbose
output with `PTYCHO_VERBOSE=1`, or set it themselves) `TF_CPP_MIN_LOG_LEVEL=2`, then imports
TensorFlow and Keras and exposes them as `env.tf` and `env.keras`. Every other module of this
package gets its frameworks from here, so the order is always right.

TensorFlow 2.21 logs its oneDNN notice through absl *before* absl's logging is initialised,
preceded by "WARNING: All log messages before absl::InitializeLog() is called ...": no value of
TF_CPP_MIN_LOG_LEVEL hides those lines (tested). So, unless verbose, file descriptor 2 is
redirected to a temporary file while `import tensorflow` runs; afterwards every captured line
that is not known start-up chatter is written back to stderr, so real problems stay visible.
TF_ENABLE_ONEDNN_OPTS is never touched (it would change numerics, not just logging).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

#: Lines TensorFlow prints on every start-up that carry no information for a ptycho user.
_CHATTER = re.compile(
    r"All log messages before absl::InitializeLog"
    r"|oneDNN custom operations are on"
    r"|cpu_feature_guard"
    r"|This TensorFlow binary is optimized"
    r"|To enable the following instructions"
    r"|rebuild TensorFlow with the appropriate compiler flags"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
    r"|TF-TRT Warning"
    r"|Could not find cuda drivers"
)


def verbose() -> bool:
    """True when the user asked for TensorFlow's own log output (PTYCHO_VERBOSE=1)."""
    return os.environ.get("PTYCHO_VERBOSE", "").strip().lower() in {"1", "true", "yes", "on"}


def configure_environment() -> None:
    """Set the variables TensorFlow and Keras read at import time (idempotent)."""
    os.environ["KERAS_BACKEND"] = "tensorflow"
    if not verbose():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def _quiet_stderr():
    """Capture fd 2 for the duration of the block; replay lines that are not start-up chatter."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable fd 2 (embedded interpreters)
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [
                line
                for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True)
                if line.strip() and not _CHATTER.search(line)
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def _import_frameworks():
    configure_environment()
    if "tensorflow" in sys.modules or verbose():
        import tensorflow
    else:
        with _quiet_stderr():
            import tensorflow
    import keras

    if keras.backend.backend() != "tensorflow":
        from ptycho_core.errors import PluginError

        raise PluginError(
            f"pinn_tf needs Keras on the TensorFlow backend, but Keras was already imported with "
            f"backend {keras.backend.backend()!r} in this process; run it in its own process"
        )
    if not verbose():
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    return tensorflow, keras


tf, keras = _import_frameworks()
