"""What every MRI solver returns, in NumPy only: the output magnitude, its PSNR, the Result.

Kept apart from :mod:`workbench.solvers.mri.common` (torch tensors on a device) so that a NumPy
solver -- the zero-filled baseline -- wraps its output the same way without importing torch.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from workbench.device import versions
from workbench.result import Result


def crop_magnitude(mag: np.ndarray, problem) -> np.ndarray:
    """``mag`` as float32, centre-cropped to the problem's recon size."""
    from workbench.physics.mri.metrics import center_crop

    out = np.asarray(mag).astype(np.float32)
    return np.ascontiguousarray(center_crop(out, problem.recon_size))


def psnr_to_reference(problem, mag: np.ndarray) -> float | None:
    """PSNR of ``mag`` against the problem's reference (None without one or on a shape misfit)."""
    from workbench.physics.mri.metrics import center_crop, psnr

    if problem.reference is None:
        return None
    ref = np.asarray(problem.reference, np.float64)
    mag = center_crop(mag, ref.shape[-2:])
    if mag.shape != ref.shape:
        return None
    return psnr(ref, mag)


def mri_result(
    problem,
    out: np.ndarray,
    *,
    t0: float,
    device: str,
    scale: float,
    status: str,
    iterations: int,
    history: dict | None = None,
    params: Any = None,
    extras: dict | None = None,
    message: str = "",
) -> Result:
    """Wrap an output magnitude: ``kind`` image or volume by its slice count, ``meta`` with the
    wall time since ``t0``, the device, the data scale ``s`` and the maps' source."""
    meta = {
        "wall_s": time.perf_counter() - t0,
        "device": device,
        "scale": scale,
        "maps_source": problem.maps_source,
        "versions": versions(),
    }
    if params is not None and hasattr(params, "seed"):
        meta["seed"] = params.seed
    return Result(
        output=out,
        kind="image" if out.shape[0] == 1 else "volume",
        status=status,
        iterations=int(iterations),
        metrics={},
        history=history or {},
        extras=dict(extras or {}),
        meta=meta,
        message=message,
    )
