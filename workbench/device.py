"""Device selection and run metadata shared by the torch solvers."""

from __future__ import annotations

import platform
import sys
from typing import Any


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` → ``"cuda"`` when CUDA is available, else ``"cpu"``; other values pass through.

    Raises ``InputError`` when CUDA is asked for but absent, rather than failing deep in a solve.
    """
    from workbench.errors import InputError

    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise InputError(f"device must be 'auto', 'cpu' or 'cuda[:k]', got {device!r}")
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        if device.startswith("cuda"):
            return device
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        return "cuda"
    if device.startswith("cuda"):
        raise InputError("CUDA was requested but no CUDA device is available")
    return "cpu"


def versions() -> dict[str, Any]:
    """Versions of the packages that shape numerical results (only those already imported)."""
    import numpy

    import workbench

    out: dict[str, Any] = {
        "workbench": workbench.__version__,
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "platform": platform.platform(terse=True),
    }
    for name in ("scipy", "torch", "ot"):
        mod = sys.modules.get(name)
        if mod is not None:
            out["pot" if name == "ot" else name] = getattr(mod, "__version__", "?")
    return out
