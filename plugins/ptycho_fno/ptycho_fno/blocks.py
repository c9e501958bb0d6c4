"""Building blocks shared by the FNO and U-NO networks (layers apart from models).

All blocks map feature maps (B, W, H, H) float to the same shape. The spectral convolution is
neuraloperator's `SpectralConv`, which keeps both the positive and the negative frequencies along
the first spatial axis (and the non-redundant half of the last, real-FFT axis); it always runs in
float32, also under bf16 autocast.
"""

from __future__ import annotations

import torch
from neuralop.layers.spectral_convolution import SpectralConv
from torch import nn


def clamp_modes(modes: int, size: int) -> int:
    """The number of Fourier modes per axis to keep at spatial size `size` (pixels).

    neuraloperator keeps `modes` frequencies centred on 0 along the first axis and `modes // 2 + 1`
    along the last (real-FFT) axis, so `modes` may not exceed `size`. Returns an even number in
    [2, size] (2 only when `size` is 2).
    """
    if modes < 1:
        raise ValueError(f"modes must be at least 1, not {modes}")
    kept = min(int(modes), int(size))
    kept -= kept % 2
    return max(kept, 2)


class SpectralConv2d(nn.Module):
    """neuraloperator's `SpectralConv` kept in float32/complex64 whatever autocast is active.

    (B, in_channels, H, W) -> (B, out_channels, H, W) float32. `modes` is `n_modes` in
    neuraloperator's meaning for both axes (clamp it with `clamp_modes` for small maps).
    """

    def __init__(self, in_channels: int, out_channels: int, modes: int):
        super().__init__()
        self.modes = int(modes)
        self.conv = SpectralConv(in_channels, out_channels, n_modes=(self.modes, self.modes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.conv(x.float())


class PtychoBlock(nn.Module):
    """Spectral + local block with a plain residual: `y = x + GELU(Spectral(x) + Conv3x3(x))`.

    The spectral path mixes globally (low frequencies), the 3x3 path carries local detail.
    """

    def __init__(self, channels: int, modes: int):
        super().__init__()
        self.spectral = SpectralConv2d(channels, channels, modes)
        self.local = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.act(self.spectral(x) + self.local(x))


class StablePtychoBlock(nn.Module):
    """A normalised, LayerScale-gated residual block, near-identity at initialisation.

        update = InstanceNorm(GELU(Spectral(x) + Conv3x3(x)))   (affine, per sample and channel)
        y      = x + gamma * update                            (gamma per channel, init `layerscale_init`)

    The normalised update has unit spatial variance per channel whatever the block's input, and
    gamma bounds how much of it each block adds, so deep stacks start as the identity and cannot
    drift. The reference implementation's "collapse" of this U-NO was not caused by this block (see
    the plugin README, "The stable_hybrid collapse"). Needs maps of at least 2x2 pixels.
    """

    def __init__(self, channels: int, modes: int, layerscale_init: float = 1e-3):
        super().__init__()
        self.spectral = SpectralConv2d(channels, channels, modes)
        self.local = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.act = nn.GELU()
        self.norm = nn.InstanceNorm2d(channels, affine=True)
        self.gamma = nn.Parameter(torch.full((1, channels, 1, 1), float(layerscale_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = self.norm(self.act(self.spectral(x) + self.local(x)))
        return x + self.gamma * update


class SpatialLifter(nn.Module):
    """Two 3x3 convolutions with a GELU between: (B, C, H, W) -> (B, width, H, W)."""

    def __init__(self, in_channels: int, width: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=3, padding=1),
            nn.GELU(),
            nn.Conv2d(width, width, kernel_size=3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PerPattern(nn.Module):
    """Apply `network` (B', 1, N, N) -> (B', 1, N, N) to each of the C patterns of a group with the
    same weights: (B, C, N, N) -> (B, C, N, N).

    With the overlap constraint (C > 1) the loss only sees the average of the C patches on a shared
    canvas; a network that mixes the C channels can then make one channel carry the whole object
    (with exaggerated contrast) and leave the others flat, and the anchor patches that are stitched
    and scored collapse to a constant amplitude. A shared per-pattern network cannot single out a
    channel, so every patch must be a reconstruction of its own pattern.
    """

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        out = self.network(x.reshape(b * c, 1, h, w))
        return out.reshape(b, c, h, w)


class ComplexHead(nn.Module):
    """1x1 projection to 2C channels read as (real, imaginary) parts: (B, W, H, H) -> (B, C, H, H)
    complex64.

    The real-part biases start at 1, so an untrained network predicts a unit-amplitude, flat-phase
    object (in units of s0) rather than zero, where the Poisson loss has a stationary point.
    """

    def __init__(self, width: int, channels: int):
        super().__init__()
        self.channels = int(channels)
        self.proj = nn.Conv2d(width, 2 * self.channels, kernel_size=1)
        with torch.no_grad():
            self.proj.bias[: self.channels].fill_(1.0)
            self.proj.bias[self.channels :].zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.proj(x).float()
        return torch.complex(out[:, : self.channels], out[:, self.channels :])
