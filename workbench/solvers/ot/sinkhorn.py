"""Log-domain Sinkhorn (spec ``ot.md`` §3).

Solves the entropic problem ``min_P <C, P> + reg * sum P log P`` s.t. ``P 1 = a``, ``P^T 1 = b`` by
exact block-coordinate ascent on the dual: alternately making the row sums and the column sums of
``P = exp(eta (x (+) y - C) - 1)`` exact (``eta = 1/reg``), with log-sum-exp updates that never form
``exp(-eta C)``. The L1 marginal error ``e = ||P1 - a||_1 + ||P^T 1 - b||_1`` is checked every
``check_every`` iterations and the run stops when ``e <= tol``.

On the CPU (up to ``_np_sinkhorn.KERNEL_MAX`` entries) the same iterates are computed in NumPy in
the stabilised scaling form (Schmitzer 2019): two mat-vecs per iteration on the kernel of the
absorbed potentials ``exp(alpha (+) beta - eta C - 1)`` -- never ``exp(-eta C)`` itself -- with
the scalings absorbed into the potentials when they leave ``[1e-50, 1e50]`` and a log-sum-exp
half-step wherever the kernel's row or column sums underflow (:mod:`._np_sinkhorn`).

Example
-------
>>> from workbench.datasets.ot import hist1d
>>> from workbench.solvers.ot import sinkhorn
>>> res = sinkhorn.solve(hist1d(), sinkhorn.Params(reg=1e-2))
>>> res.status, res.metrics["marginal_error"] <= 1e-8
('converged', True)

Reference: M. Cuturi, "Sinkhorn distances", NeurIPS 2013; log-domain form as in
B. Schmitzer, SIAM J. Sci. Comput. 2019 and POT's ``ot.bregman.sinkhorn_log``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.device import resolve_device
from workbench.progress import Progress, ensure
from workbench.registry import SolverSpec, param
from workbench.result import Result
from workbench.solvers.ot import _core, _np_sinkhorn

REG_HELP = (
    "Entropic regularisation reg = 1/eta on costs divided by their maximum "
    "(default 1/1200, i.e. eta = 1200; smaller reg = sharper plan, harder problem)."
)


@dataclass(frozen=True)
class Params:
    reg: float = param(1.0 / 1200, REG_HELP, min=1e-6, max=10.0, log=True, label="reg (= 1/eta)")
    tol: float = param(
        1e-8,
        "Stop when the L1 marginal error ||P1-a||_1 + ||P^T1-b||_1 <= tol.",
        min=1e-14,
        max=1.0,
        log=True,
    )
    max_iter: int = param(
        100_000,
        "Maximum number of Sinkhorn iterations (row + column update).",
        min=1,
        max=10_000_000,
    )
    check_every: int = param(
        10,
        "Compute the marginal error every this many iterations (costs one pass).",
        min=1,
        max=10_000,
        advanced=True,
    )
    eps_scaling: int = param(
        0,
        "Warm start by epsilon-scaling: this many coarse stages at eta/4^s, "
        "each of `scaling_iters` iterations (counted in the iterations).",
        min=0,
        max=10,
        advanced=True,
    )
    scaling_iters: int = param(
        50, "Iterations per epsilon-scaling stage.", min=1, max=100_000, advanced=True
    )
    device: str = param(
        "auto",
        "Torch device: auto (CUDA when present), cpu or cuda.",
        choices=("auto", "cpu", "cuda"),
    )
    seed: int = param(
        0, "Unused (the method is deterministic); kept for the common interface.", advanced=True
    )


def eps_scaling_start(
    prep: _core.Prepared,
    stages: int,
    iters: int,
    progress: Progress,
    step0: int,
    max_iter: int,
    record: Any,
) -> tuple[Any, Any, int, bool]:
    """Coarse-to-fine warm start: Sinkhorn at eta/4^s for s = stages..1; returns (alpha, beta) at eta."""
    import torch

    alpha = torch.zeros_like(prep.a)
    beta = torch.zeros_like(prep.b)
    step = step0
    eta_prev = None
    for s in range(stages, 0, -1):
        eta_s = prep.eta / 4.0**s
        if eta_prev is not None:
            alpha, beta = alpha * (eta_s / eta_prev), beta * (eta_s / eta_prev)
        scale = eta_s / prep.eta
        Zs, Zts = prep.Z * scale, prep.Zt * scale
        for _ in range(iters):
            if step >= max_iter:
                break
            alpha = prep.la + 1.0 - _core.lse_rows(Zs, beta)
            beta = prep.lb + 1.0 - _core.lse_rows(Zts, alpha)
            step += 1
            record(step, None)
            progress(step, max_iter, stage_eta=eta_s)
            if progress.cancelled:
                return alpha * (prep.eta / eta_s), beta * (prep.eta / eta_s), step, True
        eta_prev = eta_s
    if eta_prev is not None:
        alpha, beta = alpha * (prep.eta / eta_prev), beta * (prep.eta / eta_prev)
    return alpha, beta, step, False


def initial_potentials(prep: _core.Prepared, init: Any) -> tuple[Any, Any]:
    """(alpha, beta) from a warm start (x, y) given on the full support, in normalised units."""
    import torch

    if init is None:
        return torch.zeros_like(prep.a), torch.zeros_like(prep.b)
    x, y = (np.asarray(v, dtype=np.float64) for v in init)
    if x.shape != (prep.n_full,) or y.shape != (prep.m_full,):
        raise ValueError("warm start potentials have the wrong shape")
    alpha = torch.as_tensor(x[prep.ia] * prep.eta, device=prep.a.device)
    beta = torch.as_tensor(y[prep.ib] * prep.eta, device=prep.a.device)
    return alpha, beta


def solve(
    problem: Any, params: Params, progress: Progress | None = None, *, init: Any = None
) -> Result:
    """Run log-domain Sinkhorn; ``init=(x, y)`` warm-starts from potentials (normalised units)."""
    if _np_sinkhorn.applies(problem, params):  # CPU: same iterates, scaling form, no torch import
        return _np_sinkhorn.solve(problem, params, progress, init=init)
    import torch

    progress = ensure(progress)
    clock = _core.Timer()
    device = resolve_device(params.device)
    _core.set_torch_precision(device)
    prep = _core.prepare(problem, params.reg, device)
    hist: dict[str, list[float]] = {"step": [], "e": [], "f": [], "time": []}

    def record(step: int, st: Any) -> None:
        if st is not None:
            hist["step"].append(step)
            hist["e"].append(st.e)
            hist["f"].append(st.f)
            hist["time"].append(clock())

    cancelled = False
    step = 0
    if params.eps_scaling > 0 and init is None:
        alpha, beta, step, cancelled = eps_scaling_start(
            prep, params.eps_scaling, params.scaling_iters, progress, 0, params.max_iter, record
        )
    else:
        alpha, beta = initial_potentials(prep, init)
    e = float("inf")
    with torch.no_grad():
        while not cancelled and step < params.max_iter:
            alpha = _core.sinkhorn_x(prep, beta)
            beta = _core.sinkhorn_y(prep, alpha)
            step += 1
            if step % params.check_every == 0 or step == params.max_iter:
                st = _core.evaluate_state(prep, alpha, beta)
                e = st.e
                record(step, st)
                progress(step, params.max_iter, e=e)
                if not np.isfinite(e) or e <= params.tol:
                    break
            else:
                progress(step, params.max_iter)
            if progress.cancelled:
                cancelled = True
        return finish(
            problem,
            prep,
            alpha,
            beta,
            params.reg,
            params.tol,
            step,
            cancelled,
            hist,
            clock,
            device,
            "sinkhorn",
        )


def finish(
    problem: Any,
    prep: _core.Prepared,
    alpha: Any,
    beta: Any,
    reg: float,
    tol: float,
    step: int,
    cancelled: bool,
    hist: dict[str, list[float]],
    clock: _core.Timer,
    device: str,
    solver: str,
    extras: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
) -> Result:
    """Build the Result from the final potentials: plan, status from the plan, metrics."""
    st = _core.evaluate_state(prep, alpha, beta)
    P = _core.full_plan(prep, alpha, beta)
    x, y = _core.full_potentials(prep, problem, alpha, beta)
    ex = {"x": x, "y": y}
    ex.update(extras or {})
    return _core.plan_result(
        problem,
        P,
        reg=reg,
        tol=tol,
        step=step,
        dual_objective=st.f,
        hist=hist,
        extras=ex,
        clock=clock,
        solver=solver,
        device=device,
        cancelled=cancelled,
        metrics=metrics,
    )


SPEC = SolverSpec(
    name="sinkhorn",
    domain="ot",
    title="Sinkhorn (log domain)",
    Params=Params,
    solve=solve,
    description=(
        "Sinkhorn in float64: on the CPU in NumPy in the scaling form with log-domain absorption "
        "(two mat-vecs per iteration on the kernel of the absorbed potentials, log-sum-exp "
        "half-steps where it underflows; up to 16e6 entries), otherwise log-domain in torch "
        "(CUDA): alternating exact row and column scalings, the same iterates either way, never "
        "forming exp(-C/reg). Robust at small reg; its iteration "
        "count grows quickly as reg shrinks. Stops on the L1 marginal error."
    ),
    reference="M. Cuturi, Sinkhorn distances: lightspeed computation of optimal transport, NeurIPS 2013.",
    paper=False,
)


def finish_plan(
    problem: Any,
    kernel: Any,
    alpha: Any,
    beta: Any,
    ia: np.ndarray,
    ib: np.ndarray,
    reg: float,
    tol: float,
    step: int,
    reason: str,
    hist: dict[str, list[float]],
    clock: _core.Timer,
    device: str,
    solver: str,
    extras: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
    dtype: str = "float64",
) -> Result:
    """The Result of a blockwise solve: the dense plan written block by block, status from it.

    ``reason`` (converged, budget, stagnation, cancelled, non_finite) explains a run that did not
    reach ``tol``; the status itself is decided from the returned plan's marginal error.
    """
    n_full, m_full = problem.a.size, problem.b.size
    if ia.size == n_full and ib.size == m_full:
        P = np.empty((n_full, m_full))
        kernel.plan_into(alpha, beta, P)
    else:
        P = np.zeros((n_full, m_full))
        r, c, v = kernel.plan_sparse(alpha, beta, threshold=0.0)
        P[ia[r], ib[c]] = v
    al, be = _core.fix_gauge(alpha, beta, kernel.a, kernel.b)
    eta = kernel.eta
    xs, ys = al.cpu().numpy() / eta, be.cpu().numpy() / eta
    x, y = _core.extend_potentials(problem, ia, ib, xs, ys)
    ex = {"x": x, "y": y}
    ex.update(extras or {})
    return _core.plan_result(
        problem,
        P,
        reg=reg,
        tol=tol,
        step=step,
        # sum P from the plan just written (zero outside the support): no pass of its own
        dual_objective=float(-P.sum() / eta)
        + float(np.dot(problem.a[ia], xs) + np.dot(problem.b[ib], ys)),
        hist=hist,
        extras=ex,
        clock=clock,
        solver=solver,
        device=device,
        reason=reason,
        metrics=metrics,
        dtype=dtype,
    )
