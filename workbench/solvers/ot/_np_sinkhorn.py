"""The Sinkhorn of :mod:`workbench.solvers.ot.sinkhorn` in NumPy on the CPU: scaling (kernel)
iterations with log-domain absorption.

Why a second path: the torch path costs ~1 s of ``import torch`` before its first iteration, which
dominates a small solve, and its log-domain half-step spends an ``exp`` per entry, about ten
times a kernel mat-vec. This module runs the same iteration in float64 NumPy -- the potentials
``alpha = eta x``, ``beta = eta y`` of the block-coordinate ascent

    alpha_i = log a_i + 1 - log sum_j exp(Z_ij + beta_j),     Z = -eta C,
    beta_j  = log b_j + 1 - log sum_i exp(Z_ij + alpha_i),

-- in the stabilised scaling form of Schmitzer (2019, "Stabilized sparse scaling algorithms for
entropy regularized transport problems", SIAM J. Sci. Comput. 41, A1443): with absorbed
potentials ``(alpha, beta)`` and the kernel ``K = exp(Z + alpha (+) beta - 1)`` (the plan at the
last absorption, entries <= 1 near feasibility), the current plan is ``diag(u) K diag(v)`` and
one iteration is two mat-vecs,

    u = a / (K v),        v = b / (K^T u),

identical in exact arithmetic to the log-domain updates with ``alpha + log u``, ``beta + log v``.
When a scaling leaves ``[1/TAU, TAU]`` it is absorbed (``alpha += log u``, ``beta += log v``,
``u = v = 1``) and ``K`` rebuilt (one ``exp`` pass). An entry of ``K`` that underflows is below
``e^-745``; between absorptions the scalings multiply it by at most ``TAU^2``, so what the kernel
drops stays below ``e^-745 TAU^2`` (~1e-224), far under any tolerance. Where a whole row (or
column) of ``K v`` (``K^T u``) underflows -- far from the solution at large eta, beyond what
absorption handles -- that half-step is taken in the log domain (the log-sum-exp above, rows or
columns exact), then ``K`` is rebuilt. The marginal error costs no extra pass: the mat-vec
``K v`` of the next row update gives the row sums ``u * (K v)`` of the current plan, and
``v * (K^T u)`` its column sums.

epsilon-scaling stages, warm start, check cadence, stopping rule and status are those of the
torch path (``tests/ot/test_np_sinkhorn.py`` checks plans, potentials, iterations and status
against it and against POT's ``sinkhorn_log``, absorption included).

:func:`applies` picks it for ``device="cpu"``, and for ``"auto"`` on problems with at most
:data:`MAX_ENTRIES` entries (there a GPU would only add launch latency, so ``auto`` does not look
for one) or, up to :data:`KERNEL_MAX` entries, when no CUDA device is present.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from workbench.errors import InputError
from workbench.progress import Progress, ensure
from workbench.result import Result
from workbench.solvers.ot import _core

#: ``device="auto"`` runs here without looking for CUDA when n*m is at most this (a 256 x 256
#: problem): a GPU would only add launch latency, and the path needs no torch import.
MAX_ENTRIES = 65_536
#: Largest n*m run here on the CPU: the kernel and -eta C are two dense float64 arrays
#: (16 bytes per entry, 256 MB at 4000 x 4000) beside the cost itself. Per iteration the two
#: mat-vecs cost 3-8% of the torch log-domain half-steps (measured at n = m = 1000, 2000, 4000,
#: one thread, random costs at eta = 1200), so the bound is memory, not speed.
KERNEL_MAX = 16_000_000
#: Absorption threshold on the scalings (see the module docstring for why underflow stays harmless).
TAU = 1e50


def applies(problem: Any, params: Any) -> bool:
    """True when the NumPy path runs this solve (CPU, or ``auto`` without CUDA), up to KERNEL_MAX."""
    device = str(getattr(params, "device", "auto"))
    size = int(np.size(problem.C))
    if device not in ("auto", "cpu") or not 0 < size <= KERNEL_MAX:
        return False
    if device == "cpu" or size <= MAX_ENTRIES:
        return True
    from workbench.device import resolve_device

    return resolve_device("auto") == "cpu"


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
        full = self.ia.size == a.size and self.ib.size == b.size
        self.Z = (C if full else C[np.ix_(self.ia, self.ib)]) * (-self.eta)  # C-contiguous
        self.n_full, self.m_full = a.size, b.size

    @functools.cached_property
    def Zt(self) -> np.ndarray:
        """-eta C^T, contiguous (column log-sum-exps read rows); built only when needed."""
        return np.ascontiguousarray(self.Z.T)

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
    out = prep.Z + (alpha - 1.0)[:, None]  # the -1 folded into the row shift: two passes
    out += beta[None, :]
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
    return _core.extend_potentials(problem, prep.ia, prep.ib, xs, ys)


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
    stats = {"absorptions": 0, "log_half_steps": 0}
    P = None
    if not cancelled and step < params.max_iter:
        alpha, beta, step, cancelled, P = _scaling_loop(
            prep, alpha, beta, step, params, progress, record, stats
        )
    return _finish(
        problem, prep, alpha, beta, params.reg, params.tol, step, cancelled, hist, clock, stats, P
    )


def _kernel(prep: Prepared, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """K = exp(Z + alpha (+) beta - 1); entries below e^-745 underflow to 0 (harmless, see above)."""
    K = log_plan(prep, alpha, beta)
    np.exp(K, out=K)
    return K


def _scaling_loop(prep, alpha, beta, step, params, progress, record, stats):
    """Sinkhorn iterations in scaling form from absorbed potentials (alpha, beta).

    Returns the absorbed potentials of the last iterate, the step count, the cancel flag and
    the last iterate's plan on the support (``u K v``, overwriting the kernel).
    The loop keeps ``Kv = K v`` of the current iterate: it is both the next row update's
    denominator and, with ``u``, the current plan's row sums for the error check.
    """
    a, b, eta = prep.a, prep.b, prep.eta
    lo = 1.0 / TAU
    cancelled = False
    K = _kernel(prep, alpha, beta)
    u, v = np.ones(prep.n), np.ones(prep.m)
    Kv = K.sum(axis=1)

    def absorb() -> None:
        nonlocal alpha, beta, u, v, K
        alpha = alpha + np.log(u)
        beta = beta + np.log(v)
        u, v = np.ones(prep.n), np.ones(prep.m)
        stats["absorptions"] += 1

    while step < params.max_iter:
        if Kv.min() > 0.0:
            u = a / Kv
        else:  # a row of K v underflowed: this half-step in the log domain
            u = np.ones(prep.n)
            beta = beta + np.log(v)
            v = np.ones(prep.m)
            alpha = prep.la + 1.0 - lse_rows(prep.Z, beta)
            K = _kernel(prep, alpha, beta)
            stats["log_half_steps"] += 1
        if u.max() > TAU or u.min() < lo:
            absorb()
            K = _kernel(prep, alpha, beta)
        KTu = u @ K
        if KTu.min() > 0.0:
            v = b / KTu
        else:  # a column of K^T u underflowed
            alpha = alpha + np.log(u)
            u, v = np.ones(prep.n), np.ones(prep.m)
            beta = prep.lb + 1.0 - lse_rows(prep.Zt, alpha)
            K = _kernel(prep, alpha, beta)
            KTu = K.sum(axis=0)
            v = b / KTu  # exact up to rounding: the log step made the columns sum to b
            stats["log_half_steps"] += 1
        if v.max() > TAU or v.min() < lo:
            absorb()
            K = _kernel(prep, alpha, beta)
            KTu = K.sum(axis=0)
        step += 1
        Kv = K @ v
        if step % params.check_every == 0 or step == params.max_iter:
            rows = u * Kv
            cols = v * KTu
            e = float(np.abs(rows - a).sum() + np.abs(cols - b).sum())
            f = (
                -float(rows.sum()) + float(a @ (alpha + np.log(u))) + float(b @ (beta + np.log(v)))
            ) / eta
            record(step, (e, f))
            progress(step, params.max_iter, e=e)
            if not np.isfinite(e) or e <= params.tol:
                break
        else:
            progress(step, params.max_iter)
        if progress.cancelled:
            cancelled = True
            break
    # the plan of the last iterate, u K v: no exp pass (equal to exp(log P) to rounding)
    K *= u[:, None]
    K *= v[None, :]
    return alpha + np.log(u), beta + np.log(v), step, cancelled, K


def _finish(
    problem, prep, alpha, beta, reg, tol, step, cancelled, hist, clock, stats=None, Ps=None
) -> Result:
    """The Result of ``sinkhorn.finish``, field for field, from NumPy potentials (and the plan
    on the support ``Ps`` when the iteration already holds it)."""
    if Ps is None:
        Ps = np.exp(log_plan(prep, alpha, beta))
    f = (-float(Ps.sum()) + float(prep.a @ alpha) + float(prep.b @ beta)) / prep.eta
    if prep.n == prep.n_full and prep.m == prep.m_full:
        P = Ps
    else:
        P = np.zeros((prep.n_full, prep.m_full))
        P[np.ix_(prep.ia, prep.ib)] = Ps
    x, y = full_potentials(prep, problem, alpha, beta)
    return _core.plan_result(
        problem,
        P,
        reg=reg,
        tol=tol,
        step=step,
        dual_objective=f,
        hist=hist,
        extras={"x": x, "y": y},
        clock=clock,
        solver="sinkhorn",
        device="cpu",
        cancelled=cancelled,
        metrics={k: float(v) for k, v in (stats or {}).items()},
        meta={
            "backend": "numpy",
            "iteration": "scaling with log-domain absorption (Schmitzer 2019)",
        },
    )
