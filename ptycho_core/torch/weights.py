"""Torch weights I/O with safetensors only (never torch.save / torch.load: nothing is unpickled)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ptycho_core.errors import PtychoError

WEIGHTS_FILE = "weights.safetensors"


def save_weights(module_or_state: nn.Module | dict, path: str | Path, metadata: dict | None = None) -> Path:
    """Write a module's state dict (or a plain dict of tensors) to a `.safetensors` file.

    Tensors are copied to contiguous CPU tensors; `metadata` is an optional str -> str dict
    stored in the file header. Returns the path written.
    """
    from safetensors.torch import save_file  # lazy: safetensors comes with the optional torch extra

    state = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={str(k): str(v) for k, v in (metadata or {}).items()})
    return path


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a `.safetensors` file into a dict of CPU tensors; PtychoError if missing or invalid."""
    from safetensors import SafetensorError  # lazy: safetensors comes with the optional torch extra
    from safetensors.torch import load_file  # lazy: safetensors comes with the optional torch extra

    path = Path(path)
    if not path.is_file():
        raise PtychoError(f"{path}: weights file not found")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise PtychoError(f"{path}: not a readable safetensors file ({exc})") from None


def load_weights(module: nn.Module, path: str | Path) -> nn.Module:
    """Load a `.safetensors` file into `module` (strict: same keys and shapes), in place.

    Raises PtychoError naming the missing, unexpected or mis-shaped tensors on a mismatch.
    """
    state = read_weights(path)
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
        if unexpected:
            parts.append("unexpected " + ", ".join(unexpected[:5]) + (" ..." if len(unexpected) > 5 else ""))
        if shapes:
            parts.append("shape mismatch " + ", ".join(shapes[:5]) + (" ..." if len(shapes) > 5 else ""))
        raise PtychoError(f"{path}: weights do not match the network ({'; '.join(parts)})")
    module.load_state_dict(state, strict=True)
    return module
