"""Make `import torchvision` work beside the CPU build of torch, so that pty-chi imports.

pty-chi imports `torchvision.transforms.GaussianBlur` (pure Python) at module level. PyPI's
torchvision wheels are built against CUDA torch: their C++ extension `_C.so` links
`libtorch_cuda.so`, which the CPU torch does not have, so it does not load. torchvision tolerates
that for every operator but two: `torchvision/_meta_registrations.py` registers fake kernels for
`torchvision::nms` and `torchvision::qnms` unguarded, and `import torchvision` then fails with
"operator torchvision::nms does not exist" (pytorch/vision issues 9077 and 9085). PyPI has no
torchvision sdist to build a CPU extension from.

`ensure_torchvision()` tries the extension the way torchvision does; when it does not load, it
declares those two operators' schemas (with torchvision's own signatures) so the registrations
succeed. torchvision then imports with `torchvision.extension._has_ops() == False`: its C++
operators (nms, roi_align, ...) raise "Couldn't load custom C++ ops" if called; pty-chi calls none.
With a torchvision whose extension loads, nothing is changed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

#: The operators torchvision registers fake kernels for without checking that its extension loaded.
UNGUARDED_OPERATORS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)

_declared: list = []  # the torch.library.Library holding the schemas: it must outlive the import


def ensure_torchvision() -> None:
    """Import torchvision, declaring its two unguarded operators first when its extension cannot load."""
    if "torchvision" in sys.modules:
        return
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        raise ImportError("torchvision is not installed (pty-chi needs it): run `make install`")
    extension = next(Path(spec.origin).parent.glob("_C*.so"), None)
    if not _declared and not _loads(torch, extension):
        library = torch.library.Library("torchvision", "DEF")
        for schema in UNGUARDED_OPERATORS:
            library.define(schema)
        _declared.append(library)
    import torchvision  # noqa: F401


def _loads(torch, extension: Path | None) -> bool:
    if extension is None:
        return False
    try:
        torch.ops.load_library(str(extension))
    except (ImportError, OSError):
        return False
    return True
