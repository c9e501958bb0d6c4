"""Training losses (docs/design.md#physics), always evaluated in float32/complex64.

Physics losses compare predicted and measured amplitudes in normalised units (both multiplied by
the training set's `input_scale = 1 / r`) over valid detector pixels; the supervised loss compares
predicted and ground-truth patches, amplitude in units of s0 and wrapped phase in radians.
"""

from __future__ import annotations

import torch

from ptycho_core.torch import physics

#: Added to the predicted intensity inside the Poisson log, in normalised units.
POISSON_EPS = 1e-6


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of `values` (B, C, N, N) over pixels where `mask` ((N, N) or (B, C, N, N) bool) is True."""
    if mask is None:
        return values.mean()
    weight = torch.broadcast_to(mask, values.shape).to(values.dtype)
    return (values * weight).sum() / weight.sum().clamp_min(1.0)


def amplitude_loss(
    predicted_intensity: torch.Tensor, measured: torch.Tensor, mask: torch.Tensor | None, kind: str
) -> torch.Tensor:
    """Poisson NLL mean(p^2 - m^2 log(p^2 + 1e-6)) or MAE mean|p - m| over valid pixels.

    predicted_intensity p^2 and measured amplitudes m (B, C, N, N), both already normalised.
    """
    p2 = predicted_intensity.float()
    m = measured.float()
    if kind == "poisson":
        values = p2 - m * m * torch.log(p2 + POISSON_EPS)
    elif kind == "mae":
        values = (torch.sqrt(p2 + 1e-12) - m).abs()
    else:
        raise ValueError(f"unknown loss {kind!r}")
    return masked_mean(values, mask)


def physics_loss(
    patches: torch.Tensor,
    diffraction: torch.Tensor,
    probe: torch.Tensor,
    input_scale: float,
    *,
    offsets: torch.Tensor | None = None,
    canvas_size: int = 0,
    mask: torch.Tensor | None = None,
    kind: str = "poisson",
) -> torch.Tensor:
    """The PINN loss of predicted patches against measured amplitudes.

    patches (B, C, N, N) complex64 in contract units; diffraction (B, C, N, N) raw amplitudes;
    probe (N, N) complex64. For C > 1 with `offsets` (B, C, 2) and `canvas_size` M > 0, the overlap
    constraint is applied first. Intensities are computed as |F|^2 (no square root, so gradients
    stay finite at zero).
    """
    with torch.autocast(patches.device.type, enabled=False):
        patches = patches.to(torch.complex64)
        if patches.shape[1] > 1 and offsets is not None and canvas_size > 0:
            patches = physics.overlap_average(patches, offsets, canvas_size)
        field = physics.far_field(probe, patches)
        intensity = (field.real.square() + field.imag.square()) * (input_scale * input_scale)
        return amplitude_loss(intensity, diffraction.float() * input_scale, mask, kind)


def supervised_loss(patches: torch.Tensor, target: torch.Tensor, s0: float) -> torch.Tensor:
    """MAE of amplitude (in units of s0) plus MAE of the wrapped phase difference (radians).

    patches and target (B, C, N, N) complex64 in contract units.
    """
    with torch.autocast(patches.device.type, enabled=False):
        patches = patches.to(torch.complex64)
        target = target.to(torch.complex64)
        amplitude = (patches.abs() - target.abs()).abs().mean() / s0
        cross = patches * target.conj()
        # Where either side is zero the phase difference is undefined: count it as 0 (finite gradients).
        defined = (cross.real.square() + cross.imag.square()) > 1e-20
        cross = torch.where(defined, cross, torch.ones_like(cross))
        phase = torch.atan2(cross.imag, cross.real).abs().mean()
        return amplitude + phase
