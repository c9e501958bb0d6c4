"""The torch engine's own settings (`TrainConfig.engine`), declared here, where they are used.

Standard library only (no torch): the registry and the CLI read these declarations to offer
`--precision` and `--compile` and to refuse a value before any work. A generator trained by
`ptycho_core.torch.trainer` declares them through `GeneratorSpec.engine_settings` (the default of a
learned generator with framework "torch").
"""

from __future__ import annotations

from ptycho_core.settings import Setting

PRECISION = Setting(
    "str",
    "fp32",
    "bf16 autocast for the network (physics stays float32); auto: bf16 where the device computes it natively "
    "(a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX), else fp32.",
    choices=("fp32", "bf16", "auto"),
    name="precision",
)
COMPILE = Setting(
    "str",
    "off",
    "torch generators: on compiles the network's training steps with torch.compile (inductor, needs a C++ "
    "compiler); off by default: compiling costs minutes on a 2-core CPU, more than a default budget gains "
    "(docs/speed.md).",
    choices=("off", "on"),
    name="compile",
)
#: Every torch engine setting, in the order the command line offers them.
SETTINGS = (PRECISION, COMPILE)


def value(config, setting: Setting):
    """The value of the torch engine `setting` in `config` (a TrainConfig): as given, else its default."""
    return setting.parse(config.engine.get(setting.name, setting.default), setting.name)
