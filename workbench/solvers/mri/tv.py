"""Total-variation compressed sensing: ``min_x ½‖A x − y‖² + λ‖∇x‖₁`` (isotropic, complex) by PDHG.

Chambolle–Pock primal-dual iterations with K = [A; ∇], F(u, v) = ½‖u − y‖² + λ‖v‖_{2,1}, G = 0
(the solver sigpy's ``TotalVariationRecon`` uses); steps σ = τ = 0.99/‖K‖ with ‖K‖² ≤ ‖A‖² + 8.
λ is relative to s = max|A^H y|.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from workbench.physics.mri.operators import GradientOperator, cnorm
from workbench.progress import ensure
from workbench.registry import SolverSpec, param
from workbench.solvers.mri.common import Setup, lipschitz, stop_status


@dataclass(frozen=True)
class Params:
    # defaults tuned on validation data: `workbench bench mri_tune` (benchmarks/results/mri_tuning.json; corpus val split, 3 examples x R 4/8 at 128², maps=auto)
    lam: float = param(
        0.003, "TV weight λ (relative to max|A^H y|)", min=0.0, max=1.0, log=True, label="λ"
    )
    max_iter: int = param(300, "PDHG iterations", min=1, max=5000)
    tol: float = param(
        0.0, "stop when ‖x_k − x_{k−1}‖ ≤ tol·‖x_k‖", min=0.0, max=1.0, advanced=True
    )
    device: str = param("auto", "compute device (auto, cpu, cuda)", advanced=True)
    seed: int = param(0, "unused (deterministic)", advanced=True)


def solve(problem, params: Params | None = None, progress=None):
    params = params or Params()
    progress = ensure(progress)
    st = Setup(problem, params.device)
    A = st.A
    G = GradientOperator(A.domain_shape, A.dtype, A.device)
    LA = lipschitz(st)
    knorm = math.sqrt(LA + 8.0)
    sigma = tau = 0.99 / knorm
    lam = float(params.lam)
    sup = st.support()
    x = A.adjoint(st.y) * 0
    xbar = x.clone()
    u = torch.zeros_like(st.y)
    v = G.forward(x)
    # history: ‖A x̄ − y‖ at the extrapolated point (free) and TV(x)
    hist = {"step": [], "residual_xbar": [], "tv": [], "psnr": [], "time": []}
    t0 = time.perf_counter()
    status, it = "max_iter", 0
    for k in range(1, params.max_iter + 1):
        # dual ascent + prox of F*: data term and projection onto the λ-ball (isotropic)
        rbar = A.forward(xbar) - st.y
        u = (u + sigma * rbar) / (1 + sigma)
        v = v + sigma * G.forward(xbar)
        vn = torch.sqrt((v.abs() ** 2).sum(-3, keepdim=True))
        v = v / torch.clamp(vn / max(lam, 1e-30), min=1.0) if lam > 0 else v * 0
        x_new = x - tau * (A.adjoint(u) + G.adjoint(v))
        if sup is not None:  # unobservable pixels stay 0 (see Setup.support)
            x_new = x_new * sup
        xbar = 2 * x_new - x
        dx = float(cnorm(x_new - x))
        x, it = x_new, k
        gx = G.forward(x)
        st.record(
            hist,
            k,
            params.max_iter,
            x,
            progress,
            t0,
            residual_xbar=float(cnorm(rbar)) * st.scale,
            tv=float(torch.sqrt((gx.abs() ** 2).sum(-3)).sum()) * st.scale,
        )
        stop = stop_status(progress, k, params.max_iter, dx, float(cnorm(x)), params.tol)
        if stop:
            status = stop
            break
    return st.result(
        st.magnitude(x), status=status, iterations=it, history=hist, params=params, estimate=x
    )


SPEC = SolverSpec(
    name="tv",
    domain="mri",
    title="TV compressed sensing (PDHG)",
    Params=Params,
    solve=solve,
    description="Isotropic total-variation regularised least squares ½‖Ax − y‖² + λ‖∇x‖₁ by the primal-dual hybrid gradient method; λ relative to the data scale.",
    reference="Lustig, Donoho & Pauly, MRM 58:1182 (2007); Chambolle & Pock, JMIV 40:120 (2011)",
)
