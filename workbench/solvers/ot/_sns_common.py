"""What both SNS paths share (:mod:`~workbench.solvers.ot.sinkhorn_newton`, the general blockwise
one, and :mod:`~workbench.solvers.ot._dense_sns`, the dense one for small problems): the
eta-continuation schedule, the kept-entries budget, the Levenberg–Marquardt shift rule and their
constants. ``sinkhorn_newton`` re-exports every name."""

from __future__ import annotations

import math
from typing import Any

ARMIJO_C = 1e-4
SMALL_DENSE = 1_000_000  # kept entries always allowed (the full Hessian up to n*m = 1e6)
#: Peak bytes per kept entry of the sparsified Hessian: the pattern (value + flat index, 16), the
#: selection of the next pattern running beside it (its candidate buffer and top-k cut, ~64 at
#: peak) and the Schur-complement system (CSR of P_s and its transpose and the construction
#: temporaries, ~30-40), plus the allocator's slack: the RSS slope measured on validation clouds
#: (seeds 7 and 11, n = 5000 and 10 000, 1.3e6-1.1e7 kept entries) was 150-170 bytes per entry
#: (benchmarks/ot_kept_budget.py).
KEPT_BYTES = 150
MU_START = 1e-12
MU_MAX = 1e12
MU_DROP = 1e-6  # after a full step a shift below this is dropped (pure Newton tail)
RADIUS = (
    10.0  # trust region: largest |d alpha_i|, |d beta_j| of a Newton step (P changes by <= e^20)
)
RADIUS_MIN = 1e-10
RADIUS_MAX = 1e6


def schedule(eta: float, cost_range: float, p: Any) -> list[float]:
    """The eta-continuation: geometric, increasing, ending at ``eta``.

    Automatic (``p.stages == 0``): ``K = ceil(log_q(eta R / start))`` extra stages for cost range
    ``R``, i.e. eta_0 = eta / q^K is the first value with eta_0 R <= start (where the dual is
    well conditioned and Newton's basin is wide). Always strictly increasing.
    """
    q = float(p.stage_factor)
    if p.stages > 0:
        K = p.stages - 1
    else:
        ratio = eta * max(cost_range, 1e-300) / p.stage_start
        K = max(0, math.ceil(math.log(ratio) / math.log(q) - 1e-9)) if ratio > 1 else 0
    return [eta / q ** (K - s) for s in range(K + 1)]


def kept_budget(n: int, m: int, p: Any) -> int:
    """The most kept entries of the sparsified Hessian for an n x m problem: a memory budget.

    ``min(max_density n m, max(SMALL_DENSE, max_memory_mb 2^20 / KEPT_BYTES))`` (and at most
    ``max_kappa max(n, m)`` when that optional per-row cap is set). The density cap is lifted for
    ``n m <= 1e6`` (the full Hessian is cheap there); the memory term is a budget on the total
    number of kept entries, not per row, so that ``kappa`` may grow with ``n`` where the plan's
    support does: at fixed eta the support of a point-cloud plan is a fixed fraction of ``n m``,
    so its rows hold ~n times a constant entries. The default (1536 MB) gives ~1 070 per row at
    n = m = 10 000 (1.07e7 entries, ~1.6 GB) and leaves every problem up to n m = 4e6
    (n = m = 2000) at its density cap, as the former 256-per-row cap did.
    """
    nm = n * m
    dens = max(1, int(max(p.max_density, min(1.0, SMALL_DENSE / nm)) * nm))
    budget = max(SMALL_DENSE, int(p.max_memory_mb * 2**20 / KEPT_BYTES))
    if p.max_kappa > 0:
        budget = min(budget, max(SMALL_DENSE, int(p.max_kappa * max(n, m))))
    return max(1, min(dens, budget))


def next_shift(
    mu: float, too_long: list[tuple[float, float]], radius: float, scale: float = 0.0
) -> float:
    """The next Levenberg–Marquardt shift when the step at ``mu`` left the trust region.

    Along the weakest mode of the shifted system the step size behaves like
    ``s(mu) = A / (lam + mu)`` (``lam`` the smallest eigenvalue of ``D^-1 M``, ``A`` the
    gradient's weight on that mode). Two sizes at different shifts fit ``A`` and ``lam``; the
    model's shift for a step of ``0.8 * radius`` is then tried, kept within [2 mu, 1e4 mu] so that
    every trial raises the shift and a poor fit cannot overshoot without bound. While the size
    has not yet started to fall (``mu`` far below ``lam``: no information), the shift grows x16;
    the first one starts at ``1e-4 scale / radius`` when ``scale = max |D^-1 g|`` is given (for
    ``mu >> 1`` the step tends to ``D^-1 g / mu``, so ``scale / radius`` is where the step would
    fit if ``M`` were negligible; 1e-4 of it leaves room for weak modes whose gradient weight
    is far below ``scale``, as a nearly decoupled block of the plan graph has). The previous
    rule (x4 from 1e-12 every time) needed ~18 factorisations for the first step of a stage;
    this needs 4-8.
    """
    grow = max(16.0 * mu, MU_START)
    if mu == 0.0 and scale > 0.0 and math.isfinite(scale):
        grow = max(grow, 1e-4 * scale / radius)
    if len(too_long) >= 2:
        (mu_a, s_a), (mu_b, s_b) = too_long[-2], too_long[-1]
        if mu_b > mu_a and s_b < 0.9 * s_a:
            lam = (s_b * mu_b - s_a * mu_a) / (s_a - s_b)
            if lam > 0:
                amp = s_a * (lam + mu_a)
                target = amp / (0.8 * radius) - lam
                if math.isfinite(target):
                    return min(max(target, 2.0 * mu_b), 1e4 * max(mu_b, MU_START))
    return grow
