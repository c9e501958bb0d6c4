"""The `mynet` network and its factory.

Network contract (ptycho docs/design.md#contracts): `forward(x)` takes normalised amplitudes x of shape
(B, C, N, N) float32 (raw amplitudes times the training set's `input_scale`) and returns object
patches (B, C, N, N) complex64 in units of s0 (roughly unit amplitude). The engine,
`ptycho_core.torch.trainer.TorchGenerator`, multiplies them by a learnable global amplitude scale
and does everything else: physics loss, optimiser, validation, seeding, devices, save and load.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class MynetNet(nn.Module):
    """`depth` 3x3 convolutions with GELU, then amplitude (softplus) and phase (pi*tanh) heads."""

    def __init__(self, channels: int, width: int = 16, depth: int = 2):
        super().__init__()
        layers: list[nn.Module] = []
        size = channels
        for _ in range(max(1, depth)):
            layers += [nn.Conv2d(size, width, 3, padding=1), nn.GELU()]
            size = width
        self.body = nn.Sequential(*layers)
        self.amplitude = nn.Conv2d(width, channels, 1)
        self.phase = nn.Conv2d(width, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, N, N) float32 normalised amplitudes -> (B, C, N, N) complex64 patches in units of s0."""
        h = self.body(x)
        amplitude = nn.functional.softplus(self.amplitude(h))
        phase = math.pi * torch.tanh(self.phase(h))
        # Build the complex output from float32 parts (also under bf16 autocast).
        return torch.polar(amplitude.float(), phase.float())


def build_mynet(width: int = 16, depth: int = 2):
    """The factory named in the spec: `build_mynet(**options)` -> a ptycho generator."""
    from ptycho_core.torch.trainer import TorchGenerator

    return TorchGenerator(lambda channels, n: MynetNet(channels, width=width, depth=depth), name="mynet")
