"""Zero-filled root-sum-of-squares reconstruction: ``√(Σ_c |F⁻¹ y_c|²)``.

NumPy only: the baseline every MRI run is judged against is computed in every process that
judges one (``jobs.baseline_value``), and a zero-filled CLI call should not pay torch's import.
It follows the torch solvers' conventions (:class:`workbench.solvers.mri.common.Setup`): data
scaled by ``s = max|A^H y|``, output ``|x|·s`` centre-cropped, ``A^H y`` as the estimate whose
data consistency the domain judges.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from workbench.errors import InputError
from workbench.physics.mri.cfft import ifft2c
from workbench.progress import ensure
from workbench.registry import SolverSpec, param
from workbench.solvers.mri.output import crop_magnitude, mri_result, psnr_to_reference


@dataclass(frozen=True)
class Params:
    device: str = param(
        "auto", "unused: NumPy on the CPU (kept for a uniform interface)", advanced=True
    )
    seed: int = param(0, "unused (deterministic)", advanced=True)


def _mask4(mask, h: int, w: int) -> np.ndarray:
    """A mask given as ``(W,)``, ``(H, W)``, ``(N, H, W)`` or ``(N, 1, H, W)`` as ``(N, 1, H, W)``."""
    m = np.asarray(mask, np.float32)
    if m.ndim == 1:
        m = np.broadcast_to(m.reshape(1, 1, 1, -1), (1, 1, h, m.shape[0]))
    elif m.ndim == 2:
        m = m[None, None]
    elif m.ndim == 3:
        m = m[:, None]
    if m.shape[-2:] != (h, w):
        raise InputError(f"mask shape {m.shape[-2:]} does not match k-space ({h}, {w})")
    return m


def solve(problem, params: Params | None = None, progress=None):
    params = params or Params()
    progress = ensure(progress)
    t0 = time.perf_counter()
    if problem.maps is None:
        raise InputError("this problem has no coil maps; estimate them (acs_rss or espirit) first")
    maps = np.asarray(problem.maps).astype(np.complex64)
    maps = maps if maps.ndim == 4 else maps[None]
    k = np.asarray(problem.kspace).astype(np.complex64)
    mask = _mask4(problem.mask, *k.shape[-2:])
    y = k * mask
    coil_imgs = ifft2c(y)  # (N, C, H, W): F⁻¹ of the zero-filled k-space, per coil
    adj = (maps.conj() * coil_imgs).sum(1)  # A^H y = Σ_c conj(S_c) F⁻¹ y_c
    scale = float(np.abs(adj).max()) or 1.0
    # the torch solvers scale y by 1/s and the output back by s: the same here, in one product
    x = np.sqrt((np.abs(coil_imgs / np.float32(scale)) ** 2).sum(1))
    out = crop_magnitude(x * np.float32(scale), problem)
    progress(1, 1)
    return mri_result(
        problem,
        out,
        t0=t0,
        device="cpu",
        scale=scale,
        status="converged",
        iterations=1,
        history={"step": [1], "psnr": [psnr_to_reference(problem, out) or float("nan")]},
        params=params,
        # the RSS image has no phase: its data consistency is judged by A^H y, the phase-coherent
        # image with the same aliasing
        extras={"estimate": adj.astype(np.complex64)},
    )


SPEC = SolverSpec(
    name="zero_filled",
    domain="mri",
    title="Zero-filled RSS",
    Params=Params,
    solve=solve,
    description="Inverse FFT of the zero-filled k-space per coil, combined by root sum of squares. The baseline every method must beat.",
    reference="Zbontar et al., fastMRI, arXiv:1811.08839",
)
