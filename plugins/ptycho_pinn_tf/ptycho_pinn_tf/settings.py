"""The TensorFlow engine's settings (`TrainConfig.engine`): declared here, where they are used.

Standard library only (no TensorFlow): the spec in `plugin.py` declares them, so `ptycho compare
--precision bf16 -g pinn_tf` is refused while planning, before any child starts, and `--compile`
(a torch engine setting) is refused for pinn_tf instead of being ignored.
"""

from ptycho_core.settings import Setting

PRECISION = Setting(
    "str",
    "fp32",
    "TensorFlow PINN: fp32 only (bf16 is not implemented); auto trains in fp32.",
    choices=("fp32", "auto"),
    name="precision",
)
SETTINGS = (PRECISION,)
