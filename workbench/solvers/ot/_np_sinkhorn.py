"""The log-domain Sinkhorn of :mod:`workbench.solvers.ot.sinkhorn` in NumPy, for small CPU problems.

Why a second path: the torch path costs ~1 s of ``import torch`` before its first iteration, which
dominates a small solve (a 64 x 48 problem converges in milliseconds) and every scripted CLI call
and Dask task pays it again. This module runs *the same iteration* -- the same potentials
``alpha = eta x``, ``beta = eta y``, the same row-maximum-stabilised log-sum-exp

    alpha_i = log a_i + 1 - log sum_j exp(Z_ij + beta_j),     Z = -eta C,
    beta_j  = log b_j + 1 - log sum_i exp(Z_ij + alpha_i),

the same floor on the exponent, the same check cadence, epsilon-scaling, warm start, stopping
rule and status -- in float64 NumPy, so the returned plan equals the torch path's to rounding
(``tests/ot/test_np_sinkhorn.py`` checks plans, potentials, iterations and status).

:func:`applies` picks it for ``device="cpu"`` or ``"auto"`` on a problem with at most
:data:`MAX_ENTRIES` cost entries (there a GPU would only add launch latency, so ``auto`` does not
look for one); larger problems keep torch, whose multithreaded exp is faster there.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from workbench.device import versions
from workbench.errors import InputError
from workbench.physics.ot.metrics import plan_metrics
from workbench.progress import Progress, ensure
from workbench.result import Result
from workbench.solvers.ot import _core

#: ``device="auto"`` runs here when n*m is at most this (a 256 x 256 problem): below it NumPy's
#: single-threaded exp is no slower per iteration than torch on the CPU, and it needs no torch.
MAX_ENTRIES = 65_536


def applies(problem: Any, params: Any) -> bool:
    """True when the NumPy path runs this solve: a CPU or ``auto`` device and a small problem."""
    device = str(getattr(params, "device", "auto"))
    return device in ("auto", "cpu") and 0 < int(np.size(problem.C)) <= MAX_ENTRIES


class Prepared:
    """The problem on its positive-mass support as float64 arrays (cf. :class:`_core.Prepared`)."""

    def __init__(self, problem: Any, reg: float) -> None:
        if not (reg > 0 and math.isfinite(reg)):
            raise InputError(f"reg must be a positive finite number, got {reg}")
        a = np.asarray(problem.a, dtype=np.float64)
        b = np.asarray(problem.b, dtype=np.float64)
        C = np.asarray(problem.C, dtype=np.float64)
        if C.shape != (a.size, b.size):
            raise InputError(f"cost matrix has shape {C.shape}, expected {(a.size, b.size)}")
        if a.size * b.size > _core.MAX_ENTRIES:
            raise InputError(
                f"problem too large: {a.size}x{b.size} exceeds {_core.MAX_ENTRIES:,} entries"
            )
        self.ia = np.flatnonzero(a > 0)
        self.ib = np.flatnonzero(b > 0)
        if self.ia.size == 0 or self.ib.size == 0:
            raise InputError("a measure has no positive mass")
        self.eta = 1.0 / reg
        self.a, self.b = a[self.ia], b[self.ib]
        self.la, self.lb = np.log(self.a), np.log(self.b)
        self.Z = np.ascontiguousarray(C[np.ix_(self.ia, self.ib)]) * (-self.eta)
        self.Zt = np.ascontiguousarray(self.Z.T)  # column updates read rows: contiguous
        self.n_full, self.m_full = a.size, b.size

    @property
    def n(self) -> int:
        return int(self.a.size)

    @property
    def m(self) -> int:
        return int(self.b.size)


def lse_rows(Z: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """log sum_j exp(Z_ij + shift_j), stabilised by the row maximum (as :func:`_core.lse_rows`)."""
    W = Z + shift[None, :]
    mx = W.max(axis=1, keepdims=True)
    W -= mx
    np.maximum(W, _core.FLOOR, out=W)
    np.exp(W, out=W)
    return np.log(W.sum(axis=1)) + mx[:, 0]


def log_plan(prep: Prepared, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    out = prep.Z + alpha[:, None]
    out += beta[None, :]
    out -= 1.0
    return out


def evaluate_state(prep: Prepared, alpha: np.ndarray, beta: np.ndarray) -> tuple[float, float]:
    """(L1 marginal error, dual objective in normalised-cost units) of the current potentials."""
    P = log_plan(prep, alpha, beta)
    np.maximum(P, _core.FLOOR, out=P)
    np.exp(P, out=P)
    rows, cols = P.sum(axis=1), P.sum(axis=0)
    e = float(np.abs(rows - prep.a).sum() + np.abs(cols - prep.b).sum())
    f = (-float(rows.sum()) + float(prep.a @ alpha) + float(prep.b @ beta)) / prep.eta
    return e, f


def full_plan(prep: Prepared, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    P = np.exp(log_plan(prep, alpha, beta))
    if prep.n == prep.n_full and prep.m == prep.m_full:
        return P
    out = np.zeros((prep.n_full, prep.m_full))
    out[np.ix_(prep.ia, prep.ib)] = P
    return out


def full_potentials(
    prep: Prepared, problem: Any, alpha: np.ndarray, beta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gauge-fixed potentials on the full support; zero masses get their c-transform value."""
    t = 0.5 * (float(prep.b @ beta) - float(prep.a @ alpha))  # <a, x> = <b, y>
    xs, ys = (alpha + t) / prep.eta, (beta - t) / prep.eta
    if prep.n == prep.n_full and prep.m == prep.m_full:
        return xs, ys
    C = np.asarray(problem.C, dtype=np.float64)
    x, y = np.empty(prep.n_full), np.empty(prep.m_full)
    x[prep.ia], y[prep.ib] = xs, ys
    ra = np.setdiff1d(np.arange(prep.n_full), prep.ia)
    rb = np.setdiff1d(np.arange(prep.m_full), prep.ib)
    if ra.size:
        x[ra] = np.min(C[np.ix_(ra, prep.ib)] - ys[None, :], axis=1)
    if rb.size:
        y[rb] = np.min(C[np.ix_(prep.ia, rb)] - xs[:, None], axis=0)
    return x, y


def _eps_scaling(prep, stages, iters, progress, max_iter, record):
    """Coarse-to-fine warm start at eta/4^s, s = stages..1 (as ``sinkhorn.eps_scaling_start``)."""
    alpha, beta = np.zeros(prep.n), np.zeros(prep.m)
    step, eta_prev = 0, None
    for s in range(stages, 0, -1):
        eta_s = prep.eta / 4.0**s
        if eta_prev is not None:
            alpha, beta = alpha * (eta_s / eta_prev), beta * (eta_s / eta_prev)
        scale = eta_s / prep.eta
        Zs, Zts = prep.Z * scale, prep.Zt * scale
        for _ in range(iters):
            if step >= max_iter:
                break
            alpha = prep.la + 1.0 - lse_rows(Zs, beta)
            beta = prep.lb + 1.0 - lse_rows(Zts, alpha)
            step += 1
            record(step, None)
            progress(step, max_iter, stage_eta=eta_s)
            if progress.cancelled:
                return alpha * (prep.eta / eta_s), beta * (prep.eta / eta_s), step, True
        eta_prev = eta_s
    if eta_prev is not None:
        alpha, beta = alpha * (prep.eta / eta_prev), beta * (prep.eta / eta_prev)
    return alpha, beta, step, False


def solve(
    problem: Any, params: Any, progress: Progress | None = None, *, init: Any = None
) -> Result:
    """Log-domain Sinkhorn in NumPy; the same contract and result as ``sinkhorn.solve``."""
    progress = ensure(progress)
    clock = _core.Timer()
    prep = Prepared(problem, params.reg)
    hist: dict[str, list[float]] = {"step": [], "e": [], "f": [], "time": []}

    def record(step: int, ef: tuple[float, float] | None) -> None:
        if ef is not None:
            hist["step"].append(step)
            hist["e"].append(ef[0])
            hist["f"].append(ef[1])
            hist["time"].append(clock())

    cancelled, step = False, 0
    if params.eps_scaling > 0 and init is None:
        alpha, beta, step, cancelled = _eps_scaling(
            prep, params.eps_scaling, params.scaling_iters, progress, params.max_iter, record
        )
    elif init is None:
        alpha, beta = np.zeros(prep.n), np.zeros(prep.m)
    else:
        x, y = (np.asarray(v, dtype=np.float64) for v in init)
        if x.shape != (prep.n_full,) or y.shape != (prep.m_full,):
            raise ValueError("warm start potentials have the wrong shape")
        alpha, beta = x[prep.ia] * prep.eta, y[prep.ib] * prep.eta
    while not cancelled and step < params.max_iter:
        alpha = prep.la + 1.0 - lse_rows(prep.Z, beta)
        beta = prep.lb + 1.0 - lse_rows(prep.Zt, alpha)
        step += 1
        if step % params.check_every == 0 or step == params.max_iter:
            ef = evaluate_state(prep, alpha, beta)
            record(step, ef)
            progress(step, params.max_iter, e=ef[0])
            if not np.isfinite(ef[0]) or ef[0] <= params.tol:
                break
        else:
            progress(step, params.max_iter)
        if progress.cancelled:
            cancelled = True
    return _finish(problem, prep, alpha, beta, params.reg, params.tol, step, cancelled, hist, clock)


def _finish(problem, prep, alpha, beta, reg, tol, step, cancelled, hist, clock) -> Result:
    """The Result of ``sinkhorn.finish``, field for field, from NumPy potentials."""
    _, f = evaluate_state(prep, alpha, beta)
    P = full_plan(prep, alpha, beta)
    x, y = full_potentials(prep, problem, alpha, beta)
    m = plan_metrics(problem, P, reg)
    m["dual_objective"] = f
    m["iterations"] = float(step)
    status = _core.decide_status(m["marginal_error"], tol, cancelled)
    wall = clock()
    m["wall_s"] = wall
    e = m["marginal_error"]
    msg = {
        "converged": f"marginal error {e:.2e} <= tol {tol:.1e} after {step} iterations",
        "max_iter": f"stopped at the iteration cap ({step}); marginal error {e:.2e} > tol {tol:.1e}",
        "cancelled": f"cancelled after {step} iterations; marginal error {e:.2e}",
        "failed": "non-finite marginal error (numerical breakdown)",
    }[status]
    return Result(
        output=P,
        kind="plan",
        status=status,
        iterations=int(step),
        metrics={k: float(v) for k, v in m.items()},
        history=hist,
        extras={"x": x, "y": y},
        meta={
            "solver": "sinkhorn",
            "reg": reg,
            "eta": 1.0 / reg,
            "tol": tol,
            "tol_norm": "L1 marginal error ||P1-a||_1 + ||P^T1-b||_1",
            "device": "cpu",
            "backend": "numpy",
            "wall_s": wall,
            "dtype": "float64",
            "potentials_units": "normalised cost (multiply by cost_scale for user units)",
            "versions": versions(),
        },
        message=msg,
    )
