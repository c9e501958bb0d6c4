"""The twin-image ambiguity of single-pattern (gridsize 1) reconstruction, as numpy diagnostics.

For a probe whose amplitude is point-symmetric (|P(-r)| = |P(r)|, true of both built-in probes),
the object patch o and its twin o' = conj(P(-r)) conj(o(-r)) / P(r) (= conj(o(-r)) for a real
symmetric probe) give exactly the same far-field amplitudes |F(P o)| = |F(P o')|, because
P o' = conj((P o)(-r)). A network trained with the physics loss on single patterns may therefore
learn either; stitched twins do not form the object. Only the overlap constraint (gridsize > 1)
or a probe without that symmetry removes the ambiguity. r -> -r maps pixel u to (N - u) mod N
(the patch centre N//2 stays fixed).
"""

from __future__ import annotations

import numpy as np

from ptycho_core.metrics import reflect as _reflect


def twin_image(patches: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """The twin of complex patches (..., N, N) under `probe` (N, N), complex64.

    conj(P(-r)) conj(o(-r)) / P(r) where |P| > 1e-3 max|P|, 0 elsewhere.
    """
    probe = np.asarray(probe)
    support = np.abs(probe) > 1e-3 * np.abs(probe).max()
    factor = np.where(support, np.conj(_reflect(probe)) / np.where(support, probe, 1), 0)
    return (factor * np.conj(_reflect(np.asarray(patches)))).astype(np.complex64)


def _correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    return (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1) + 1e-12)


def twin_scores(predicted: np.ndarray, truth: np.ndarray, probe: np.ndarray) -> dict:
    """Per-patch amplitude diagnostics over the probe disk (|P| > max|P| / 2).

    predicted, truth (n, N, N) complex. Returns arrays (n,): `corr_truth` and `corr_twin`, the
    correlation of the predicted amplitude with the true patch's and with its twin's; `is_twin`,
    True where the twin fits better; `contrast`, the predicted amplitude's spatial std / mean.
    """
    disk = np.abs(probe) > 0.5 * np.abs(probe).max()
    amp = np.abs(predicted)[:, disk].astype(np.float64)
    corr_truth = _correlation(amp, np.abs(truth)[:, disk])
    corr_twin = _correlation(amp, np.abs(twin_image(truth, probe))[:, disk])
    return {
        "corr_truth": corr_truth,
        "corr_twin": corr_twin,
        "is_twin": corr_twin > corr_truth,
        "contrast": amp.std(axis=1) / np.maximum(amp.mean(axis=1), 1e-12),
    }


def amplitude_contrast(patches: np.ndarray, probe: np.ndarray) -> float:
    """Mean over patches (n, N, N) of the amplitude's spatial std / mean over the probe disk."""
    disk = np.abs(probe) > 0.5 * np.abs(probe).max()
    amp = np.abs(patches)[:, disk].astype(np.float64)
    return float((amp.std(axis=1) / np.maximum(amp.mean(axis=1), 1e-12)).mean())
