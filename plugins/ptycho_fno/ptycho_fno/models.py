"""Factories of the FNO generators: `factory(**options) -> TorchGenerator` (docs/design.md#contracts).

The torch engine (`ptycho_core.torch.trainer.TorchGenerator`) does the training, prediction and
checkpointing; each factory only says how to build the network for C channels and patch size N.
By default the C patterns of a group go through one shared per-pattern network (`PerPattern`);
`joint_channels=True` feeds them to one network as C input channels instead (the reference
design, open to the channel-specialisation collapse described in the plugin README).
"""

from __future__ import annotations

from collections.abc import Callable

from ptycho_core.torch.trainer import TorchGenerator


def _per_pattern(make: Callable, channels: int, joint_channels: bool):
    """`make(C)` when the channels are processed jointly, else `PerPattern(make(1))`."""
    if joint_channels or channels == 1:
        return make(channels)
    from ptycho_fno.blocks import PerPattern

    return PerPattern(make(1))


def build_fno(
    width: int = 32, blocks: int = 4, modes: int = 12, cnn_blocks: int = 2, joint_channels: bool = False
) -> TorchGenerator:
    """The `fno` generator: cascaded FNO -> CNN refiner (see `ptycho_fno.fno.FNO`)."""
    from ptycho_fno.fno import FNO

    def build(channels: int, patch_size: int):
        def make(c: int):
            return FNO(c, patch_size, width=width, blocks=blocks, modes=modes, cnn_blocks=cnn_blocks)

        return _per_pattern(make, channels, joint_channels)

    return TorchGenerator(build, name="fno")


def build_hybrid(
    width: int = 32, levels: int = 3, modes: int = 12, max_hidden_channels: int = 512, joint_channels: bool = False
) -> TorchGenerator:
    """The `hybrid` generator: U-NO of PtychoBlocks (see `ptycho_fno.hybrid.UNO`)."""
    from ptycho_fno.hybrid import UNO

    def build(channels: int, patch_size: int):
        def make(c: int):
            return UNO(c, patch_size, width=width, levels=levels, modes=modes, max_hidden_channels=max_hidden_channels)

        return _per_pattern(make, channels, joint_channels)

    return TorchGenerator(build, name="hybrid")


def build_stable_hybrid(
    width: int = 32,
    levels: int = 3,
    modes: int = 12,
    max_hidden_channels: int = 512,
    layerscale_init: float = 1e-3,
    joint_channels: bool = False,
) -> TorchGenerator:
    """The `stable_hybrid` generator: U-NO of StablePtychoBlocks (see `ptycho_fno.blocks`)."""
    from ptycho_fno.hybrid import UNO, stable_block

    def build(channels: int, patch_size: int):
        def make(c: int):
            return UNO(
                c,
                patch_size,
                width=width,
                levels=levels,
                modes=modes,
                max_hidden_channels=max_hidden_channels,
                block=stable_block(layerscale_init),
            )

        return _per_pattern(make, channels, joint_channels)

    return TorchGenerator(build, name="stable_hybrid")
