"""Shared numerics of the OT solvers: log-domain plans, marginal errors, objectives, results.

Conventions (spec ``ot.md`` §1–2). With ``eta = 1/reg`` the entropic plan of dual potentials
``(x, y)`` is ``P_ij = exp(eta (x_i + y_j - C_ij) - 1)`` and the concave dual objective is

    f(x, y) = -(1/eta) sum_ij P_ij + <a, x> + <b, y>.

Internally the solvers work with the dimensionless potentials ``alpha = eta x`` and
``beta = eta y``, so that ``log P = alpha (+) beta - eta C - 1``. Nothing ever forms the kernel
``exp(-eta C)`` (it underflows at eta = 1200). Zero-mass points are dropped before solving and
re-inserted as zero rows/columns of the returned plan.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.device import versions
from workbench.errors import InputError
from workbench.physics.ot.metrics import plan_metrics
from workbench.result import Result

#: Largest n*m the dense solvers accept (a float64 plan of this size is 400 MB).
MAX_ENTRIES = 50_000_000


@dataclass
class Prepared:
    """A problem reduced to its positive-mass support, as float64 torch tensors."""

    a: Any  # torch (n,)
    b: Any  # torch (m,)
    la: Any  # log a
    lb: Any  # log b
    Z: Any  # -eta * C, (n, m)
    Zt: Any  # its transpose, contiguous (m, n)
    eta: float
    ia: np.ndarray  # kept row indices in the full problem
    ib: np.ndarray
    n_full: int
    m_full: int
    device: str

    @property
    def n(self) -> int:
        return int(self.a.shape[0])

    @property
    def m(self) -> int:
        return int(self.b.shape[0])


def prepare(problem: Any, reg: float, device: str = "cpu", transpose: bool = True) -> Prepared:
    """Drop zero masses, move to torch float64 on ``device`` and precompute ``-eta C``."""
    import torch

    if not (reg > 0 and math.isfinite(reg)):
        raise InputError(f"reg must be a positive finite number, got {reg}")
    a = np.asarray(problem.a, dtype=np.float64)
    b = np.asarray(problem.b, dtype=np.float64)
    C = np.asarray(problem.C, dtype=np.float64)
    if C.shape != (a.size, b.size):
        raise InputError(f"cost matrix has shape {C.shape}, expected {(a.size, b.size)}")
    if a.size * b.size > MAX_ENTRIES:
        raise InputError(f"problem too large: {a.size}x{b.size} exceeds {MAX_ENTRIES:,} entries")
    ia = np.flatnonzero(a > 0)
    ib = np.flatnonzero(b > 0)
    if ia.size == 0 or ib.size == 0:
        raise InputError("a measure has no positive mass")
    eta = 1.0 / reg
    dev = torch.device(device)
    at = torch.as_tensor(a[ia], dtype=torch.float64, device=dev)
    bt = torch.as_tensor(b[ib], dtype=torch.float64, device=dev)
    Ct = torch.as_tensor(np.ascontiguousarray(C[np.ix_(ia, ib)]), dtype=torch.float64, device=dev)
    Z = Ct.mul_(-eta)
    Zt = Z.t().contiguous() if transpose else None
    return Prepared(
        a=at,
        b=bt,
        la=torch.log(at),
        lb=torch.log(bt),
        Z=Z,
        Zt=Zt,
        eta=eta,
        ia=ia,
        ib=ib,
        n_full=a.size,
        m_full=b.size,
        device=str(dev),
    )


#: exp() of arguments below this is replaced by exp(FLOOR) ~ 1e-304: harmless for every sum in
#: float64 and it keeps exp on its fast path (underflowing arguments are ~5x slower on x86).
FLOOR = -700.0


def lse_rows(Z: Any, shift: Any) -> Any:
    """log sum_j exp(Z_ij + shift_j), stabilised by the row maximum (one temporary)."""
    W = Z + shift[None, :]
    mx = W.amax(dim=1, keepdim=True)
    W -= mx
    W.clamp_(min=FLOOR)
    W.exp_()
    return W.sum(dim=1).log_() + mx[:, 0]


def sinkhorn_x(prep: Prepared, beta: Any) -> Any:
    """Exact row update: alpha such that the row sums of P equal a."""
    return prep.la + 1.0 - lse_rows(prep.Z, beta)


def sinkhorn_y(prep: Prepared, alpha: Any) -> Any:
    """Exact column update: beta such that the column sums of P equal b."""
    return prep.lb + 1.0 - lse_rows(prep.Zt, alpha)


def log_plan(prep: Prepared, alpha: Any, beta: Any) -> Any:
    """log P = alpha (+) beta - eta C - 1, as a new (n, m) tensor."""
    out = prep.Z + alpha[:, None]
    out += beta[None, :]
    out -= 1.0
    return out


@dataclass
class State:
    """The plan of the current potentials and what follows from it."""

    P: Any
    rows: Any
    cols: Any
    e: float
    f: float  # dual objective in units of the normalised cost (f, not eta*f)


def evaluate_state(prep: Prepared, alpha: Any, beta: Any) -> State:
    """Form P (one exp of log P), its marginals, the L1 marginal error and the dual objective."""
    P = log_plan(prep, alpha, beta)
    P.clamp_(min=FLOOR)
    P.exp_()
    rows = P.sum(dim=1)
    cols = P.sum(dim=0)
    e = float((rows - prep.a).abs().sum() + (cols - prep.b).abs().sum())
    total = float(rows.sum())
    f = (-total + float(prep.a @ alpha) + float(prep.b @ beta)) / prep.eta
    return State(P=P, rows=rows, cols=cols, e=e, f=f)


def fix_gauge(alpha: Any, beta: Any, a: Any, b: Any) -> tuple[Any, Any]:
    """Shift (x + t, y - t) so that <a, x> = <b, y>."""
    t = 0.5 * (float(b @ beta) - float(a @ alpha))
    return alpha + t, beta - t


def full_plan(prep: Prepared, alpha: Any, beta: Any) -> np.ndarray:
    """The plan on the full support, zero rows/columns for zero masses."""
    import torch

    P = torch.exp(log_plan(prep, alpha, beta)).cpu().numpy()
    if prep.n == prep.n_full and prep.m == prep.m_full:
        return P
    out = np.zeros((prep.n_full, prep.m_full))
    out[np.ix_(prep.ia, prep.ib)] = P
    return out


def extend_potentials(
    problem: Any, ia: np.ndarray, ib: np.ndarray, xs: np.ndarray, ys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Potentials on the support (``xs`` on rows ``ia``, ``ys`` on columns ``ib``) extended to
    every point: a zero-mass point gets the c-transform value min_j (C_ij - y_j) (resp.
    min_i (C_ij - x_i)), the potential the exact dual would give it."""
    n_full, m_full = np.shape(problem.C)
    if ia.size == n_full and ib.size == m_full:
        return xs, ys
    C = np.asarray(problem.C, dtype=np.float64)
    x, y = np.empty(n_full), np.empty(m_full)
    x[ia], y[ib] = xs, ys
    ra, rb = np.setdiff1d(np.arange(n_full), ia), np.setdiff1d(np.arange(m_full), ib)
    if ra.size:
        x[ra] = np.min(C[np.ix_(ra, ib)] - ys[None, :], axis=1)
    if rb.size:
        y[rb] = np.min(C[np.ix_(ia, rb)] - xs[:, None], axis=0)
    return x, y


def full_potentials(
    prep: Prepared, problem: Any, alpha: Any, beta: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Potentials (x, y) in normalised-cost units, gauge-fixed, on the full support
    (:func:`extend_potentials`)."""
    alpha, beta = fix_gauge(alpha, beta, prep.a, prep.b)
    xs = alpha.cpu().numpy() / prep.eta
    ys = beta.cpu().numpy() / prep.eta
    return extend_potentials(problem, prep.ia, prep.ib, xs, ys)


def decide_status(e: float, tol: float, cancelled: bool) -> str:
    """Status from the returned plan's marginal error, never from an internal flag."""
    if math.isfinite(e) and e <= tol:
        return "converged"
    if not math.isfinite(e):
        return "failed"
    return "cancelled" if cancelled else "max_iter"


def status_message(
    status: str, e: float, tol: float, step: int, reason: str | None, dtype: str = "float64"
) -> str:
    """The one-line message of an OT result. ``reason`` (SNS: converged, budget, stagnation,
    cancelled, non_finite) names why a run stopped short of ``tol``; None for Sinkhorn."""
    cap = f"stopped at the iteration cap ({step}); marginal error {e:.2e} > tol {tol:.1e}"
    if status == "converged":
        return f"marginal error {e:.2e} <= tol {tol:.1e} after {step} iterations"
    if status == "max_iter" and reason == "converged":
        # the iterate met tol, the plan rebuilt from its gauge-fixed potentials does not:
        # rounding of eta * C in exp at large eta (about eta * 1e-16 per entry)
        return (
            f"rounding floor: the iterate met tol {tol:.1e} after {step} iterations, the plan "
            f"rebuilt from its potentials has marginal error {e:.2e} (the {dtype} floor at this "
            "eta; ask for a larger tol)"
        )
    if status == "max_iter":
        return cap if reason is None else "budget: " + cap
    if status == "cancelled":
        return f"cancelled after {step} iterations; marginal error {e:.2e}"
    if reason == "stagnation":
        return (
            f"stagnation: marginal error stuck at {e:.2e} > tol {tol:.1e} after {step} iterations "
            f"(the {dtype} floor at this eta, or an ill-posed problem)"
        )
    return "non-finite marginal error (numerical breakdown)"


def plan_result(
    problem: Any,
    P: np.ndarray,
    *,
    reg: float,
    tol: float,
    step: int,
    dual_objective: float,
    hist: dict[str, list[float]],
    extras: dict[str, Any],
    clock: Timer,
    solver: str,
    device: str,
    reason: str | None = None,
    cancelled: bool = False,
    metrics: dict[str, float] | None = None,
    meta: dict[str, Any] | None = None,
    dtype: str = "float64",
) -> Result:
    """The Result of an OT solve from the plan it returns (on the full support).

    Metrics are those of the plan itself (:func:`~workbench.physics.ot.metrics.plan_metrics`)
    plus ``dual_objective``, the iterations and the solver's counters (``metrics``). The status
    is decided from the plan's marginal error (:func:`decide_status`); an SNS run that stopped
    on stagnation (``reason``) short of ``tol`` is ``failed``, not ``max_iter``. ``meta`` adds
    solver-specific entries (a backend) to the common ones.
    """
    m = plan_metrics(problem, P, reg)
    m["dual_objective"] = dual_objective
    m["iterations"] = float(step)
    m.update(metrics or {})
    status = decide_status(m["marginal_error"], tol, cancelled or reason == "cancelled")
    if status == "max_iter" and reason == "stagnation":
        status = "failed"
    wall = clock()
    m["wall_s"] = wall
    md: dict[str, Any] = {
        "solver": solver,
        "reg": reg,
        "eta": 1.0 / reg,
        "tol": tol,
        "tol_norm": "L1 marginal error ||P1-a||_1 + ||P^T1-b||_1",
        "device": device,
        "wall_s": wall,
        "dtype": dtype,
    }
    if reason is not None:
        md["stop_reason"] = reason
    md["potentials_units"] = "normalised cost (multiply by cost_scale for user units)"
    md.update(meta or {})
    md["versions"] = versions()
    return Result(
        output=P,
        kind="plan",
        status=status,
        iterations=int(step),
        metrics={k: float(v) for k, v in m.items()},
        history=hist,
        extras=extras,
        meta=md,
        message=status_message(status, m["marginal_error"], tol, step, reason, dtype),
    )


class Timer:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.t0


def set_torch_precision(device: str) -> None:
    """No TF32 on CUDA: the solvers are float64, but keep matmuls exact anyway."""
    import torch

    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
