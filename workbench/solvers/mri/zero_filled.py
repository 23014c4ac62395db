"""Zero-filled root-sum-of-squares reconstruction: ``√(Σ_c |F⁻¹ y_c|²)``."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.physics.mri.fft import ifft2c
from workbench.progress import ensure
from workbench.registry import SolverSpec, param
from workbench.solvers.mri.common import Setup


@dataclass(frozen=True)
class Params:
    device: str = param("auto", "compute device (auto, cpu, cuda)", advanced=True)
    seed: int = param(0, "unused (deterministic)", advanced=True)


def solve(problem, params: Params | None = None, progress=None):
    params = params or Params()
    progress = ensure(progress)
    st = Setup(problem, params.device)
    x = torch.sqrt((ifft2c(st.y).abs() ** 2).sum(1))
    out = st.magnitude(x)
    progress(1, 1)
    return st.result(
        out,
        status="converged",
        iterations=1,
        history={"step": [1], "psnr": [st.psnr(out) or float("nan")]},
        params=params,
        # the RSS image has no phase: its data consistency is judged by A^H y, the phase-coherent
        # image with the same aliasing
        estimate=st.A.adjoint(st.y),
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
