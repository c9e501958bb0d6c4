"""The cascaded FNO -> CNN network (`fno`): global spectral blocks, then a local CNN refiner."""

from __future__ import annotations

import torch
from torch import nn

from ptycho_fno.blocks import ComplexHead, PtychoBlock, SpatialLifter, clamp_modes


class FNO(nn.Module):
    """Cascaded FNO -> CNN refiner.

        lifter (two 3x3 convs, GELU) -> `blocks` x PtychoBlock(width, modes) -> 1x1 conv
        -> `cnn_blocks` x (3x3 conv, GELU) -> 1x1 projection to 2C channels (real, imaginary)

    forward: normalised amplitudes (B, C, N, N) float32 -> complex patches (B, C, N, N) complex64
    in units of s0. `modes` is neuraloperator's `n_modes` per axis, clamped to N.
    """

    def __init__(
        self, channels: int, patch_size: int, *, width: int = 32, blocks: int = 4, modes: int = 12, cnn_blocks: int = 2
    ):
        super().__init__()
        if width < 1 or blocks < 0 or cnn_blocks < 0:
            raise ValueError("width must be >= 1, blocks and cnn_blocks >= 0")
        self.channels = int(channels)
        self.modes = clamp_modes(modes, patch_size)
        self.lifter = SpatialLifter(channels, width)
        self.blocks = nn.Sequential(*[PtychoBlock(width, self.modes) for _ in range(blocks)])
        self.mix = nn.Conv2d(width, width, kernel_size=1)
        self.refiner = nn.Sequential(
            *[nn.Sequential(nn.Conv2d(width, width, kernel_size=3, padding=1), nn.GELU()) for _ in range(cnn_blocks)]
        )
        self.head = ComplexHead(width, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lifter(x)
        x = self.blocks(x)
        x = self.refiner(self.mix(x))
        return self.head(x)
