"""Shared plumbing of the MRI solvers: tensors from a problem, data scaling, outputs, history."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from workbench.device import resolve_device
from workbench.physics.mri.operators import cnorm, sense_operator
from workbench.result import Result
from workbench.solvers.mri.output import crop_magnitude, mri_result, psnr_to_reference


class Setup:
    """Tensors of one problem on a device: operator ``A``, scaled data ``y/s``, scale ``s``.

    ``s = max|A^H y|`` (``specs/mri.md`` §1): solvers work on ``y/s`` so that relative λ has a
    fixed meaning, and multiply their output back by ``s``.
    """

    def __init__(self, problem, device: str = "auto", dtype: torch.dtype = torch.complex64):
        self.device = resolve_device(device)
        self.dtype = dtype
        self.t0 = time.perf_counter()
        self.A = sense_operator(problem, self.device, dtype)
        y = torch.from_numpy(np.ascontiguousarray(problem.kspace)).to(self.device, dtype)
        self.mask = self.A.mask
        self.y_raw = y * self.mask
        adj = self.A.adjoint(self.y_raw)
        self.scale = float(adj.abs().max()) or 1.0
        self.y = self.y_raw / self.scale
        self.problem = problem
        ref = problem.reference
        self.reference = None if ref is None else np.asarray(ref, np.float64)

    def support(self) -> torch.Tensor | None:
        """Pixels some coil sees (Σ_c |S_c|² > 0), or None when the maps cover every pixel.

        Outside it the SENSE model has no data at all (ESPIRiT maps vanish off the object): CG
        never leaves 0 there, but a wavelet or TV prior would fill it by extrapolating the object
        (a smooth continuation lowers ‖Ψx‖₁ and ‖∇x‖₁), and with more iterations that fill grows
        — the solvers with such priors keep x = 0 there."""
        sup = (self.A.maps.abs() ** 2).sum(-3) > 0
        return None if bool(sup.all()) else sup

    def magnitude(self, x: torch.Tensor) -> np.ndarray:
        """|x|·s as float32 numpy, centre-cropped to the problem's recon size."""
        return crop_magnitude((x.abs() * self.scale).detach().cpu().numpy(), self.problem)

    def psnr(self, mag: np.ndarray) -> float | None:
        return psnr_to_reference(self.problem, mag)

    def record(
        self, hist: dict, k: int, total: int, x: torch.Tensor, progress, t0: float, **values: float
    ) -> None:
        """Append iteration ``k`` to ``hist`` and report it: the named ``values`` (the first is
        the residual the page shows), the PSNR of |x| to the reference (NaN without one) and the
        seconds since ``t0``."""
        p = self.psnr(self.magnitude(x))
        hist["step"].append(k)
        for key, v in values.items():
            hist[key].append(v)
        hist["psnr"].append(float("nan") if p is None else p)
        hist["time"].append(time.perf_counter() - t0)
        first = next(iter(values.values()))
        progress(k, total, residual=first, **({} if p is None else {"psnr": p}))

    def result(
        self,
        out: np.ndarray,
        *,
        status: str,
        iterations: int,
        history: dict | None = None,
        params: Any = None,
        extras: dict | None = None,
        message: str = "",
        estimate: torch.Tensor | None = None,
        estimate_maps: torch.Tensor | None = None,
    ) -> Result:
        """Wrap an output; ``estimate`` is the complex image x (scaled units, full H×W) from
        which the domain's ``evaluate`` computes the data-consistency residual
        ``‖M(F S x) − y‖/‖y‖``, and ``estimate_maps`` the maps S the solver used when they are
        not the problem's (RecurrentVarNet recomputes its own)."""
        extras = dict(extras or {})
        if estimate is not None:
            extras["estimate"] = (estimate.detach() * self.scale).cpu().numpy().astype(np.complex64)
        if estimate_maps is not None:
            extras["estimate_maps"] = estimate_maps.detach().cpu().numpy().astype(np.complex64)
        return mri_result(
            self.problem,
            out,
            t0=self.t0,
            device=self.device,
            scale=self.scale,
            status=status,
            iterations=iterations,
            history=history,
            params=params,
            extras=extras,
            message=message,
        )


def stop_status(progress, k: int, max_iter: int, dx: float, xnorm: float, tol: float) -> str | None:
    """Why an iterative solver stops after iteration ``k``, or None to go on: the relative step
    ``dx ≤ tol·‖x‖`` (tol > 0), or a cancel (which at the last iteration is just the plan)."""
    if tol > 0 and dx <= tol * xnorm:
        return "converged"
    if progress.cancelled:
        return "cancelled" if k < max_iter else "max_iter"
    return None


def lipschitz(setup: Setup) -> float:
    """‖A‖² bound: 1 when Σ_c|S_c|² ≤ 1 everywhere (the orthonormal FFT and a binary mask keep
    it), else a power-iteration estimate."""
    from workbench.physics.mri.operators import power_norm

    if float((setup.A.maps.abs() ** 2).sum(1).max()) <= 1.0 + 1e-4:
        return 1.0
    return power_norm(setup.A, 15)


def residual(setup: Setup, x: torch.Tensor) -> float:
    """‖A x − y‖ in the data's own units."""
    return float(cnorm(setup.A.forward(x) - setup.y)) * setup.scale


def soft_threshold(z: torch.Tensor, t: float) -> torch.Tensor:
    """Complex soft thresholding: shrink magnitudes by ``t``."""
    mag = z.abs()
    return z * torch.clamp(1 - t / torch.clamp(mag, min=1e-30), min=0)
