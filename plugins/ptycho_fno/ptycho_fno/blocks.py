"""Building blocks shared by the FNO and U-NO networks (layers apart from models).

All blocks map feature maps (B, W, H, H) float to the same shape. The spectral convolution holds
neuraloperator's `SpectralConv` (its weights, initialisation and checkpoint keys), which keeps both
the positive and the negative frequencies along the first spatial axis (and the non-redundant half
of the last, real-FFT axis). It computes the same function with truncated DFTs as real matrix
products (`spectral_dft`), which skip the full-size FFTs and the zero-padded inverse and run in
bf16 under bf16 autocast like the convolutions.
"""

from __future__ import annotations

import math

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


def dft_matrices(h: int, w: int, modes_h: int, modes_w: int) -> tuple[torch.Tensor, ...]:
    """The real matrices of neuraloperator's 2-D spectral convolution on (h, w) maps (float64).

    fh (2 mh, h) = [A; B], the forward DFT rows A + iB of the mh kept frequencies along the first
    axis (neuraloperator's fftshift slicing, norm "forward"); fw (w, 2 mw) the real-FFT columns
    [cos | -sin] / w of the first mw frequencies along the last axis; ih (2h, mh) = [Pr; Pi], the
    inverse DFT back to h rows (neuraloperator's fftshift placement, which for odd h is off by one
    row and is reproduced); iw (2 mw, w) the inverse real FFT [c cos; -c sin] (c = 1 at DC and
    Nyquist, else 2: the imaginary parts there drop out as in irfft).
    """
    f64 = torch.float64
    neg = modes_h // 2
    j = torch.arange(modes_h, dtype=f64)
    rows = torch.arange(h, dtype=f64)
    forward_rows = 2 * math.pi * ((j - neg) % h)[:, None] * rows[None, :] / h
    inverse_rows = 2 * math.pi * rows[:, None] * ((2 * (h // 2) - neg + j) % h)[None, :] / h
    fh = torch.cat([torch.cos(forward_rows), -torch.sin(forward_rows)]) / h
    ih = torch.cat([torch.cos(inverse_rows), torch.sin(inverse_rows)])
    k = torch.arange(modes_w, dtype=f64)
    cols = 2 * math.pi * torch.arange(w, dtype=f64)[:, None] * k[None, :] / w
    fw = torch.cat([torch.cos(cols), -torch.sin(cols)], dim=1) / w
    c = torch.where((k == 0) | (2 * k == w), 1.0, 2.0)[:, None]
    iw = torch.cat([c * torch.cos(cols.T), -c * torch.sin(cols.T)])
    return fh, fw, ih, iw


def spectral_dft(x: torch.Tensor, weight: torch.Tensor, mats: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """neuraloperator's spectral convolution without bias, as real matrix products.

    x (B, Ci, H, W) real; weight (Ci, Co, mh, mw) complex; mats from `dft_matrices`. Forward DFT
    along the last then the first axis, per-mode channel mixing as one batched real matmul of
    [Re | Im] with [[Wr, Wi], [-Wi, Wr]], inverse DFT along the first then the last axis.
    """
    fh, fw, ih, iw = mats
    b, ci = x.shape[:2]
    h = x.shape[2]
    co, mh, mw = weight.shape[1:]
    z = fh @ (x @ fw)  # (B, Ci, 2 mh, 2 mw): [[A Yr, A Yi], [B Yr, B Yi]]
    zr = z[:, :, :mh, :mw] - z[:, :, mh:, mw:]
    zi = z[:, :, :mh, mw:] + z[:, :, mh:, :mw]
    modes = torch.cat([zr, zi], dim=1).permute(2, 3, 0, 1).reshape(mh * mw, b, 2 * ci)
    wr, wi = weight.real, weight.imag
    mix = torch.cat([torch.cat([wr, wi], dim=1), torch.cat([-wi, wr], dim=1)])
    mix = mix.permute(2, 3, 0, 1).reshape(mh * mw, 2 * ci, 2 * co).to(modes.dtype)
    out = torch.bmm(modes, mix).reshape(mh, mw, b, 2 * co).permute(2, 3, 0, 1)
    u = ih @ torch.cat([out[:, :co], out[:, co:]], dim=-1)  # (B, Co, 2H, 2 mw)
    ur = u[:, :, :h, :mw] - u[:, :, h:, mw:]
    ui = u[:, :, :h, mw:] + u[:, :, h:, :mw]
    return torch.cat([ur, ui], dim=-1) @ iw


class SpectralConv2d(nn.Module):
    """neuraloperator's `SpectralConv` (its parameters, initialisation and checkpoint keys),
    computed by `spectral_dft`: the same function to float32 rounding, 2-3x faster on a CPU at
    N=64 than its FFT path, and in bf16 under bf16 autocast (set `dft=False` for neuraloperator's
    own float32 FFT path).

    (B, in_channels, H, W) -> (B, out_channels, H, W). `modes` is `n_modes` in neuraloperator's
    meaning for both axes (clamp it with `clamp_modes` for small maps).
    """

    def __init__(self, in_channels: int, out_channels: int, modes: int, dft: bool = True):
        super().__init__()
        self.modes = int(modes)
        self.dft = bool(dft)
        self.conv = SpectralConv(in_channels, out_channels, n_modes=(self.modes, self.modes))
        self._mats: dict = {}

    def _matrices(self, x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, ...]:
        key = (x.shape[-2], x.shape[-1], x.device)
        if key not in self._mats:
            mats = dft_matrices(x.shape[-2], x.shape[-1], weight.shape[-2], weight.shape[-1])
            self._mats[key] = tuple(m.to(device=x.device, dtype=torch.float32) for m in mats)
        return self._mats[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.conv.weight.to_tensor()
        h, w = x.shape[-2:]
        if not self.dft or weight.shape[-2] > h or weight.shape[-1] > w // 2 + 1:
            with torch.autocast(device_type=x.device.type, enabled=False):
                return self.conv(x.float())
        out = spectral_dft(x, weight, self._matrices(x, weight))
        return out + self.conv.bias.to(out.dtype)


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
