"""Sinkhorn–Newton–Sparse on small dense problems: the globalised algorithm of
:func:`workbench.solvers.ot.sinkhorn_newton.run` on whole NumPy arrays, a few calls per step.

Why a second path: below a few tens of thousands of entries an SNS step is dominated by the
general path's fixed costs -- torch dispatch, the blockwise passes' Python loop, the sparse
pattern's construction, the CG/direct bookkeeping -- not by arithmetic: measured 8-90 ms for
problems where RegOT's C++ SSNS takes 1-13 ms (issue 17). Here every O(nm) quantity is one
dense ``(n, m)`` float64 array; a Newton step is about forty NumPy/LAPACK calls, a Sinkhorn
sweep about twenty.

The method is the same, step for step (see :mod:`~workbench.solvers.ot.sinkhorn_newton` for the
maths and the globalisation):

* the eta-continuation :func:`~workbench.solvers.ot.sinkhorn_newton.schedule` with stage exit
  ``e <= max(tol, stage_tol)``, a warm-up of ``warmup`` Sinkhorn sweeps at the first stage and one
  sweep at the start of every later stage; the sweeps run in the scaling form with log-domain
  absorption of :mod:`~workbench.solvers.ot._np_sinkhorn` (two mat-vecs each, the error free);
* per Newton step, with ``P = exp(eta_s (x (+) y - C) - 1)``: the kept pattern ``P_s`` is the
  ``k = ceil(kappa max(n, m))`` largest entries (one ``np.partition``), the gauge-fixed system
  ``(M + mu diag M) dz = grad f`` is solved through its Schur complement on the smaller side,
  formed densely (one BLAS product) and factored by Cholesky
  (``S(mu) = (1 + mu) D_c - P_s^T D_r^-1 P_s / (1 + mu)``, symmetric positive definite after the
  gauge fix; a failed factorisation raises the shift), always the direct route: at these sizes a
  k^3/3 Cholesky costs less than one CG iteration's Python overhead;
* the trust region and Levenberg–Marquardt shift (:func:`~workbench.solvers.ot.sinkhorn_newton.
  next_shift`), the Armijo search on ``f`` over steps 1, 1/2, 1/4, 1/8, 1/16 with the increase
  ``s g.dz - (sum P expm1(s D) - s <P, D>)`` (``D = dx (+) dy``; no cancellation between two large
  values of ``f``), an accepted full step's plan ``P (1 + expm1(D))`` reused as the next plan;
* adaptive ``kappa`` (doubled when a full step does not halve ``e``, up to
  :func:`~workbench.solvers.ot.sinkhorn_newton.kept_budget`), Sinkhorn blocks when no ascent step
  exists or a full unshifted step at the density cap is slow, stagnation after ``patience``
  iterations without a 10% decrease (status ``failed``), the iteration cap (``max_iter``).

The result, history, counters and status follow the general path's contract field for field
(``tests/ot/test_sns_global.py`` checks both paths agree).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.linalg.lapack import dpotrf, dpotrs

from workbench.errors import InputError
from workbench.progress import Progress, ensure
from workbench.result import Result
from workbench.solvers.ot import _core
from workbench.solvers.ot._np_sinkhorn import TAU, lse_rows
from workbench.solvers.ot._sns_common import (
    ARMIJO_C,
    MU_DROP,
    MU_MAX,
    RADIUS,
    RADIUS_MAX,
    RADIUS_MIN,
    kept_budget,
    next_shift,
    schedule,
)

#: Largest n*m solved here (the rest runs the general, blockwise path). Chosen on validation
#: problems only (random and point-cloud costs of seeds 101-102, n = m = 100-400, eta 1e2-1e5;
#: ``benchmarks/ot_dense_threshold.py``, table in ``benchmarks/results/ot_dense_threshold.md``):
#: CPU time dense / general 0.21-0.33 at n = 100 and 0.43-0.76 at n = 200 (all 32 problems),
#: 0.57-1.30 at n = 300 (3 of 16 slower, at small eta where the general path's CG is cheap)
#: and up to 1.9 at n = 400, where the dense O(n m min(n, m)) Schur product dominates.
LEAN_MAX = 40_000
STEPS = (1.0, 0.5, 0.25, 0.125, 0.0625)
# the ufuncs' reductions, called directly: ndarray.sum/max/min add a Python-level wrapper
# (~1 us each, a few per step on problems whose whole step takes ~40 us)
_sum, _max, _min = np.add.reduce, np.maximum.reduce, np.minimum.reduce
#: Largest step increase of a log-plan entry evaluated from P itself (see the line search).
EXP_SAFE = 30.0


def applies(problem: Any, params: Any) -> bool:
    """True for a CPU (or ``auto``) float64 solve of a problem with at most LEAN_MAX entries."""
    return (
        str(getattr(params, "device", "auto")) in ("auto", "cpu")
        and str(getattr(params, "dtype", "float64")) == "float64"
        and 0 < int(np.size(problem.C)) <= LEAN_MAX
    )


def _chol_solve(S: np.ndarray, rhs: np.ndarray) -> np.ndarray | None:
    """S^-1 rhs by LAPACK's Cholesky (potrf/potrs called directly: scipy's wrappers cost more
    than the factorisation at these sizes); None when S is not numerically positive definite."""
    c, info = dpotrf(S, lower=1, clean=0, overwrite_a=1)
    if info != 0:
        return None
    x, info = dpotrs(c, rhs, lower=1)
    return x if info == 0 else None


def _schur_solve(rows, cols, B, G, elim_x, g, n, mu, out) -> bool:
    """Write dz with (M + mu diag M) dz = g into ``out`` through the dense Schur complement;
    False when the complement is not numerically positive definite.

    ``cols`` are the column sums without the dropped last one (gauge fix), ``B`` the kept
    pattern without its last column, ``G`` the Gram matrix of the eliminated side and ``g`` the
    gradient without its last entry. A non-finite solution is left in ``out`` (the caller's
    step-size test rejects it).
    """
    s = 1.0 + mu
    Dr, Dc = (rows, cols) if mu == 0.0 else (rows * s, cols * s)
    gx, gy = g[:n], g[n:]
    ox, oy = out[:n], out[n:]
    if elim_x and Dc.size == 0:
        np.divide(gx, Dr, out=ox)
        return True
    S = G * (-1.0 / s)
    d = S.reshape(-1)[:: S.shape[0] + 1]  # a writable view of the diagonal (S is contiguous)
    if elim_x:
        d += Dc
        y = _chol_solve(S, gy - B.T @ (gx / Dr))
        if y is None:
            return False
        np.subtract(gx, B @ y, out=ox)
        ox /= Dr
        oy[:] = y
    else:
        d += Dr
        x = _chol_solve(S, gx - B @ (gy / Dc))
        if x is None:
            return False
        np.subtract(gy, B.T @ x, out=oy)
        oy /= Dc
        ox[:] = x
    return True


def _log_half_step(Zs: np.ndarray, own: np.ndarray, other: np.ndarray, scale: np.ndarray,
                   log_marg: np.ndarray) -> None:  # fmt: skip
    """One Sinkhorn half-step in the log domain, in place: the other side absorbs its scaling
    (``other += log scale``), then ``own = log_marg + 1 - log sum_j exp(Zs_ij + other_j)`` makes
    this side's marginals exact. ``Zs`` is ``-eta C`` for the rows, its transpose for the
    columns."""
    other += np.log(scale)
    own[:] = log_marg + 1.0 - lse_rows(Zs, other)


#: The per-step history columns, in the order of a recorded row.
HISTORY = ("step", "stage", "level", "eta", "e", "f", "df", "alpha", "kappa", "density", "mu",
           "cg_iters", "passes", "time")  # fmt: skip


def solve(
    problem: Any, params: Any, progress: Progress | None = None, *, init: Any = None
) -> Result:
    """SNS on ``problem`` with dense NumPy arrays; the contract of ``sinkhorn_newton.solve``.

    Why the bookkeeping below looks as it does: at n ~ 30 one step is ~40 NumPy calls of ~1 us,
    so every call counts. The potentials live in one vector ``z = (alpha, beta)`` and the
    marginals in one ``rc = (rows, cols)``, so that ``<a, alpha> + <b, beta> = (a, b) . z`` and
    the gradient ``g = (a, b) - rc`` (whose L1 norm is the marginal error e) are one call each;
    history rows are tuples, transposed once at the end; progress is reported when
    :meth:`~workbench.progress.Progress.due` (at most every 20 ms) while the cancel flag is read
    every step.
    """
    clock = _core.Timer()
    listened = progress is not None  # no Progress given: nobody reads reports, none is made
    progress = ensure(progress)
    p = params
    reg = p.reg
    if not (reg > 0 and math.isfinite(reg)):
        raise InputError(f"reg must be a positive finite number, got {reg}")
    a_full = np.asarray(problem.a, dtype=np.float64)
    b_full = np.asarray(problem.b, dtype=np.float64)
    C_full = np.asarray(problem.C, dtype=np.float64)
    if C_full.shape != (a_full.size, b_full.size):
        raise InputError(
            f"cost matrix has shape {C_full.shape}, expected {(a_full.size, b_full.size)}"
        )
    ia, ib = np.flatnonzero(a_full > 0), np.flatnonzero(b_full > 0)
    if ia.size == 0 or ib.size == 0:
        raise InputError("a measure has no positive mass")
    eta = 1.0 / reg
    full = ia.size == a_full.size and ib.size == b_full.size
    negC = -(C_full if full else C_full[np.ix_(ia, ib)])
    a, b = a_full[ia], b_full[ib]
    la, lb = np.log(a), np.log(b)
    n, m = a.size, b.size
    nm = n * m
    m1 = m - 1
    tol = float(p.tol)
    max_iter = int(p.max_iter)
    etas = [eta] if init is not None else schedule(eta, float(negC.max() - negC.min()), p)
    max_kept = kept_budget(n, m, p)
    elim_x = n >= m - 1
    ab = np.concatenate([a, b])
    z = np.zeros(n + m)  # the potentials (alpha, beta), eta_s units; alpha, beta are views
    alpha, beta = z[:n], z[n:]
    rc = np.empty(n + m)  # the current plan's marginals (rows, cols), views below
    rows, cols = rc[:n], rc[n:]
    g = np.empty(n + m)  # (a, b) - rc: the dual gradient; its L1 norm is e
    gabs = np.empty(n + m)
    dzf = np.zeros(n + m)  # a Newton direction; its last entry stays 0 (the gauge fix)
    dz, dal, dbe = dzf[:-1], dzf[:n], dzf[n:]
    uv = np.ones(n + m)  # Sinkhorn scalings (u, v)
    u, v = uv[:n], uv[n:]
    luv = np.empty(n + m)
    rec: list[tuple] = []
    stats = {
        "sinkhorn_iterations": 0, "newton_iterations": 0, "sinkhorn_blocks": 0,
        "line_search_trials": 0, "cg_iterations": 0, "direct_solves": 0, "cg_fallbacks": 0,
        "lm_shifts": 0, "stages": len(etas),
    }  # fmt: skip
    events: list[str] = []
    passes = 0
    step = 0
    reported = 0
    kappa = float(p.kappa)
    density = 0.0
    mu, radius = 0.0, RADIUS
    level = 0
    eta_s = etas[0]
    best = (math.inf, 0)
    pattern = None
    reason = "budget"
    cancelled = False
    if init is not None:
        x0, y0 = (np.asarray(v_, dtype=np.float64) for v_ in init)
        if x0.shape != (a_full.size,) or y0.shape != (b_full.size,):
            raise ValueError("warm start potentials have the wrong shape")
        alpha[:] = x0[ia] * eta
        beta[:] = y0[ib] * eta
    Z = negC * eta_s
    Zm = Z - 1.0  # log P = Zm + alpha (+) beta
    e, f = math.inf, math.nan

    def measure(f_extra: float = 0.0) -> None:
        """g, e and f (eta_s units) from the marginals in ``rc`` and the potentials in ``z``
        (plus ``f_extra``: the scalings' share of f in a Sinkhorn sweep)."""
        nonlocal e, f
        np.subtract(ab, rc, out=g)
        e = float(_sum(np.abs(g, out=gabs)))
        f = float(ab @ z) + f_extra - float(_sum(rows))

    def report(stage: int, **extra: float) -> bool:
        """Report the step when due (Progress.due); True when the run was cancelled."""
        nonlocal reported, cancelled
        if listened and progress.due(step):
            reported = step
            progress(step, max_iter, e=e, stage=stage, level=level, **extra)
        if progress.cancelled:
            cancelled = True
        return cancelled

    def kernel() -> np.ndarray:
        """P at the current potentials (one exp pass)."""
        nonlocal passes
        K = Zm + alpha[:, None]
        K += beta[None, :]
        np.exp(K, out=K)
        passes += 1
        return K

    def plan_state() -> np.ndarray:
        """P, its marginals (into ``rc``), g, e and f at (alpha, beta)."""
        P = kernel()
        _sum(P, axis=1, out=rows)
        _sum(P, axis=0, out=cols)
        measure()
        return P

    def sweeps(count: int, tol_s: float) -> bool:
        """Up to ``count`` Sinkhorn sweeps (scaling form, absorbed at the end); True when the
        run must stop or the stage is done (as the general path's ``sinkhorn_steps``)."""
        nonlocal step, passes
        if step >= max_iter:
            return True
        K = kernel()
        uv.fill(1.0)
        Kv = _sum(K, axis=1)
        done = False
        for _ in range(count):
            if step >= max_iter:
                break
            kv_pos = _min(Kv) > 0.0
            if kv_pos:
                np.divide(a, Kv, out=u)
            if not kv_pos or _max(u) > TAU or _min(u) < 1.0 / TAU:
                # underflowed rows or a scaling out of range: a log-domain row half-step
                _log_half_step(Z, alpha, beta, v, la)
                K = kernel()
                passes += 1
                uv.fill(1.0)
            KTu = u @ K
            ktu_pos = _min(KTu) > 0.0
            if ktu_pos:
                np.divide(b, KTu, out=v)
            if not ktu_pos or _max(v) > TAU or _min(v) < 1.0 / TAU:
                _log_half_step(Z.T, beta, alpha, u, lb)
                K = kernel()
                passes += 1
                uv.fill(1.0)
                KTu = _sum(K, axis=0)
            Kv = K @ v
            passes += 2
            step += 1
            stats["sinkhorn_iterations"] += 1
            np.multiply(u, Kv, out=rows)
            np.multiply(v, KTu, out=cols)
            measure(float(ab @ np.log(uv, out=luv)))
            rec.append((step, 0, level, eta_s, e, f / eta_s, 0.0, 0.0, kappa, density, mu, 0,
                        passes, clock()))  # fmt: skip
            if report(0):
                done = True
                break
            if not math.isfinite(e) or e <= tol_s:
                done = True
                break
        np.add(z, np.log(uv, out=luv), out=z)  # absorb the scalings
        return done or step >= max_iter

    for level, eta_s in enumerate(etas):
        last = level == len(etas) - 1
        tol_s = tol if last else max(tol, p.stage_tol)
        if level > 0:
            z *= eta_s / etas[level - 1]
            Z = negC * eta_s
            Zm = Z - 1.0
            kappa = max(float(p.kappa), kappa / 2)
            mu, radius = 0.0, RADIUS
            events.append(f"step {step}: stage {level} at eta {eta_s:.4g}")
            if sweeps(1, tol_s):
                if cancelled or step >= max_iter or not math.isfinite(e):
                    break
                if not last:
                    continue
        elif init is None and p.warmup > 0:
            if sweeps(p.warmup, tol_s):
                if cancelled or step >= max_iter or not math.isfinite(e):
                    break
        P = plan_state()
        stop = False
        failed_rounds = 0
        while e > tol_s and step < max_iter:
            e_prev = e
            k = min(math.ceil(kappa * max(n, m)), max_kept)
            at_cap = k >= max_kept
            density = k / nm
            # the top-k among the positive entries: underflowed zeros (often most of P at large
            # eta) are ties that make introselect ~10x slower, and are never kept anyway
            npos = np.count_nonzero(P)
            if k >= npos:
                Ps = P
            else:
                pos = P.reshape(-1) if npos == nm else P[P > 0.0]
                thr = np.partition(pos, npos - k)[npos - k]
                Ps = np.where(P >= thr, P, 0.0)
            B = Ps[:, :m1]
            G = (B.T / rows) @ B if elim_x else (B / cols[:m1]) @ B.T
            gn = g[:-1]  # the gradient without the gauge-fixed last column
            scale = math.nan  # max |D^-1 g|, for the first shift only (next_shift)
            accepted, df, size, g_dot = 0.0, 0.0, math.inf, math.nan
            too_long: list[tuple[float, float]] = []
            lin = 0.0
            E = D = None
            while True:
                ok = _schur_solve(rows, cols[:m1], B, G, elim_x, gn, n, mu, dz)
                stats["direct_solves"] += 1
                g_dot = float(gn @ dz) if ok else math.nan
                size = float(_max(np.abs(dz))) if ok else math.inf
                if not (math.isfinite(size) and g_dot > 0 and size <= radius):
                    if math.isfinite(size) and g_dot > 0:
                        too_long.append((mu, size))
                    if mu == 0.0 and math.isnan(scale):
                        scale = float(np.abs(gn / rc[:-1]).max())
                    mu = next_shift(mu, too_long, radius, scale)
                    stats["lm_shifts"] += 1
                    if mu > MU_MAX:
                        break
                    continue
                D = np.add.outer(dal, dbe)
                lin = float(rc @ dzf)
                d_max = float(_max(dal) + _max(dbe))
                logP = None
                for s_ in STEPS:
                    sD = D * s_ if s_ != 1.0 else D
                    if s_ * d_max <= EXP_SAFE:
                        # q = sum P (e^{sD} - 1 - sD) from P and expm1: no cancellation between
                        # the two sums; an entry of P that underflowed (< e^-745) stays below
                        # e^(EXP_SAFE - 745) after the step, so dropping it is harmless
                        E = np.expm1(sD)
                        q = float(np.vdot(P, E)) - s_ * lin
                    else:
                        # a large increase can lift underflowed entries to significance: the
                        # new plan from its logarithm (cancellation is irrelevant at this size)
                        E = None
                        if logP is None:
                            logP = Zm + alpha[:, None]
                            logP += beta[None, :]
                        with np.errstate(over="ignore"):  # inf: a rejected trial
                            q = float(np.exp(logP + sD).sum()) - float(rows.sum()) - s_ * lin
                    passes += 1
                    stats["line_search_trials"] += 1
                    inc = s_ * g_dot - q
                    if math.isfinite(q) and inc >= ARMIJO_C * s_ * g_dot:
                        accepted, df = s_, inc
                        break
                if accepted:
                    break
                radius = size / 4
                if radius < RADIUS_MIN:
                    break
                too_long.append((mu, size))
                if mu == 0.0 and math.isnan(scale):
                    scale = float(np.abs(gn / rc[:-1]).max())
                mu = next_shift(mu, too_long, radius, scale)
                stats["lm_shifts"] += 1
                if mu > MU_MAX:
                    break
            if not accepted:
                mu, radius = 0.0, RADIUS
                failed_rounds += 1
                events.append(
                    f"step {step}: no ascent step in the trust region (e {e:.2e}); Sinkhorn block"
                )
                stats["sinkhorn_blocks"] += 1
                e_before = e
                if sweeps(p.sinkhorn_block, tol_s):
                    if cancelled or step >= max_iter or not math.isfinite(e):
                        stop = True
                        break
                    P = plan_state()
                    continue
                P = plan_state()
                if failed_rounds >= 2 and e > 0.9 * e_before:
                    reason, stop = "stagnation", True
                    break
                continue
            pattern = (
                Ps if k < nm else None
            )  # the accepted step's kept pattern (indices at the end)
            mu_used = mu
            if accepted == 1.0:
                z += dzf
            else:
                z += accepted * dzf
            step += 1
            stats["newton_iterations"] += 1
            if accepted == 1.0 and E is not None:
                E *= P
                P += E  # the plan after the full step: P exp(D), from the trial's expm1
                _sum(P, axis=1, out=rows)
                _sum(P, axis=0, out=cols)
                measure()
            else:
                P = plan_state()
            rec.append((step, 1, level, eta_s, e, f / eta_s, df / eta_s, accepted, kappa,
                        density, mu, 0, passes, clock()))  # fmt: skip
            if report(1, alpha=accepted, kappa=kappa, density=density, mu=mu):
                stop = True
                break
            if not math.isfinite(e):
                stop = True
                break
            if accepted == 1.0:
                if mu > 0:
                    radius = min(RADIUS_MAX, 4 * radius)
                mu = 0.0 if mu <= MU_DROP else mu / 4
            else:
                radius = max(RADIUS_MIN, accepted * size)
            if (
                p.adaptive
                and accepted == 1.0
                and e > 0.5 * e_prev
                and at_cap
                and k < nm
                and mu_used == 0.0
            ):
                events.append(f"step {step}: density cap, slow step: Sinkhorn block")
                stats["sinkhorn_blocks"] += 1
                stopped = sweeps(p.sinkhorn_block, tol_s)
                P = plan_state()
                if stopped and (cancelled or step >= max_iter or not math.isfinite(e)):
                    stop = True
                    break
                continue
            if p.adaptive and accepted == 1.0 and e > 0.5 * e_prev and not at_cap:
                events.append(
                    f"step {step}: kappa {kappa:g} -> {2 * kappa:g} (e ratio {e / e_prev:.2g})"
                )
                kappa *= 2
            if last:
                if e < 0.9 * best[0]:
                    best = (e, step)
                elif step - best[1] >= p.patience:
                    reason, stop = "stagnation", True
                    break
        if stop or cancelled or step >= max_iter or not math.isfinite(e):
            break
    if listened and step > reported and not cancelled:
        progress(step, max_iter, e=e, level=level)  # the final step, when it was skipped
    if cancelled:
        reason = "cancelled"
    elif not math.isfinite(e):
        reason = "non_finite"
    elif e <= tol and level == len(etas) - 1:
        reason = "converged"
    elif reason != "stagnation":
        reason = "budget"
    stats["passes"] = passes
    stats["selection_repeats"] = 0
    columns = list(zip(*rec, strict=True)) if rec else [()] * len(HISTORY)
    hist = {k: list(col) for k, col in zip(HISTORY, columns, strict=True)}
    return _finish(problem, p, eta_s, alpha, beta, negC, a, b, ia, ib, step, reason, hist, clock,
                   stats, events, etas, pattern, kappa, density)  # fmt: skip


def _finish(problem, p, eta_s, alpha, beta, negC, a, b, ia, ib, step, reason, hist, clock, stats,
            events, etas, pattern, kappa, density) -> Result:  # fmt: skip
    """The Result of ``sinkhorn.finish_plan`` (the general path's), from NumPy potentials."""
    reg, tol, eta = p.reg, float(p.tol), eta_s
    n_full, m_full = problem.a.size, problem.b.size
    logP = negC * eta + alpha[:, None]
    logP += beta[None, :]
    logP -= 1.0
    Ps = np.exp(logP)
    if ia.size == n_full and ib.size == m_full:
        P = Ps
    else:
        P = np.zeros((n_full, m_full))
        P[np.ix_(ia, ib)] = Ps
    al, be = _core.fix_gauge(alpha, beta, a, b)
    xs, ys = al / eta, be / eta
    x, y = _core.extend_potentials(problem, ia, ib, xs, ys)
    stats = {k: float(v) for k, v in stats.items()}
    stats["final_kappa"] = hist["kappa"][-1] if hist["kappa"] else p.kappa
    stats["final_density"] = hist["density"][-1] if hist["density"] else 0.0
    extras: dict[str, Any] = {"x": x, "y": y, "events": events, "stop_reason": reason, "etas": etas}
    if pattern is not None:
        r_, c_ = np.nonzero(pattern)
        extras["pattern_rows"] = ia[r_].astype(np.int64)
        extras["pattern_cols"] = ib[c_].astype(np.int64)
    return _core.plan_result(
        problem,
        P,
        reg=reg,
        tol=tol,
        step=step,
        # sum P from the plan just formed (zero outside the support): no pass of its own
        dual_objective=float(-P.sum() / eta) + float(np.dot(a, xs) + np.dot(b, ys)),
        hist=hist,
        extras=extras,
        clock=clock,
        solver="sinkhorn_newton",
        device="cpu",
        reason=reason,
        metrics=stats,
        meta={"backend": "numpy-dense"},
    )
