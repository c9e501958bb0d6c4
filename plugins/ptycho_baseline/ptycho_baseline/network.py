"""The PtychoNN-style supervised baseline network and its generator factory.

`BaselineNet` maps normalised amplitudes (B, C, N, N) to complex patches (B, C, N, N) in units
of s0; each of the C patterns is treated as a separate sample (C is folded into the batch).
`build_baseline(scale)` wraps it in the shared torch engine (`TorchGenerator`, supervised loss).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from ptycho_core.errors import UsageError
from ptycho_core.torch.trainer import TorchGenerator

#: Filters of the three encoder stages before `scale`; the decoders mirror them.
FILTERS = (32, 64, 128)


def _conv_block(cin: int, cout: int) -> list[nn.Module]:
    """Two 3x3 same-padding convolutions with ReLU."""
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU()]


def _decoder(filters: tuple[int, ...]) -> nn.Sequential:
    """Three conv-upsample stages (filters[2] -> filters[0]) back to N, then a 3x3 conv to one map."""
    layers: list[nn.Module] = []
    cin = filters[-1]
    for cout in reversed(filters):
        layers += _conv_block(cin, cout) + [nn.Upsample(scale_factor=2, mode="nearest")]
        cin = cout
    layers.append(nn.Conv2d(cin, 1, 3, padding=1))
    return nn.Sequential(*layers)


class BaselineNet(nn.Module):
    """Encoder of three conv-pool stages, amplitude and phase decoders of three conv-upsample stages.

    forward: x (B, C, N, N) float32 normalised amplitudes -> (B, C, N, N) complex64 patches whose
    amplitude softplus(.) is |O| / s0 and phase pi * tanh(.) in radians. N must be divisible by 8.
    """

    def __init__(self, patch_size: int, scale: float = 1.0):
        super().__init__()
        if patch_size % 8:
            raise UsageError(f"baseline needs a patch size divisible by 8, got N = {patch_size}")
        if not (scale > 0 and math.isfinite(scale)):
            raise UsageError(f"baseline.scale must be a positive number, not {scale}")
        filters = tuple(max(1, round(f * scale)) for f in FILTERS)
        layers: list[nn.Module] = []
        cin = 1
        for cout in filters:
            layers += _conv_block(cin, cout) + [nn.MaxPool2d(2)]
            cin = cout
        self.encoder = nn.Sequential(*layers)
        self.amplitude = _decoder(filters)
        self.phase = _decoder(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, n, _ = x.shape
        code = self.encoder(x.reshape(b * c, 1, n, n))
        amplitude = nn.functional.softplus(self.amplitude(code).float())
        phase = math.pi * torch.tanh(self.phase(code).float())
        return torch.polar(amplitude, phase).reshape(b, c, n, n)


def _build(channels: int, patch_size: int, *, scale: float) -> BaselineNet:
    return BaselineNet(patch_size, scale)


def build_baseline(scale: float = 1.0) -> TorchGenerator:
    """The `baseline` generator: BaselineNet trained with the supervised loss of the torch engine."""
    if not (scale > 0 and math.isfinite(scale)):
        raise UsageError(f"baseline.scale must be a positive number, not {scale}")
    return TorchGenerator(
        functools.partial(_build, scale=float(scale)), name="baseline", supervised=True, per_pattern=True
    )
