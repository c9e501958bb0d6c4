"""The U-NO (`hybrid` and `stable_hybrid`): an encoder of spectral+local blocks with stride-2
downsampling, a spectral bottleneck, and a convolutional decoder with skip connections."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ptycho_fno.blocks import ComplexHead, PtychoBlock, SpatialLifter, StablePtychoBlock, clamp_modes

BlockFactory = Callable[[int, int], nn.Module]


def usable_levels(patch_size: int, levels: int) -> int:
    """The most encoder levels (<= `levels`) such that N halves exactly down to a map of >= 2 px."""
    n = int(patch_size)
    used = 0
    while used < levels and n % 2 == 0 and n // 2 >= 2:
        n //= 2
        used += 1
    return used


class UNO(nn.Module):
    """U-shaped neural operator.

        lifter -> for each level: block(ch, modes) [skip] -> stride-2 conv ch -> min(2 ch, max_channels)
        -> bottleneck block(ch, modes // 2)
        -> for each level back up: stride-2 transposed conv, concatenate the skip, two 3x3 conv + GELU
        -> 1x1 projection to 2C channels (real, imaginary)

    forward: normalised amplitudes (B, C, N, N) float32 -> complex patches (B, C, N, N) complex64
    in units of s0. `block(channels, modes)` builds each spectral block; modes are clamped to each
    level's map size. `levels` is reduced when N cannot be halved that often (see `usable_levels`).
    """

    def __init__(
        self,
        channels: int,
        patch_size: int,
        *,
        width: int = 32,
        levels: int = 3,
        modes: int = 12,
        max_hidden_channels: int = 512,
        block: BlockFactory = PtychoBlock,
    ):
        super().__init__()
        if width < 1 or levels < 0 or max_hidden_channels < width:
            raise ValueError("width must be >= 1, levels >= 0 and max_hidden_channels >= width")
        self.channels = int(channels)
        self.levels = usable_levels(patch_size, levels)
        self.lifter = SpatialLifter(channels, width)
        self.encoder = nn.ModuleList()
        self.down = nn.ModuleList()
        widths = []
        ch, size = width, int(patch_size)
        for _ in range(self.levels):
            self.encoder.append(block(ch, clamp_modes(modes, size)))
            widths.append(ch)
            nxt = min(2 * ch, max_hidden_channels)
            self.down.append(nn.Conv2d(ch, nxt, kernel_size=2, stride=2))
            ch, size = nxt, size // 2
        self.bottleneck = block(ch, clamp_modes(max(modes // 2, 1), size))
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for skip in reversed(widths):
            self.up.append(nn.ConvTranspose2d(ch, skip, kernel_size=2, stride=2))
            self.decoder.append(
                nn.Sequential(
                    nn.Conv2d(2 * skip, skip, kernel_size=3, padding=1),
                    nn.GELU(),
                    nn.Conv2d(skip, skip, kernel_size=3, padding=1),
                    nn.GELU(),
                )
            )
            ch = skip
        self.head = ComplexHead(ch, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lifter(x)
        skips = []
        for block, down in zip(self.encoder, self.down):
            x = block(x)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for up, dec, skip in zip(self.up, self.decoder, reversed(skips)):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)


def stable_block(layerscale_init: float = 1e-3) -> BlockFactory:
    """A block factory building `StablePtychoBlock(channels, modes, layerscale_init)`."""

    def build(channels: int, modes: int) -> nn.Module:
        return StablePtychoBlock(channels, modes, layerscale_init=layerscale_init)

    return build
