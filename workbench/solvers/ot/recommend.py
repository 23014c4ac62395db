"""Which solver to use: a short timed probe of both, and the one predicted to finish first.

Measured, not guessed (issue 20). Two probes run on the problem at hand, on the device the
solvers will use:

1. **Sinkhorn**: ``probe`` (50) iterations of the workbench's Sinkhorn (on the CPU its NumPy
   scaling path, the one ``sinkhorn`` runs there), with the error
   e (L1 marginal error) recorded every 5. A geometric model ``e_k ~ rho^k`` fitted on the last
   window, or a power law ``e_k ~ k^-p`` when the per-window factors still grow (sublinear
   decay), predicts the iterations ``N_S`` to reach ``tol``; the probe's own time per iteration
   ``t_S`` (log-domain path: its error checks discounted to the solver's one in 10) gives
   ``T_S = N_S t_S + t_0``, ``t_0`` the probe's time outside its iterations (setup, kernel
   build, final plan), which the full solve pays once too.
2. **SNS**: Sinkhorn–Newton–Sparse at its defaults to the coarse tolerance ``max(tol, coarse)``
   (1e-4), capped at ``min(budget_s, T_S)`` seconds. Its last stage is then in Newton's fast
   local regime, where the error is at least squared per step; the remaining
   ``ceil(log2(log tol / log coarse)) + 1`` steps are priced at the probe's slowest Newton step:
   ``T_N = T_probe + steps * t_step``.

The recommendation is the smaller predicted time. When Sinkhorn meets ``tol`` inside its probe it
is recommended outright; when the SNS probe is cut off (it has not even reached ``coarse`` by the
time Sinkhorn is predicted to finish) Sinkhorn is recommended; when both are cut off by the budget
the iteration rule of spec ``ot.md`` §4.3.10 decides (SNS above ``threshold`` predicted Sinkhorn
iterations) and the reason says that the times were not measured.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

EVERY = 5  # probe error check interval (the solver checks every 10)


@dataclass(frozen=True)
class Recommendation:
    solver: str  # "sinkhorn" or "sinkhorn_newton"
    predicted_iterations: float  # Sinkhorn's; inf when the probe shows no decrease
    rate: float  # fitted geometric factor per iteration
    probe_error: float  # e after the Sinkhorn probe
    probe_iterations: int
    reason: str
    errors: tuple[float, ...] = ()
    predicted_sinkhorn_s: float = math.nan
    predicted_sns_s: float = math.nan
    probe_s: float = math.nan  # wall time of both probes
    sns_probe_error: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_iterations(ks: np.ndarray, e: np.ndarray, tol: float) -> tuple[float, float, str]:
    """Predicted Sinkhorn iterations to reach ``tol`` from errors ``e`` at iterations ``ks``.

    Returns ``(iterations, rate, model)``; ``inf`` when the error does not decrease.
    """
    if e[-1] <= tol:
        return float(ks[int(np.argmax(e <= tol))]), math.nan, "reached"
    w = max(1, len(e) // 5)
    lo = len(e) - 1 - w
    rate = (
        float((e[-1] / e[lo]) ** (1.0 / (ks[-1] - ks[lo])))
        if e[lo] > 0 and ks[-1] > ks[lo]
        else math.nan
    )
    ratios = [e[i + w] / e[i] for i in range(0, len(e) - w, w) if e[i] > 0]
    if len(ratios) >= 3 and ratios[-1] - ratios[-3] > 0.03:
        half = len(e) // 2
        p = -np.polyfit(np.log(ks[half:]), np.log(e[half:]), 1)[0]
        pred = ks[-1] * (e[-1] / tol) ** (1.0 / p) if p > 0 else math.inf
        return float(pred), rate, f"power law k^-{p:.2f}"
    if not (rate < 1.0):
        return math.inf, rate, "geometric"
    return float(ks[-1] + math.log(tol / e[-1]) / math.log(rate)), rate, "geometric"


def recommend(
    problem: Any,
    reg: float,
    tol: float = 1e-8,
    probe: int = 50,
    threshold: float = 2000.0,
    device: str = "cpu",
    budget_s: float = 10.0,
    coarse: float = 1e-4,
) -> Recommendation:
    """Probe both solvers on ``problem`` and recommend the one predicted to reach ``tol`` first.

    Parameters
    ----------
    problem : OTProblem
    reg : float
        Entropic regularisation (1/eta) on the normalised cost.
    tol : float
        Target L1 marginal error.
    probe : int
        Sinkhorn probe iterations.
    threshold : float
        Fallback rule when neither time could be measured within ``budget_s``.
    budget_s : float
        Cap on the SNS probe (seconds).
    coarse : float
        Tolerance of the SNS probe.
    """
    from workbench.solvers.ot import sinkhorn, sinkhorn_newton

    t_all = time.perf_counter()
    sk = sinkhorn.solve(
        problem,
        sinkhorn.Params(reg=reg, tol=tol, max_iter=probe, check_every=EVERY, device=device),
    )
    h = sk.history
    ks = np.asarray(h["step"], dtype=float)
    e = np.asarray(h["e"], dtype=float)
    ts = np.asarray(h["time"], dtype=float)
    # seconds per iteration in the solver's own loop: the probe checks every EVERY iterations
    # (one extra pass each, against two passes per iteration); the solver checks every 10
    span = ks[-1] - ks[0] if ks.size > 1 else 0.0
    t_it = (ts[-1] - ts[0]) / span if span > 0 else (ts[-1] / max(ks[-1], 1.0))
    if sk.meta.get("backend") != "numpy":
        # the log-domain probe's checks are passes of their own (the NumPy scaling path's are
        # free: they reuse the next row update's K v)
        t_it *= (2.0 + 1.0 / 10) / (2.0 + 1.0 / EVERY)
    # the solver's fixed cost (its setup, kernel build and final plan), as the probe paid it
    t_fixed = max(0.0, float(sk.metrics.get("wall_s", 0.0)) - float(ks[-1]) * t_it)
    n_s, rate, model = fit_iterations(ks, e, tol)
    errors = tuple(float(v) for v in e)
    if model == "reached":
        return Recommendation(
            "sinkhorn", n_s, rate, float(e[-1]), int(ks[-1]),
            f"Sinkhorn reached {tol:g} within the {probe}-iteration probe ({n_s:.0f} iterations)",
            errors, n_s * t_it + t_fixed, math.nan, time.perf_counter() - t_all,
        )  # fmt: skip
    t_s = n_s * t_it + t_fixed
    cap = min(budget_s, t_s)
    t0 = time.perf_counter()
    from workbench.progress import Progress

    prog = Progress(keep=1)
    prog._callback = lambda step, total, m: (
        prog.cancel() if time.perf_counter() - t0 > cap else None
    )
    sn = sinkhorn_newton.solve(
        problem,
        sinkhorn_newton.Params(reg=reg, tol=max(tol, coarse), device=device),
        prog,
    )
    t_probe = time.perf_counter() - t0
    e_sn = float(sn.metrics.get("marginal_error", math.nan))
    probe_s = time.perf_counter() - t_all
    if sn.status == "converged":
        hh = sn.history
        tt = np.diff(np.asarray([0.0] + list(hh["time"])))
        newton = [d for d, kind in zip(tt, hh["stage"], strict=True) if kind == 1]
        t_step = max(newton[-3:]) if newton else (tt.max() if tt.size else 0.0)
        steps = 0 if e_sn <= tol else math.ceil(math.log2(math.log(tol) / math.log(coarse))) + 1
        t_n = t_probe + steps * t_step
        solver = "sinkhorn_newton" if t_n < t_s else "sinkhorn"
        reason = (
            f"predicted time to {tol:g}: Sinkhorn {t_s:.3g} s ({n_s:,.0f} iterations, {model}, "
            f"{t_it * 1e3:.3g} ms each) against SNS {t_n:.3g} s (probe to {max(tol, coarse):g} "
            f"in {t_probe:.3g} s + {steps} Newton steps of {t_step * 1e3:.3g} ms)"
        )
        return Recommendation(solver, n_s, rate, float(e[-1]), int(ks[-1]), reason, errors,
                              t_s, t_n, probe_s, e_sn)  # fmt: skip
    if cap >= t_s:
        reason = (
            f"Sinkhorn is predicted to reach {tol:g} in {t_s:.3g} s ({n_s:,.0f} iterations, "
            f"{model}); SNS had not reached {coarse:g} by then (e {e_sn:.1e})"
        )
        return Recommendation("sinkhorn", n_s, rate, float(e[-1]), int(ks[-1]), reason, errors,
                              t_s, math.inf, probe_s, e_sn)  # fmt: skip
    solver = "sinkhorn_newton" if n_s > threshold else "sinkhorn"
    reason = (
        f"times not measured: SNS did not reach {coarse:g} within the {budget_s:g} s probe "
        f"budget and Sinkhorn is predicted to need {t_s:.3g} s ({n_s:,.0f} iterations); "
        f"iteration rule: {'>' if n_s > threshold else '<='} {threshold:,.0f}"
    )
    return Recommendation(solver, n_s, rate, float(e[-1]), int(ks[-1]), reason, errors,
                          t_s, math.nan, probe_s, e_sn)  # fmt: skip
