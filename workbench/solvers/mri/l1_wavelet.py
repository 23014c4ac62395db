"""L1-wavelet compressed sensing: ``min_x ½‖A x − y‖² + λ‖Ψ x‖₁`` by FISTA.

Ψ is the orthogonal Daubechies-4 wavelet (periodic, :mod:`.wavelet`), so the proximal step is
complex soft thresholding of the coefficients; the step is 1/L with L = ‖A‖² (1 for maps with
Σ|S|² ≤ 1, else estimated by power iteration). λ is relative to s = max|A^H y| (Lustig, Donoho &
Pauly, MRM 58:1182, 2007; sigpy ``L1WaveletRecon``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from workbench.physics.mri.operators import cnorm
from workbench.progress import ensure
from workbench.registry import SolverSpec, param
from workbench.solvers.mri.common import Setup, lipschitz, soft_threshold, stop_status
from workbench.solvers.mri.wavelet import WaveletOperator


@dataclass(frozen=True)
class Params:
    # defaults tuned on validation data: `workbench bench mri_tune` (benchmarks/results/mri_tuning.json; corpus val split, 3 examples x R 4/8 at 128², maps=auto)
    lam: float = param(
        0.001, "sparsity weight λ (relative to max|A^H y|)", min=0.0, max=1.0, log=True, label="λ"
    )
    max_iter: int = param(300, "FISTA iterations", min=1, max=2000)
    wavelet: str = param("db4", "orthogonal wavelet", choices=("db4", "db2", "haar"))
    levels: int = param(
        4, "decomposition levels (reduced for small or odd sizes)", min=1, max=8, advanced=True
    )
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
    W = WaveletOperator(A.domain_shape, params.wavelet, params.levels, A.dtype, A.device)
    L = max(lipschitz(st), 1e-12)
    step = 1.0 / L
    thr = params.lam * step
    sup = st.support()
    x = A.adjoint(st.y) * 0
    z = x.clone()
    t = 1.0
    # history: ‖A z − y‖ at the gradient point (free) and ‖Ψ x‖₁, to avoid an extra operator call
    hist = {"step": [], "residual_z": [], "l1": [], "psnr": [], "time": []}
    t0 = time.perf_counter()
    status, it = "max_iter", 0
    for k in range(1, params.max_iter + 1):
        rz = A.forward(z) - st.y
        g = A.adjoint(rz)
        coef = soft_threshold(W.forward(z - step * g), thr)
        x_new = W.adjoint(coef)
        if sup is not None:  # unobservable pixels stay 0 (see Setup.support)
            x_new = x_new * sup
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        z = x_new + ((t - 1) / t_new) * (x_new - x)
        dx = float(cnorm(x_new - x))
        x, t, it = x_new, t_new, k
        st.record(
            hist,
            k,
            params.max_iter,
            x,
            progress,
            t0,
            residual_z=float(cnorm(rz)) * st.scale,
            l1=float(coef.abs().sum()) * st.scale,
        )
        stop = stop_status(progress, k, params.max_iter, dx, float(cnorm(x)), params.tol)
        if stop:
            status = stop
            break
    return st.result(
        st.magnitude(x),
        status=status,
        iterations=it,
        history=hist,
        params=params,
        extras={"lipschitz": L, "levels": W.levels},
        estimate=x,
    )


SPEC = SolverSpec(
    name="l1_wavelet",
    domain="mri",
    title="L1-wavelet CS (FISTA)",
    Params=Params,
    solve=solve,
    description="Compressed sensing with an orthogonal Daubechies-4 wavelet sparsity prior: ½‖Ax − y‖² + λ‖Ψx‖₁ solved by FISTA; λ relative to the data scale.",
    reference="Lustig, Donoho & Pauly, MRM 58:1182 (2007); Beck & Teboulle, SIAM J. Imaging Sci. 2:183 (2009)",
)
