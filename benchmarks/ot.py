"""Optimal-transport benchmark (issues 2, 17, 20; spec ot.md §9): SNS against Sinkhorn and peers.

All solvers run on the same problems in one process with threads pinned to one, and all stop on
the same rule: the L1 marginal error e = ||P1 - a||_1 + ||P^T 1 - b||_1 <= 1e-8 recomputed from
the plan each returns (POT by warm-restarted chunks, RegOT by converting its tolerance; see
``PROTOCOL``). Runs are capped at ``--cap-s`` seconds, the same for every solver; a run that did
not reach 1e-8 says so and gets no ratio. Error-versus-time curves go to
benchmarks/results/ot_curves.json (the OT page) and docs/ot_error_vs_time.png.

    workbench bench ot [--quick] [--check] [--json] [--cap-s 60] [--only random_500,...]
    workbench bench ot --grid ...      # issue 17's eta x n x cost grid

``--quick`` (a few minutes on one core) never writes BENCHMARKS.md; ``--check`` then fails on
correctness only (a solver that should converge did not, a NaN, a missing row), never on time.
Running ``python benchmarks/ot.py`` directly also works: the file removes its own folder from
sys.path so that ``import ot`` finds POT, not this file.
"""

from __future__ import annotations

import os
import sys

# This file is named ot.py: keep its own folder off sys.path so that `import ot` finds POT.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [q for q in sys.path if os.path.abspath(q or os.getcwd()) != _here]
if getattr(sys.modules.get("ot"), "__file__", None) == os.path.abspath(__file__):
    del sys.modules["ot"]

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

TOL = 1e-8
#: POT runs in chunks of iterations, warm-restarted from its own scalings; the chunks grow by
#: this factor (each restart recomputes POT's kernel: one extra pass, removed from the timing
#: by a final uninterrupted run of exactly the iterations found).
CHUNK_GROWTH = 1.25
#: RegOT stops on its own ||grad f||_2: it starts at tol/sqrt(n+m) (spec §5) and is divided by
#: 10 until the plan it returns meets e <= TOL in L1 (the time reported is that run's).
REGOT_TOL_LADDER = (1.0, 0.1, 0.01, 0.001)
REGOT_SPARSE_REASON = (
    "RegOT `sinkhorn_sparse_newton` is left out. It starts Newton from a zero dual with no "
    "Sinkhorn warm-up, a fixed density and a fixed shift; on the validation problem (random "
    "costs, n = 300, seed 123, not a benchmark problem) none of the configurations below reached "
    "e <= 1e-8 within 300 iterations at eta = 10, and with its CG solver (method 0) most runs "
    "return non-finite plans. Only density = 1 (the dense Hessian: no longer a sparse Newton "
    "method) converged, at eta = 1200 only."
)


#: The clock of the solver timings and caps: wall time (default) or this process's CPU time
#: (``--cpu-targets``). Every solver here runs on one thread, so CPU seconds are its cost,
#: while on a shared machine the wall clock also measures the other jobs' load.
_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock_name = "wall"


def _clock() -> float:
    return _CLOCKS[_clock_name]()


def _e(P: np.ndarray, p: Any) -> float:
    """L1 marginal error ||P1 - a||_1 + ||P^T 1 - b||_1 of a returned plan (NaN if not finite)."""
    P = np.asarray(P, dtype=np.float64)
    if not np.all(np.isfinite(P)):
        return float("nan")
    return float(np.abs(P.sum(1) - p.a).sum() + np.abs(P.sum(0) - p.b).sum())


def _row(
    p: Any,
    eta: float,
    solver: str,
    iters: Any,
    total: int | None,
    passes: Any,
    wall: float,
    P: np.ndarray,
    note: str = "",
    curve: dict | None = None,
) -> dict:
    e = _e(P, p)
    cost = float(np.sum(P * p.C)) if np.all(np.isfinite(P)) else float("nan")
    return {
        "problem": p.name,
        "n": p.n,
        "m": p.m,
        "eta": eta,
        "solver": solver,
        "iterations": iters,
        "iterations_total": total,
        "passes": passes,
        "wall_s": round(wall, 4),
        "marginal_error": e,
        "converged": bool(e <= TOL),
        "cost": cost,
        "note": note,
        "curve": curve,
    }


def _capped_progress(cap_s: float) -> Any:
    """A Progress that cancels the solve once ``cap_s`` seconds (of the timing clock) have passed."""
    from workbench.progress import Progress

    t0 = _clock()
    prog = Progress(keep=1)
    prog._callback = lambda step, total, m: prog.cancel() if _clock() - t0 > cap_s else None
    return prog


def run_ours(name: str, p: Any, eta: float, cap_s: float, **kw: Any) -> dict:
    """Our SNS or Sinkhorn at its defaults (reg and tol set), stopped at e <= TOL."""
    from workbench.solvers.ot import sinkhorn, sinkhorn_newton

    mod = sinkhorn_newton if name.startswith("sns") else sinkhorn
    prm = mod.Params(
        reg=1.0 / eta, tol=TOL, device="cpu", max_iter=10_000_000 if mod is sinkhorn else 5000, **kw
    )
    t0 = _clock()
    r = mod.solve(p, prm, _capped_progress(cap_s))
    wall = _clock() - t0
    h = r.history
    if mod is sinkhorn_newton:
        it = f"{int(r.metrics['sinkhorn_iterations'])}+{int(r.metrics['newton_iterations'])}"
        passes: Any = int(r.metrics["passes"])
        note = f"{int(r.metrics['stages'])} stages, kappa {r.metrics['final_kappa']:g}"
        if r.metrics.get("sinkhorn_blocks"):
            note += f", {int(r.metrics['sinkhorn_blocks'])} Sinkhorn blocks"
        curve_passes = list(h.get("passes", []))
    else:
        it = r.iterations
        if r.meta.get("backend") == "numpy":
            # scaling path: two mat-vecs per iteration (its error checks reuse them), the kernel
            # build and every rebuild (absorption or log-domain half-step), one for the plan
            extra = int(r.metrics.get("absorptions", 0) + r.metrics.get("log_half_steps", 0))
            passes = 2 * r.iterations + 2 + extra
            curve_passes = [2 * s + 1 for s in h.get("step", [])]
            note = f"scaling form, {extra} absorptions/log steps"
        else:
            # two half-steps per iteration, one evaluation every check_every, one for the plan
            passes = 2 * r.iterations + r.iterations // prm.check_every + 1
            note = ""
            curve_passes = [2 * s + s // prm.check_every for s in h.get("step", [])]
    if r.status == "cancelled":
        note = (note + "; " if note else "") + f"capped at {cap_s:g} s"
    curve = {"t": list(h.get("time", [])), "e": list(h.get("e", [])), "passes": curve_passes}
    return _row(p, eta, name, it, int(r.iterations), passes, wall, r.output, note, curve)


def _pot_passes(iters: int) -> int:
    """POT's O(nm) sweeps: the kernel (or -M/reg) once, two per iteration, a check every 10."""
    return 1 + 2 * iters + (iters + 9) // 10


def run_pot(method: str, p: Any, eta: float, cap_s: float, repeat_under_s: float = 0.0) -> dict:
    """POT ``sinkhorn_knopp`` / ``sinkhorn_log`` stopped on the recomputed L1 error.

    POT's own test (an L2 norm of the column violation every 10 iterations) is switched off
    (``stopThr = 0``); the run proceeds in chunks warm-started from POT's returned scalings (the
    same iteration sequence as one uninterrupted run) and e is recomputed from the plan after
    every chunk, giving the error-versus-time curve. Once e <= TOL, the last chunk is refined
    (steps of an eighth of it) and the time is measured by one uninterrupted cold run of exactly
    that many iterations; a run that hits ``cap_s`` reports the time spent and no convergence.
    The row's ``cpu_s`` is this process's CPU time of the same run(s); a clean run shorter than
    ``repeat_under_s`` is timed twice more and the medians (wall and CPU) reported.
    """
    import ot

    a, b, C = p.a, p.b, np.ascontiguousarray(p.C)
    reg = 1.0 / eta
    fn = ot.bregman.sinkhorn_knopp if method == "sinkhorn" else ot.bregman.sinkhorn_log

    def call(n_it: int, ws: Any) -> tuple:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0, c0 = _clock(), time.process_time()
            P, log = fn(a, b, C, reg, numItermax=n_it, stopThr=0.0, warn=False, log=True,
                        warmstart=ws)  # fmt: skip
            dt = _clock() - t0
            cpus.append(time.process_time() - c0)
        if method == "sinkhorn":
            with np.errstate(divide="ignore"):
                nws = (np.log(log["u"]), np.log(log["v"]))
        else:
            nws = (log["log_u"], log["log_v"])
        msgs = {str(w.message).split(" at iteration")[0].strip() for w in caught}
        return P, nws, dt, msgs

    it, t, ws, chunk = 0, 0.0, None, 10
    cpus: list[float] = []  # CPU seconds of every call, in order
    ts: list[float] = []
    es: list[float] = []
    ps: list[int] = []
    msgs: set[str] = set()
    before = (0, None)
    e = math.inf
    P = None
    while True:
        P, nws, dt, m = call(chunk, ws)
        msgs |= m
        e = _e(P, p)
        before = (it, ws)
        it, t, ws = it + chunk, t + dt, nws
        ts.append(t)
        es.append(e)
        ps.append(_pot_passes(it))
        if not math.isfinite(e) or e <= TOL or t > cap_s or any("numerical" in s for s in m):
            break
        chunk = int(math.ceil(chunk * CHUNK_GROWTH / 10) * 10)
    converged = e <= TOL
    note = ""
    if converged:
        if chunk > 10:
            it_r, wsr = before
            step = max(10, chunk // 8)
            while it_r + step < it:
                P2, wsr, _, _ = call(step, wsr)
                it_r += step
                if _e(P2, p) <= TOL:
                    it = it_r
                    break
        P, _, wall, m = call(it, None)
        walls, cpu_l = [wall], [cpus[-1]]
        if wall < repeat_under_s:
            for _ in range(2):
                walls.append(call(it, None)[2])
                cpu_l.append(cpus[-1])
        wall, cpu = float(np.median(walls)), float(np.median(cpu_l))
        msgs |= m
        scale = wall / t if t > 0 else 1.0
        ts = [x * scale for x in ts]  # the chunked run's restarts removed from the time axis
    else:
        wall, cpu = t, float(sum(cpus))
        note = f"capped at {cap_s:g} s" if t > cap_s else ""
    if msgs:
        note = (note + "; " if note else "") + "; ".join(sorted(msgs))[:80]
    curve = {"t": ts, "e": es, "passes": ps}
    row = _row(p, eta, f"POT {method}", it, it, _pot_passes(it), wall, P, note, curve)
    row["cpu_s"] = cpu
    return row


def run_regot(
    p: Any, eta: float, max_iter: int = 1000, curve: bool = True, repeat_under_s: float = 0.0
) -> dict:
    """RegOT ``sinkhorn_ssns`` (library defaults), its tolerance converted to e <= TOL in L1.

    The L1 curve: RegOT reports only its own ||grad f||_2 per iteration, so the run is repeated
    with ``max_iter = k`` for about a dozen k (log-spaced) and e is recomputed from each plan;
    the time of each truncated run is the time to reach that plan. ``cpu_s``: this process's CPU
    time of the reported run; a run shorter than ``repeat_under_s`` is timed twice more and the
    medians (wall and CPU) reported.
    """
    import regot

    M = np.asfortranarray(p.C)
    base = TOL / math.sqrt(p.n + p.m)
    reg = 1.0 / eta
    for f in REGOT_TOL_LADDER:
        t0, c0 = _clock(), time.process_time()
        r = regot.sinkhorn_ssns(M, p.a, p.b, reg, tol=base * f, max_iter=max_iter, verbose=0)
        wall, cpu = _clock() - t0, time.process_time() - c0
        P = np.asarray(r.plan)
        if _e(P, p) <= TOL or int(r.niter) >= max_iter:
            break
    tol_used = base * f
    if wall < repeat_under_s:
        walls, cpus = [wall], [cpu]
        for _ in range(2):
            t0, c0 = _clock(), time.process_time()
            regot.sinkhorn_ssns(M, p.a, p.b, reg, tol=tol_used, max_iter=max_iter, verbose=0)
            walls.append(_clock() - t0)
            cpus.append(time.process_time() - c0)
        wall, cpu = float(np.median(walls)), float(np.median(cpus))
    niter = int(r.niter)
    note = f"tol {tol_used:.1e} on its ||grad||_2"
    if niter >= max_iter:
        note += f"; stopped at max_iter {max_iter}"
    cv = None
    if curve and niter > 0 and wall < 30:
        ks = sorted({int(k) for k in np.geomspace(1, niter, min(niter, 12))})
        ts, es = [], []
        for k in ks:
            t0 = _clock()
            rk = regot.sinkhorn_ssns(M, p.a, p.b, reg, tol=tol_used, max_iter=k, verbose=0)
            ts.append(_clock() - t0)
            es.append(_e(np.asarray(rk.plan), p))
        cv = {"t": ts, "e": es, "passes": []}
    row = _row(p, eta, "RegOT sinkhorn_ssns", niter, niter, "-", wall, P, note, cv)
    row["cpu_s"] = cpu
    return row


def run_emd(p: Any, eta: float) -> dict:
    import ot

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = _clock()
        P = ot.emd(p.a, p.b, np.ascontiguousarray(p.C), numItermax=10_000_000)
        wall = _clock() - t0
    note = "; ".join(str(w.message) for w in caught)[:80]
    row = _row(p, eta, "POT emd (exact)", "exact", None, "-", wall, P, note)
    row["converged"] = row["marginal_error"] <= 1e-12 and not note
    return row


def regot_sparse_validation() -> str:
    """The configuration search behind :data:`REGOT_SPARSE_REASON`, rerun (about a minute)."""
    import itertools

    import regot

    from workbench.datasets import ot as dot

    rng = np.random.default_rng(123)
    n = 300
    p = dot.make_problem(rng.random(n) + 0.1, rng.random(n) + 0.1, rng.random((n, n)), name="val")
    M = np.asfortranarray(p.C)
    lines = [
        "| eta | density | shift | linear solver | iterations | e (L1) | reached 1e-8 |",
        "|---|---|---|---|---|---|---|",
    ]
    for eta, d, s, meth in itertools.product(
        (10.0, 1200.0), (0.01, 0.05, 0.2, 0.5, 1.0), (0.0, 1e-6, 1e-3), (0, 1)
    ):
        r = regot.sinkhorn_sparse_newton(M, p.a, p.b, 1.0 / eta, tol=TOL / math.sqrt(2 * n),
                                         max_iter=300, density=d, shift=s, method=meth)  # fmt: skip
        e = _e(np.asarray(r.plan), p)
        lines.append(
            f"| {eta:g} | {d:g} | {s:g} | {'CG' if meth == 0 else 'LDLT'} | {int(r.niter)} | "
            f"{_fmt(e, 'e')} | {'yes' if e <= TOL else 'no'} |"
        )
    return "\n".join(lines)


PROTOCOL = (
    "**Protocol.** One stopping rule for every solver: the L1 marginal error "
    "e = ||P1 - a||_1 + ||P^T 1 - b||_1 <= 1e-8, recomputed from the plan each returns. Our SNS "
    "and Sinkhorn stop on it directly (SNS checks before every Newton step, Sinkhorn "
    "every 10 iterations; our `sinkhorn` runs on the CPU in NumPy in the scaling form with "
    "log-domain absorption, the same iterates as the log-domain update). POT's own L2 test is switched off: it runs in warm-restarted chunks "
    "until the recomputed e holds, and its time is that of one uninterrupted cold run of the "
    "iterations found. RegOT SSNS stops on its ||grad f||_2: the tolerance starts at "
    "1e-8/sqrt(n + m) and is divided by 10 until its plan meets e <= 1e-8 (the note gives the one "
    "used). A row that did not reach 1e-8 within the cap says so and gets no ratio. "
    "**Tuning.** Nothing was tuned on these problems in this run: every solver runs at its "
    "defaults (only reg and the stopping rule set). SNS's defaults (kappa_0 = 10, continuation "
    "factor 4 from eta_0 (max C - min C) = 20, stage exit 1e-3) were fixed during development on "
    "random_500 and cloud_500, which are also rows here, so those two are not held-out for SNS. "
    "The Levenberg-Marquardt shift search (a model fitted to the step sizes, x16 growth while "
    "uninformed, first shift 1e-4 max|D^-1 g| / radius) and the sampled top-k threshold were "
    "added after the previous run and checked only on validation problems of other seeds "
    "(random and point-cloud costs, n 60-1000, seeds 7-9 and 101-112, eta 100-1e5), never on "
    "these rows. "
    "RegOT `sinkhorn_sparse_newton` was configured on a validation problem only (below) and left "
    "out. **Budget.** Each run is capped at the time given in the command (the same for every "
    "solver); runs under 5 s are repeated three times (median). O(nm) passes count every sweep "
    "over the cost matrix (Sinkhorn half-steps, error evaluations, SNS's selection and "
    "line-search sweeps; POT: its kernel, two per iteration and its check every 10; RegOT does "
    "not expose its count). One thread (torch, BLAS) on a shared 2-core machine with other jobs "
    "running: wall times are noisy upper bounds; iteration and pass counts are not affected."
)


MAIN_SOLVERS = ["sns", "sinkhorn", "POT sinkhorn", "POT sinkhorn_log", "RegOT sinkhorn_ssns", "emd"]
SWEEP_SOLVERS = ["sns", "sinkhorn", "POT sinkhorn", "RegOT sinkhorn_ssns"]
#: --quick: which rows must reach 1e-8 for --check (capped rows elsewhere need only be present
#: and finite): these are the ones that converge in well under the quick cap on one core.
QUICK_MUST_CONVERGE = {
    "random_500": {"sns", "RegOT sinkhorn_ssns", "emd"},
    "gauss_clouds": {"sns", "sinkhorn", "POT sinkhorn", "RegOT sinkhorn_ssns", "emd"},
    "sweep random_500 eta=100": {"sns", "sinkhorn", "POT sinkhorn", "RegOT sinkhorn_ssns"},
}
#: the problems whose curves go into docs/ot_error_vs_time.png
FIGURE_LABELS = ("random_500", "random_2000", "cloud_500", "digits_w2")


def problems(quick: bool) -> list[tuple[str, Any, float, list[str]]]:
    from workbench.datasets import ot as dot

    p500 = dot.random_assignment(500)
    if quick:
        return [
            ("random_500", p500, 1200.0, ["sns", "POT sinkhorn", "RegOT sinkhorn_ssns", "emd"]),
            ("gauss_clouds", dot.gauss_clouds(), 1200.0, ["sns", "sinkhorn", "POT sinkhorn",
                                                          "RegOT sinkhorn_ssns", "emd"]),
            ("sweep random_500 eta=100", p500, 100.0, SWEEP_SOLVERS),
        ]  # fmt: skip
    out = []
    for n in (200, 500, 1000, 2000):
        eta = 1200.0 if n <= 500 else 2.4 * n
        out.append((f"random_{n}", p500 if n == 500 else dot.random_assignment(n), eta,
                    list(MAIN_SOLVERS)))  # fmt: skip
    for name, fac in (
        ("cloud_500", dot.cloud_500),
        ("gauss_clouds", dot.gauss_clouds),
        ("digits_w2", dot.digits_w2),
        ("digits_w1", dot.digits_w1),
    ):
        out.append((name, fac(), 1200.0, list(MAIN_SOLVERS)))
    for eta in (10.0, 100.0, 1000.0, 2400.0):  # 1200 is in the main table
        out.append((f"sweep random_500 eta={eta:g}", p500, eta, list(SWEEP_SOLVERS)))
    return out


def run_one(solver: str, p: Any, eta: float, cap_s: float) -> dict:
    """One benchmark row; runs shorter than 5 s are repeated and the median time is reported."""
    row = _run_one(solver, p, eta, cap_s)
    if row["converged"] and isinstance(row.get("wall_s"), float) and row["wall_s"] < 5.0:
        walls = [row["wall_s"]]
        for _ in range(2):
            again = _run_one(solver, p, eta, cap_s, curve=False)
            walls.append(again["wall_s"] if again["converged"] else math.inf)
        row["wall_s"] = float(np.median(walls))
        row["note"] = (row["note"] + "; " if row["note"] else "") + "median of 3"
    return row


def _run_one(solver: str, p: Any, eta: float, cap_s: float, curve: bool = True) -> dict:
    try:
        if solver in ("sns", "sinkhorn"):
            return run_ours(solver, p, eta, cap_s)
        if solver.startswith("POT sinkhorn"):
            return run_pot(solver.split()[1], p, eta, cap_s)
        if solver == "RegOT sinkhorn_ssns":
            return run_regot(p, eta, curve=curve)
        if solver == "emd":
            return run_emd(p, eta)
    except Exception as exc:  # a peer failing is a result, not a crash
        return {
            "problem": p.name, "n": p.n, "m": p.m, "eta": eta, "solver": solver,
            "iterations": "-", "iterations_total": None, "passes": "-",
            "wall_s": float("nan"), "marginal_error": float("nan"), "converged": False,
            "cost": float("nan"), "note": f"error: {exc}"[:100], "curve": None,
        }  # fmt: skip
    raise ValueError(solver)


def _fmt(v: Any, kind: str = "") -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        if kind == "e":
            return f"{v:.1e}"
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def markdown(rows: list[dict]) -> str:
    """The table: ratios other/SNS only where both reached e <= 1e-8."""
    lines = [
        "| problem | eta | solver | iterations | O(nm) passes | wall s | e (L1, recomputed) | "
        "reached 1e-8 | time / SNS | passes / SNS | cost gap vs emd | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["label"], []).append(r)
    for label, rs in groups.items():
        sns = next((r for r in rs if r["solver"] == "sns"), None)
        emd = next((r for r in rs if r["solver"].startswith("POT emd")), None)
        for r in rs:
            tr = pr = "-"
            if sns is not None and r is not sns and r["converged"] and sns["converged"]:
                tr = f"{r['wall_s'] / sns['wall_s']:.3g}"
                if isinstance(r["passes"], int) and isinstance(sns["passes"], int):
                    pr = f"{r['passes'] / sns['passes']:.3g}"
            gap = (
                f"{(r['cost'] - emd['cost']) / emd['cost']:.2%}"
                if emd is not None and r is not emd and emd["cost"] > 0 and r["converged"]
                else "-"
            )
            lines.append(
                f"| {label} | {r['eta']:g} | {r['solver']} | {r['iterations']} | "
                f"{_fmt(r['passes'])} | {_fmt(r['wall_s'])} | {_fmt(r['marginal_error'], 'e')} | "
                f"{'yes' if r['converged'] else '**no**'} | {tr} | {pr} | {gap} | {r['note']} |"
            )
    return "\n".join(lines)


def targets(rows: list[dict], recs: dict[str, dict] | None = None) -> str:
    """Issue 20's OT targets and the spec's (ot.md §9), each met / missed / not measurable."""

    def get(label: str, solver: str) -> dict | None:
        return next((r for r in rows if r["label"] == label and r["solver"] == solver), None)

    out = ["| id | target | measured | met |", "|---|---|---|---|"]

    def add(i: str, target: str, measured: str, ok: bool | None) -> None:
        met = "yes" if ok else ("**no**" if ok is not None else "n/a")
        out.append(f"| {i} | {target} | {measured} | {met} |")

    s = get("random_500", "sns")
    k = get("random_500", "POT sinkhorn")
    if s and k:
        if not s["converged"]:
            add("I20", "random_500: SNS >= 10x faster than POT sinkhorn to e <= 1e-8",
                "SNS did not reach 1e-8", False)  # fmt: skip
        elif k["converged"]:
            q = k["wall_s"] / s["wall_s"]
            add("I20", "random_500: SNS >= 10x faster than POT sinkhorn to e <= 1e-8",
                f"{q:.1f}x ({k['wall_s']:.2f} s / {s['wall_s']:.2f} s)", q >= 10)  # fmt: skip
        else:
            q = k["wall_s"] / s["wall_s"]
            add("I20", "random_500: SNS >= 10x faster than POT sinkhorn to e <= 1e-8",
                f"POT did not reach 1e-8 in {k['wall_s']:.0f} s: > {q:.0f}x (lower bound)",
                True if q >= 10 else None)  # fmt: skip
    for lab, rule in (("random_500", "within 1.5x"), ("random_1000", "ahead"),
                      ("random_2000", "ahead")):  # fmt: skip
        s, g = get(lab, "sns"), get(lab, "RegOT sinkhorn_ssns")
        if not (s and g):
            continue
        if not (s["converged"] and g["converged"]):
            who = "SNS" if not s["converged"] else "RegOT"
            add("I20", f"{lab}: SNS {rule} of RegOT SSNS", f"{who} did not reach 1e-8",
                False if who == "SNS" else None)  # fmt: skip
            continue
        q = s["wall_s"] / g["wall_s"]
        add("I20", f"{lab}: SNS {rule} of RegOT SSNS (wall time)",
            f"SNS/RegOT = {q:.2f} ({s['wall_s']:.2f} s / {g['wall_s']:.2f} s)",
            q <= 1.5 if rule.startswith("within") else q < 1.0)  # fmt: skip
    for label in dict.fromkeys(r["label"] for r in rows):
        s, k = get(label, "sns"), get(label, "POT sinkhorn")
        if not (s and k and k["converged"] and isinstance(k["iterations"], int)):
            continue
        if k["iterations"] >= 2000:
            continue
        rec = (recs or {}).get(label)
        ok = s["converged"] and s["wall_s"] <= 2 * k["wall_s"]
        measured = f"SNS {s['wall_s']:.2f} s vs POT {k['wall_s']:.2f} s ({k['iterations']} its)"
        if not ok and rec is not None:
            measured += f"; recommendation: {rec['solver']}"
            # the pick counts only when it is right: our Sinkhorn measured faster than SNS here
            # (a pick of a Sinkhorn that is slower than SNS gives the user nothing)
            sk = get(label, "sinkhorn")
            right = bool(sk and sk["converged"] and sk["wall_s"] < s["wall_s"])
            if rec["solver"] == "sinkhorn" and not right:
                measured += " (wrong pick: our Sinkhorn measured slower than SNS)"
            ok = rec["solver"] == "sinkhorn" and right
        add("I20", f"easy {label}: SNS <= 2x POT sinkhorn, or the recommendation picks Sinkhorn",
            measured, ok)  # fmt: skip
    s = get("random_500", "sns")
    if s:
        pots = [get("random_500", m) for m in ("POT sinkhorn", "POT sinkhorn_log")]
        parts = []
        for r in pots:
            if r and r["converged"]:
                parts.append(f"{r['solver']} {r['iterations'] / s['iterations_total']:.0f}x fewer")
            elif r:
                parts.append(f"{r['solver']} did not reach 1e-8")
        add("OT1", "SNS <= 40 iterations at random_500",
            f"{s['iterations']} = {s['iterations_total']} ({s['passes']} passes); " + "; ".join(parts),
            s["iterations_total"] <= 40 and s["converged"])  # fmt: skip
    for n in (1000, 2000):
        s = get(f"random_{n}", "sns")
        if s:
            add("OT1b", f"SNS <= 40 iterations at random_{n}, eta = {2.4 * n:g}",
                f"{s['iterations']} ({s['passes']} passes, e {s['marginal_error']:.1e})",
                s["iterations_total"] <= 40 and s["converged"])  # fmt: skip
    for lab in ("cloud_500", "gauss_clouds"):
        s = get(lab, "sns")
        if s:
            add("OT3", f"{lab}: converges to 1e-8 at the defaults",
                f"{s['iterations']}, e {s['marginal_error']:.1e}", s["converged"])  # fmt: skip
    for lab, lim in (("digits_w2", 100), ("digits_w1", 1000)):
        s = get(lab, "sns")
        if s:
            add("OT5", f"{lab}: SNS <= {lim} iterations",
                f"{s['iterations']} = {s['iterations_total']}",
                s["iterations_total"] <= lim and s["converged"])  # fmt: skip
    return "\n".join(out)


def recommendations(rows: list[dict], specs: list[tuple[str, Any, float, list[str]]]) -> dict:
    """The timed-probe recommendation on every problem that has both workbench solvers."""
    from workbench.solvers.ot.recommend import recommend

    labels = {r["label"] for r in rows if r["solver"] == "sinkhorn"}
    return {lab: recommend(p, 1.0 / eta).as_dict() for lab, p, eta, _ in specs if lab in labels}


def recommendation_rows(rows: list[dict], recs: dict[str, dict]) -> str:
    out = [
        "| problem | eta | probe s | predicted Sinkhorn s | predicted SNS s | recommended | "
        "measured Sinkhorn s | measured SNS s | faster measured | right? |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for lab, rec in recs.items():
        sk = next(r for r in rows if r["label"] == lab and r["solver"] == "sinkhorn")
        sn = next((r for r in rows if r["label"] == lab and r["solver"] == "sns"), None)
        if sn is None:
            continue
        t_sk = sk["wall_s"] if sk["converged"] else math.inf
        t_sn = sn["wall_s"] if sn["converged"] else math.inf
        faster = "sinkhorn_newton" if t_sn < t_sk else "sinkhorn"
        tie = (
            math.isfinite(t_sk) and math.isfinite(t_sn) and max(t_sk, t_sn) <= 1.2 * min(t_sk, t_sn)
        )
        right = "yes" if rec["solver"] == faster else ("tie (within 1.2x)" if tie else "**no**")
        ms = f"{sk['wall_s']:.3g}" if sk["converged"] else f"> {sk['wall_s']:.3g} (capped)"
        out.append(
            f"| {lab} | {sn['eta']:g} | {rec['probe_s']:.3g} | {rec['predicted_sinkhorn_s']:.3g} | "
            f"{_fmt(rec['predicted_sns_s'])} | {rec['solver']} | {ms} | {_fmt(t_sn)} | {faster} | {right} |"
        )  # fmt: skip
    return "\n".join(out)


def _thin(c: dict, k: int = 150) -> dict:
    """At most k points per curve (log-spaced in the index), so the files stay small."""
    t, e = list(c.get("t") or []), list(c.get("e") or [])
    pa = list(c.get("passes") or [])
    size = min(len(t), len(e))
    keep = sorted({0, size - 1} | {int(x) for x in np.geomspace(1, max(size, 2), k) - 1})
    keep = [i for i in keep if 0 <= i < size]
    out = {"t": [float(t[i]) for i in keep], "e": [float(e[i]) for i in keep]}
    if len(pa) >= size:
        out["passes"] = [float(pa[i]) for i in keep]
    return out


def write_curves(rows: list[dict], quick: bool) -> tuple[Path, Path | None]:
    """benchmarks/results/ot_curves[_quick].json (the page reads it) and the docs/ figure."""
    curves: dict[str, dict] = {}
    for r in rows:
        if r.get("curve") and r["curve"].get("t"):
            curves.setdefault(r["label"], {})[r["solver"]] = {**_thin(r["curve"]), "norm": "L1"}
    root = Path(__file__).resolve().parent
    out_json = root / "results" / ("ot_curves_quick.json" if quick else "ot_curves.json")
    out_json.parent.mkdir(exist_ok=True)
    out_json.write_text(json.dumps(curves))
    png = None
    if not quick:
        from workbench.export import figure_bytes
        from workbench.viz.ot import bench_curves_panels

        labels = [lab for lab in FIGURE_LABELS if lab in curves]
        if labels:
            fig = bench_curves_panels(curves, labels)
            png = root.parent / "docs" / "ot_error_vs_time.png"
            png.write_bytes(figure_bytes(fig, "png", width=1200, height=800, scale=1))
    return out_json, png


def run_checks(rows: list[dict], specs: list[tuple]) -> None:
    """--check: correctness only (converged where it must, finite metrics, every row present)."""
    from workbench.bench import check

    for label, _, _, solvers in specs:
        for solver in solvers:
            r = next((x for x in rows if x["label"] == label and x.get("key") == solver), None)  # fmt: skip
            check(r is not None, f"ot: row {label} / {solver} missing")
            check(math.isfinite(r["marginal_error"]), f"ot: {label} / {solver}: e is not finite")
            check(math.isfinite(r["wall_s"]), f"ot: {label} / {solver}: no wall time")
            if solver in QUICK_MUST_CONVERGE.get(label, {"sns"}):
                check(r["converged"], f"ot: {label} / {solver} did not reach e <= {TOL:g} "
                      f"(e = {r['marginal_error']:.2e}, {r['note']})")  # fmt: skip
                check(math.isfinite(r["cost"]), f"ot: {label} / {solver}: cost not finite")


# ------------------------------------------------------------------------------------------
# Issue 17: SNS across eta and n (``--grid``)
# ------------------------------------------------------------------------------------------

GRID_ETAS = (1e2, 1e3, 1e4, 1e5)
GRID_NS = (60, 500, 2000, 5000)
GRID_KINDS = ("random", "cloud", "image_w2", "image_w1")
#: cells run by default (the full 4 x 4 x 4 grid is far over the CPU budget on a shared
#: 2-core machine); every other cell is listed as "not run".
GRID_DEFAULT = (
    [(k, n, e) for k in GRID_KINDS for n in (60, 500) for e in GRID_ETAS]
    + [("random", 2000, 1e3), ("cloud", 2000, 1e3), ("random", 2000, 1e4), ("cloud", 2000, 1e4)]
    + [("cloud", 5000, 1e3), ("random", 5000, 1e3), ("random", 5000, 1e4), ("cloud", 5000, 1e4)]
    + [(k, n, e) for n in (5000, 2000) for k in ("random", "cloud") for e in (1e2, 1e5)]
)
#: RegOT cannot be stopped by time: its iteration cap is lowered where one iteration is O(n^2)
#: dense work on thousands of points (a capped run is reported as a miss with its wall time).
REGOT_MAX_ITER = {500: 5000, 10**9: 300}
REGOT_MAX_N = 2000  # larger: not run (its dense O(n^2) iterations exceed the CPU budget here)
#: --grid: a run shorter than this (wall seconds) is timed three times and the medians of its
#: wall and CPU times are reported, for every solver alike (millisecond runs on a shared machine)
GRID_REPEAT_UNDER_S = 1.0


def grid_problem(kind: str, n: int, seed: int = 0) -> Any:
    """random: C ~ U[0,1], weights ~ U + 0.1; cloud: U[0,1]^2 -> U[0.3,1.1]^2, squared distance;
    image_w2 / image_w1: two digits resized to about n pixels, squared / plain distance."""
    from workbench.datasets import ot as dot

    rng = np.random.default_rng(seed)
    if kind == "random":
        return dot.make_problem(
            rng.random(n) + 0.1, rng.random(n) + 0.1, rng.random((n, n)), name=f"random_{n}"
        )
    if kind == "cloud":
        return dot.make_problem(
            rng.random(n) + 0.1,
            rng.random(n) + 0.1,
            X=rng.random((n, 2)),
            Y=0.3 + 0.8 * rng.random((n, 2)),
            cost="sqeuclidean",
            name=f"cloud_{n}",
        )
    side = max(8, int(round(math.sqrt(n))))
    A, B = dot.digit_images(size=side)
    return dot.from_images(
        A,
        B,
        cost="sqeuclidean" if kind == "image_w2" else "euclidean",
        name=f"{kind}_{side}x{side}",
    )


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def grid_cell(kind: str, n: int, eta: float, cap_s: float, pot_max_n: int) -> list[dict]:
    """SNS (defaults), RegOT SSNS and POT sinkhorn_log on one cell; e recomputed from each plan."""

    p = grid_problem(kind, n)
    rows: list[dict] = [grid_sns(p, kind, eta, sns_cap(cap_s, n))]
    base = {"kind": kind, "n": p.n, "m": p.m, "eta": eta}
    grid_peers(p, base, eta, cap_s, pot_max_n, rows)
    return rows


def sns_cap(cap_s: float, n: int) -> float:
    """SNS's time cap: ``cap_s``, but at least 120 s from n = 2000 on (the 2-minute target)."""
    return cap_s if n < 2000 else max(cap_s, 120.0)


def grid_sns(p: Any, kind: str, eta: float, cap_s: float) -> dict:
    """SNS at its defaults (only reg and the common tol set), capped at ``cap_s`` seconds of this
    process's CPU time (on a shared machine a wall-clock cap measures the other jobs' load)."""
    from workbench.progress import Progress
    from workbench.solvers.ot import sinkhorn_newton as sns

    base = {"kind": kind, "n": p.n, "m": p.m, "eta": eta}

    def run() -> Any:
        c0 = time.process_time()
        prog = Progress(keep=1)
        prog._callback = lambda step, total, m: (
            prog.cancel() if time.process_time() - c0 > cap_s else None
        )
        return sns.solve(p, sns.Params(reg=1.0 / eta, tol=TOL, device="cpu"), prog)

    walls, cpus = [], []
    for _ in range(3):  # a run under GRID_REPEAT_UNDER_S: three, the medians reported
        t0, c0 = time.perf_counter(), time.process_time()
        r_i = run()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        if len(walls) == 1:
            r = r_i  # the result of the first run (the repeats are the same solve)
        if walls[0] >= GRID_REPEAT_UNDER_S:
            break
    wall, cpu = float(np.median(walls)), float(np.median(cpus))
    e = _e(r.output, p)
    rows: list[dict] = []
    rows.append(
        {
            **base,
            "solver": "SNS",
            "iterations": r.iterations,
            "passes": int(r.metrics["passes"]),
            "wall_s": wall,
            "marginal_error": e,
            "converged": e <= TOL,
            "status": r.status + ("" if r.status == "converged" else f" ({r.meta['stop_reason']})"),
            "rss_mb": _rss_mb(),
            "note": f"{int(r.metrics['stages'])} stages, {int(r.metrics['newton_iterations'])} Newton"
            + ("; median of 3" if len(walls) == 3 else ""),
            "cpu_s": cpu,
            "curve": {"t": r.history["time"], "e": r.history["e"], "norm": "L1"},
        }
    )
    return rows[0]


def grid_peers(p: Any, base: dict, eta: float, cap_s: float, pot_max_n: int, rows: list) -> None:
    """RegOT SSNS and (for small n) POT sinkhorn_log on one cell, appended to ``rows``."""

    if max(p.n, p.m) > REGOT_MAX_N:
        rows.append({**base, "solver": "RegOT sinkhorn_ssns", "iterations": "-", "passes": "-",
                     "wall_s": float("nan"), "marginal_error": float("nan"), "converged": False,
                     "status": "not run (CPU budget)", "rss_mb": _rss_mb(), "note": "", "curve": None})  # fmt: skip
        return
    # RegOT SSNS (C++): its ||grad||_2 tolerance converted to e <= TOL in L1 (run_regot)
    try:
        cap_it = next(v for k, v in sorted(REGOT_MAX_ITER.items()) if max(p.n, p.m) <= k)
        rr = run_regot(p, eta, max_iter=cap_it, repeat_under_s=GRID_REPEAT_UNDER_S)
        rows.append({**base, "solver": "RegOT sinkhorn_ssns", "iterations": rr["iterations"],
                     "passes": "-", "wall_s": rr["wall_s"], "cpu_s": rr["cpu_s"],
                     "marginal_error": rr["marginal_error"],
                     "converged": rr["converged"],
                     "status": "converged" if rr["converged"] else "not converged",
                     "rss_mb": _rss_mb(), "note": rr["note"],
                     "curve": {**(rr["curve"] or {"t": [], "e": []}), "norm": "L1"}})  # fmt: skip
    except Exception as exc:  # a peer failing is a result
        rows.append({**base, "solver": "RegOT sinkhorn_ssns", "iterations": "-", "passes": "-",
                     "wall_s": float("nan"), "marginal_error": float("nan"), "converged": False,
                     "status": f"error: {exc}"[:60], "rss_mb": _rss_mb(), "note": "", "curve": None})  # fmt: skip
    if p.n <= pot_max_n:
        r = run_pot("sinkhorn_log", p, eta, cap_s / 2, repeat_under_s=GRID_REPEAT_UNDER_S)
        it = r["iterations"]  # POT's passes: see _pot_passes
        rows.append(
            {
                **base,
                "solver": "POT sinkhorn_log",
                "iterations": it,
                "passes": r["passes"],
                "wall_s": r["wall_s"],
                "cpu_s": r["cpu_s"],
                "marginal_error": r["marginal_error"],
                "converged": r["converged"],
                "status": "converged" if r["converged"] else "" if "capped" in r["note"] else "not converged",
                "rss_mb": _rss_mb(),
                "note": r["note"],
                "curve": {**r["curve"], "norm": "L1"} if r.get("curve") else None,
            }
        )  # fmt: skip


def grid_markdown(rows: list[dict], cells: list[tuple], cap_s: float, pot_max_n: int) -> str:
    lines = [
        "| cost | n x m | eta | solver | iterations | O(nm) passes | wall s | CPU s | e (L1, recomputed) | ok | max RSS MB | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cpu = r.get("cpu_s")
        lines.append(
            f"| {r['kind']} | {r['n']}x{r['m']} | {r['eta']:g} | {r['solver']} | {r['iterations']} | {r['passes']} | "
            f"{_fmt(r['wall_s'])} | {_fmt(cpu) if isinstance(cpu, float) else '-'} | {_fmt(r['marginal_error'], 'e')} | {'yes' if r['converged'] else '**no**'} | "
            f"{r['rss_mb']:.0f} | {r['status'] if not r['converged'] else ''} {r['note']} |"
        )
    ran = {
        (c[0], c[1], c[2])
        for c in cells
        if any(r.get("cell") == f"{c[0]}_{c[1]}_{c[2]:g}" for r in rows)
    }
    missing = [
        (k, n, e) for k in GRID_KINDS for n in GRID_NS for e in GRID_ETAS if (k, n, e) not in ran
    ]
    out = "\n".join(lines)
    # targets
    t = ["| target | cells | met |", "|---|---|---|"]
    by: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        by.setdefault((r["kind"], r["n"], r["eta"]), {})[r["solver"]] = r
    sns_ok = [c for c, d in by.items() if d["SNS"]["converged"]]
    t.append(
        f"| SNS converges at its defaults | {len(sns_ok)} of {len(by)} cells run | {'yes' if len(sns_ok) == len(by) else '**no**'} |"
    )

    def _q(q: float) -> str:
        return "SNS short of 1e-8" if math.isinf(q) else f"{q:.2g}x"

    for key, clock in (("wall_s", "wall time"), ("cpu_s", "CPU time")):
        small, large, unmeasured = [], [], [0, 0]
        for c, d in by.items():
            s, rg = d["SNS"], d.get("RegOT sinkhorn_ssns")
            if rg is None or not isinstance(rg["wall_s"], float) or math.isnan(rg["wall_s"]):
                continue
            if not (isinstance(s.get(key), float) and isinstance(rg.get(key), float)):
                unmeasured[c[1] > 500] += 1  # rows of an invocation without this clock
                continue
            # a ratio only where both reached 1e-8; SNS alone there is a win, short of it a miss
            if s["converged"] and rg["converged"]:
                ratio = s[key] / rg[key]
            else:
                ratio = 0.0 if s["converged"] else math.inf
            (small if c[1] <= 500 else large).append((c, ratio, rg["converged"]))
        worst = max((q for _, q, _ in small if math.isfinite(q)), default=math.nan)
        un = [f" ({u} cells without RegOT's {clock}: not judged)" if u else "" for u in unmeasured]
        if small:
            bad = [f"{c[0]} n={c[1]} eta={c[2]:g}: {_q(q)}" for c, q, _ in small if q > 2]
            t.append(
                f"| within 2x of RegOT SSNS {clock} at n <= 500 | {len(small) - len(bad)} of {len(small)} (largest SNS/RegOT {worst:.3g}x); misses: {'; '.join(bad) or 'none'}{un[0]} | {'yes' if not bad else '**no**'} |"
            )
        if large:
            bad = [f"{c[0]} n={c[1]} eta={c[2]:g}: {_q(q)}" for c, q, _ in large if q >= 1]
            t.append(
                f"| ahead of RegOT SSNS ({clock}) at n >= 2000 | {len(large) - len(bad)} of {len(large)}; misses: {'; '.join(bad) or 'none'}{un[1]} | {'yes' if not bad else '**no**'} |"
            )
        elif unmeasured[1]:
            t.append(
                f"| ahead of RegOT SSNS ({clock}) at n >= 2000 | not judged: {unmeasured[1]} cells measured before RegOT's {clock} was recorded | - |"
            )
    for key, clock in (("wall_s", "wall time"), ("cpu_s", "CPU time")):
        pot = []
        for c, d in by.items():
            k = d.get("POT sinkhorn_log")
            if k is None or not isinstance(k["iterations"], int) or k["iterations"] <= 2000:
                continue
            if not (isinstance(k.get(key), float) and isinstance(d["SNS"].get(key), float)):
                continue
            if not d["SNS"]["converged"]:
                pot.append((c, 0.0, k["converged"]))  # SNS short of tol: a miss
                continue
            pot.append((c, k[key] / d["SNS"][key], k["converged"]))
        if pot:
            bad = [f"{c[0]} n={c[1]} eta={c[2]:g}: {q:.2g}x" for c, q, _ in pot if q < 10]
            lb = sum(1 for _, _, conv in pot if not conv)
            least = min(q for _, q, _ in pot)
            t.append(
                f"| >= 10x faster than POT sinkhorn_log ({clock}) where it needs > 2000 iterations | {len(pot) - len(bad)} of {len(pot)} "
                f"(smallest POT/SNS {least:.3g}x; {lb} POT runs capped at ~{cap_s / 2:g} s: ratio is a lower bound); misses: {'; '.join(bad) or 'none'} | {'yes' if not bad else '**no**'} |"
            )  # fmt: skip
    return (
        out
        + "\n\n### Targets (issue 17)\n\n"
        + "\n".join(t)
        + f"\n\nPOT sinkhorn_log ran only for n <= {pot_max_n} (larger cells: not run). Cells not run: "
        + ", ".join(f"{k} n={n} eta={e:g}" for k, n, e in missing)
        + "."
    )


def main_grid(args: Any) -> int:
    import torch

    torch.set_num_threads(1)
    cap = args.cap_s if args.cap_s is not None else 40.0
    cells = list(GRID_DEFAULT)
    if args.only:
        want = {s.strip() for s in args.only.split(",") if s.strip()}
        cells = [c for c in cells if f"{c[0]}_{c[1]}_{c[2]:g}" in want]
    done: list[dict] = []
    if args.rows and Path(args.rows).exists():
        done = [
            json.loads(line) for line in Path(args.rows).read_text().splitlines() if line.strip()
        ]
    rows: list[dict] = []
    rerun: list[str] = []
    t_all = time.perf_counter()
    # one untimed solve per solver first: lazy imports are not charged to the first cell
    warm = grid_problem("random", 30)
    grid_sns(warm, "random", 100.0, 60.0)
    grid_peers(warm, {"kind": "random", "n": 30, "m": 30, "eta": 100.0}, 100.0, 60.0, 60, [])
    for kind, n, eta in cells:
        # the latest row per solver (a re-measured SNS row is appended to the file)
        latest = {r["solver"]: r for r in done if r.get("cell") == f"{kind}_{n}_{eta:g}"}
        prev = list(latest.values())
        if args.rerun_max_n and n <= args.rerun_max_n and not args.render_only:
            prev = []  # re-measure every solver of this cell, side by side (rows appended)
            rerun.append(f"{kind}_{n}_{eta:g}")
        if prev and args.regot_only:
            # re-measure RegOT only (same machine load as a fresh SNS pass)
            pr = grid_problem(kind, n)
            fresh: list[dict] = []
            grid_peers(pr, {"kind": kind, "n": pr.n, "m": pr.m, "eta": eta}, eta, cap, 0, fresh)
            for r in fresh:
                r["cell"] = f"{kind}_{n}_{eta:g}"
                print(f"{r['cell']:22s} RegOT it={r['iterations']} t={r['wall_s']:.2f}s",
                      file=sys.stderr, flush=True)  # fmt: skip
                if args.rows:
                    with open(args.rows, "a") as fh:
                        fh.write(json.dumps(r, default=float) + "\n")
            names = {r["solver"] for r in fresh}
            prev = [r for r in prev if r["solver"] not in names]
            prev = prev[:1] + fresh + prev[1:]
        if prev and args.sns_only:
            # re-measure SNS only (after a change to it); the peers' rows are kept
            new_sns = grid_sns(grid_problem(kind, n), kind, eta, sns_cap(cap, n))
            new_sns["cell"] = f"{kind}_{n}_{eta:g}"
            print(f"{new_sns['cell']:22s} SNS it={new_sns['iterations']} t={new_sns['wall_s']:.2f}s "
                  f"e={new_sns['marginal_error']:.1e}", file=sys.stderr, flush=True)  # fmt: skip
            prev = [new_sns] + [r for r in prev if r["solver"] != "SNS"]
            if args.rows:
                with open(args.rows, "a") as fh:
                    fh.write(json.dumps(new_sns, default=float) + "\n")
        if prev:
            rows += prev
            continue
        if args.render_only:
            continue
        new = grid_cell(kind, n, eta, cap, args.pot_max_n)
        for r in new:
            r["cell"] = f"{kind}_{n}_{eta:g}"
            print(
                f"{r['cell']:22s} {r['solver']:22s} it={r['iterations']!s:>7} t={r['wall_s']:8.2f}s e={r['marginal_error']:.1e} {r['status']}",
                file=sys.stderr,
                flush=True,
            )
            if args.rows:
                with open(args.rows, "a") as fh:
                    fh.write(json.dumps(r, default=float) + "\n")
        rows += new
    total = time.perf_counter() - t_all
    md = (
        "**Protocol.** Stopping rule for every method: the L1 marginal error e <= 1e-8 recomputed from "
        "the returned plan. SNS at its defaults (only reg and tol set; the eta-continuation is chosen from "
        "eta and the cost range). RegOT `sinkhorn_ssns` at its library defaults, its own ||grad f||_2 "
        "tolerance converted (1e-8/sqrt(n+m), divided by 10 until its plan meets e <= 1e-8), max_iter 5000 "
        "(300 for n > 500); POT `sinkhorn_log` with its own test off, in warm-restarted chunks until the "
        f"recomputed e holds (timed by one clean run of the iterations found), capped at ~{cap / 2:g} s. "
        f"SNS is cancelled after {cap:g} s ({max(cap, 120):g} s from n = 2000 on) of its process's CPU "
        "time (CPU seconds in their own column where measured). Nothing was tuned on "
        "these cells (SNS's defaults were fixed during development on random_500 and cloud_500 of the main "
        "section, which are not grid cells; the shift search and sampled top-k threshold added later were "
        "checked on validation problems of other seeds only; so were the kept-entries memory budget "
        "and its default, on point clouds of seeds 7 and 11 at n = 5000 and 10 000; the dense path's "
        "per-step overhead was profiled and cut on validation problems only -- other digit pairs and "
        "seeds, benchmarks/ot_dense_overhead.py). A row short of "
        "1e-8 is marked and not "
        "counted as a win. "
        f"A run shorter than {GRID_REPEAT_UNDER_S:g} s of wall time is timed three times and the "
        "medians of its wall and CPU times (this process's, one thread) are reported, for every "
        "solver alike (cells measured before this rule have one run each and no CPU time for the "
        "peers: the CPU-time targets judge only the cells that have it). "
        "SNS O(nm) passes count every sweep over the cost (Sinkhorn half-steps, state, selection and "
        "line-search passes); POT's: its -M/reg once, 2 per iteration and its check every 10. max RSS is "
        "the process's peak so far (monotone). One thread (torch, BLAS), on a shared 2-core machine with "
        "other agents' jobs running: wall times are upper bounds and noisy, iteration counts are not affected."
        + (
            " Rows gathered over several invocations (the resumable --rows file), at the machine's "
            "load of each: within a cell the solvers ran side by side in one invocation (unless the "
            "command below says a solver was re-measured), so a cell's ratios compare like with like, "
            "while wall times across cells are less comparable."
            if args.rows
            else ""
        )
        + (f" {args.note}" if args.note else "")
        + (
            f" **Rerun:** this invocation re-measured every solver of the {len(rerun)} cells with "
            f"n <= {args.rerun_max_n} side by side ({', '.join(rerun)}); the other cells' rows "
            "are those of the earlier invocations, kept in the rows file."
            if rerun
            else ""
        )
        + "\n\n"
        + grid_markdown(rows, cells, cap, args.pot_max_n)
        + (
            "\n\nRendered from the rows file (no solve in this invocation).\n"
            if args.render_only
            else f"\n\nThis invocation: {total:.0f} s.\n"
        )
    )

    def _thin(c: dict, k: int = 200) -> dict:
        """At most k points per curve (log-spaced in the index), so the file stays small."""
        t, e = list(c.get("t") or []), list(c.get("e") or [])
        size = min(len(t), len(e))
        keep = sorted({0, size - 1} | {int(x) for x in np.geomspace(1, max(size, 2), k) - 1})
        keep = [i for i in keep if 0 <= i < size]
        return {"t": [t[i] for i in keep], "e": [e[i] for i in keep], "norm": c.get("norm", "")}

    curves = {r["cell"] + " " + r["solver"]: _thin(r["curve"]) for r in rows if r.get("curve")}
    if not args.no_write:
        out_json = Path(__file__).resolve().parent / "results" / "ot_grid_curves.json"
        out_json.parent.mkdir(exist_ok=True)
        out_json.write_text(json.dumps(curves))
    if not args.no_write:
        from workbench.bench import write_section

        write_section(
            "Optimal transport: SNS across eta and n (issue 17)",
            md,
            "workbench bench ot --grid"
            + (f" --cap-s {cap:g}" if args.cap_s is not None else "")
            + (f" --rerun-max-n {args.rerun_max_n}" if rerun else "")
            + (f" --rows {args.rows} (resumed over several invocations)" if args.rows else "")
            + (" --render-only" if args.render_only else ""),
        )
    print(md if not args.json else json.dumps({"domain": "ot", "grid": True, "wall_s": total, "rows": [
        {k: v for k, v in r.items() if k != "curve"} for r in rows]}, default=float))  # fmt: skip
    return 0


def main_cloud10k(args: Any) -> int:
    """Issue 17's scale case: n = m = 10 000 point clouds at eta = 1e3 on CPU, costs from points.

    SNS via ``solve_points`` (the cost is computed blockwise from coordinates, never stored);
    capped at ``--cap-s`` of CPU time (default 300 s). Reports status, e, iterations, passes,
    CPU and wall time and the
    process's peak RSS (this mode runs alone in its process).
    """
    import resource

    import torch

    from workbench.solvers.ot import sinkhorn_newton as sns

    torch.set_num_threads(1)
    cap = args.cap_s if args.cap_s is not None else 300.0
    n = 10_000
    rng = np.random.default_rng(0)
    X, Y = rng.random((n, 2)), 0.3 + 0.8 * rng.random((n, 2))
    a, b = rng.random(n) + 0.1, rng.random(n) + 0.1
    prm = sns.Params(reg=1e-3, tol=TOL, device="cpu")
    from workbench.progress import Progress

    # Capped on this process's CPU time: on a shared machine the wall clock measures the load.
    c0, t0 = time.process_time(), time.perf_counter()
    prog = Progress(keep=1)
    prog._callback = lambda step, total, m: (
        prog.cancel() if time.process_time() - c0 > cap else None
    )
    out = sns.solve_points(X, Y, a, b, reg=1e-3, params=prm, progress=prog)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    st, h = out["stats"], out["history"]
    budget = sns.kept_budget(n, n, prm)
    kept_row = max(h["density"] or [0.0]) * n
    levels = sorted(set(h["level"]))
    reached = {
        lv: min(e for e, q in zip(h["e"], h["level"], strict=True) if q == lv) for lv in levels
    }
    md = (
        "SNS at its defaults on n = m = 10 000 points (X ~ U[0,1]^2, Y ~ U[0.3,1.1]^2, weights "
        "U + 0.1, squared distance / max), eta = 1e3, tol 1e-8 in L1, cost computed blockwise "
        f"from the coordinates; one thread, capped at {cap:g} s of this process's CPU time (the "
        "machine is shared: wall time measures its load as well). The sparsified Hessian keeps at "
        f"most {budget:,} entries ({budget / n:.0f} per row): the default memory budget "
        f"max_memory_mb = {prm.max_memory_mb:g} at {sns.KEPT_BYTES} bytes per kept entry "
        "(rule and default chosen on validation clouds of seeds 7 and 11, never on this one).\n\n"
        "| status | stop reason | "
        "e (L1) | iterations (Sinkhorn + Newton) | O(nm) passes | CPU s | wall s | peak RSS MB | "
        "largest kept pattern (per row) | stages (eta) | best e per stage |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
        f"| {out['status']} | {out['stop_reason']} | {out['marginal_error']:.1e} | "
        f"{out['iterations']} ({int(st['sinkhorn_iterations'])} + {int(st['newton_iterations'])}) | "
        f"{int(st['passes'])} | {cpu:.0f} | {wall:.0f} | {rss:.0f} | {kept_row:.0f} | "
        f"{', '.join(f'{e:g}' for e in out['etas'])} | "
        f"{', '.join(f'{reached[lv]:.1e}' for lv in levels)} |\n\n"
        "Targets (issue 17): converged on CPU in <= 120 s (CPU time) and <= 4 GB: "
        + ("**met**" if out["status"] == "converged" and cpu <= 120 and rss <= 4096 else "**missed**")
        + (f" (memory {rss:.0f} MB {'within' if rss <= 4096 else 'over'} the bound)")
        + "."
    )  # fmt: skip
    print(md)
    if not args.no_write:
        from workbench.bench import write_section

        write_section(
            "Optimal transport: 10 000-point clouds (issue 17)", md,
            f"workbench bench ot --cloud10k --cap-s {cap:g}",
        )  # fmt: skip
    return 0


CPU_TARGETS = (
    ("random_500", 500, 1200.0),
    ("random_1000", 1000, 2400.0),
    ("random_2000", 2000, 4800.0),
)
CPU_SOLVERS = ("sns", "RegOT sinkhorn_ssns", "POT sinkhorn")


def main_cpu_targets(args: Any) -> int:
    """Issue 20's speed targets timed in CPU seconds (this process, one thread): SNS against RegOT
    SSNS (and POT ``sinkhorn`` at n = 500) on random_500/1000/2000, the same problems, stopping rule and caps
    as the main section. Runs under 5 CPU s are repeated three times (median); the solvers
    alternate problem by problem so that a change of machine load hits all of them."""
    global _clock_name
    import torch

    from workbench.datasets import ot as dot

    torch.set_num_threads(1)
    _clock_name = "cpu"
    cap = args.cap_s if args.cap_s is not None else 40.0
    t_all = time.perf_counter()
    _run_one("sns", dot.random_assignment(50), 100.0, cap, curve=False)  # imports, untimed
    rows: list[dict] = []
    for label, n, eta in CPU_TARGETS:
        p = dot.random_assignment(n)
        for solver in CPU_SOLVERS if n <= 500 else CPU_SOLVERS[:2]:
            r = _run_one(solver, p, eta, cap, curve=False)
            if r["converged"] and r["wall_s"] < 5.0:
                times = [r["wall_s"]]
                for _ in range(2):
                    again = _run_one(solver, p, eta, cap, curve=False)
                    times.append(again["wall_s"] if again["converged"] else math.inf)
                r["wall_s"] = float(np.median(times))
                r["note"] = (r["note"] + "; " if r["note"] else "") + "median of 3"
            r["label"], r["key"] = label, solver
            rows.append(r)
            print(f"{label:12s} {solver:22s} it={r['iterations']!s:>7} cpu={r['wall_s']:8.3f}s "
                  f"e={r['marginal_error']:.1e} {r['note']}", file=sys.stderr, flush=True)  # fmt: skip
    table = markdown(rows).replace("| wall s |", "| CPU s |")
    tg = ["| target | measured (CPU s) | met |", "|---|---|---|"]
    for label, n, _eta in CPU_TARGETS:
        s_, g_, k_ = (
            next((r for r in rows if r["label"] == label and r["key"] == k), None)
            for k in CPU_SOLVERS
        )
        if not s_["converged"]:
            tg.append(f"| {label}: SNS reaches 1e-8 | no (e {s_['marginal_error']:.1e}) | **no** |")
            continue
        if n == 500:
            if k_ is not None and k_["converged"]:
                q = k_["wall_s"] / s_["wall_s"]
                tg.append(
                    f"| {label}: SNS >= 10x faster than POT sinkhorn | {q:.1f}x ({k_['wall_s']:.2f} / {s_['wall_s']:.2f}) | {'yes' if q >= 10 else '**no**'} |"
                )
            q = s_["wall_s"] / g_["wall_s"] if g_["converged"] else math.nan
            tg.append(
                f"| {label}: SNS within 1.5x of RegOT SSNS | SNS/RegOT = {q:.2f} ({s_['wall_s']:.2f} / {g_['wall_s']:.2f}) | {'yes' if q <= 1.5 else '**no**'} |"
            )
        else:
            q = s_["wall_s"] / g_["wall_s"] if g_["converged"] else math.nan
            tg.append(
                f"| {label}: SNS ahead of RegOT SSNS | SNS/RegOT = {q:.2f} ({s_['wall_s']:.2f} / {g_['wall_s']:.2f}) | {'yes' if q < 1 else '**no**'} |"
            )
    md = (
        "The issue 20 speed targets of the main section, timed in **CPU seconds of this process** "
        "(every solver runs on one thread: torch, BLAS and RegOT pinned) instead of wall time, which on "
        "the shared 2-core machine (load 10-20 while these sections were measured) mostly measures the "
        "other jobs. Same problems, stopping rule (recomputed L1 e <= 1e-8; POT in warm-restarted chunks "
        "and timed by one clean run; RegOT's tolerance converted by the same ladder) and defaults as the "
        f"main section; caps {cap:g} s of CPU time. POT `sinkhorn` runs at n = 500 "
        "only (the targets at n >= 1000 are against RegOT; POT's times there are in the main section). "
        "Runs under 5 CPU s: median of 3. Nothing tuned here.\n\n"
        + table + "\n\n" + "\n".join(tg)
        + f"\n\nThis invocation: {time.perf_counter() - t_all:.0f} s of wall time.\n"
    )  # fmt: skip
    print(md)
    if not args.no_write:
        from workbench.bench import write_section

        write_section(
            "Optimal transport: issue 20 targets in CPU time", md,
            "workbench bench ot --cpu-targets" + (f" --cap-s {cap:g}" if args.cap_s is not None else ""),
        )  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks/ot.py", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="random_500, gauss_clouds and an easy eta: a few minutes, no BENCHMARKS.md")  # fmt: skip
    ap.add_argument("--check", action="store_true",
                    help="after the run, fail (exit 1) on a correctness problem, never on time")  # fmt: skip
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--cap-s", type=float, default=None,
                    help="wall-time cap per run, the same for every solver (default 60 s, 20 s with --quick)")  # fmt: skip
    ap.add_argument("--only", default="", help="comma-separated problem labels to run")
    ap.add_argument("--rows", default="", help="JSON-lines file to append rows to (resumable runs)")
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    ap.add_argument(
        "--note",
        default="",
        help="--grid: a sentence added to the protocol (how the rows were gathered)",
    )
    ap.add_argument("--grid", action="store_true",
                    help="issue 17: SNS vs RegOT SSNS vs POT sinkhorn_log over eta x n x cost (reduced grid)")  # fmt: skip
    ap.add_argument("--pot-max-n", type=int, default=60, help="--grid: largest n for POT")
    ap.add_argument("--sns-only", action="store_true",
                    help="--grid: re-measure SNS on the cells already in --rows, keep the peers' rows")  # fmt: skip
    ap.add_argument("--regot-only", action="store_true",
                    help="--grid: re-measure RegOT on the cells already in --rows, keep the other rows")  # fmt: skip
    ap.add_argument("--rerun-max-n", type=int, default=0,
                    help="--grid with --rows: re-measure every solver of the cells with n <= this, "
                         "keep the other cells' rows (the section names the cells rerun)")  # fmt: skip
    ap.add_argument("--render-only", action="store_true",
                    help="--grid: only render the cells already in --rows (the others are listed as not run)")  # fmt: skip
    ap.add_argument("--cloud10k", action="store_true",
                    help="issue 17: SNS on n = m = 10 000 point clouds at eta = 1e3 (capped, default 300 s)")  # fmt: skip
    ap.add_argument("--cpu-targets", action="store_true",
                    help="issue 20: SNS vs RegOT SSNS vs POT sinkhorn on random_500/1000/2000 in CPU seconds")  # fmt: skip
    args = ap.parse_args(argv)
    if args.cpu_targets:
        return main_cpu_targets(args)
    if args.cloud10k:
        return main_cloud10k(args)
    if args.grid:
        return main_grid(args)
    cap = args.cap_s if args.cap_s is not None else (20.0 if args.quick else 60.0)
    import torch

    torch.set_num_threads(1)
    log = sys.stderr if args.json else sys.stdout
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    done: list[dict] = []
    if args.rows and Path(args.rows).exists():
        done = [json.loads(s) for s in Path(args.rows).read_text().splitlines() if s.strip()]
    specs = [sp for sp in problems(args.quick) if not only or sp[0] in only]
    rows: list[dict] = []
    t_all = time.perf_counter()
    for label, p, eta, solvers in specs:
        for solver in solvers:
            prev = next((r for r in done if r["label"] == label and r["key"] == solver), None)
            if prev is not None:
                rows.append(prev)
                continue
            r = run_one(solver, p, eta, cap)
            r["label"], r["key"] = label, solver
            rows.append(r)
            print(f"{label:28s} {solver:22s} it={r['iterations']!s:>9} passes={r['passes']!s:>7} "
                  f"t={r['wall_s']:8.3f}s e={r['marginal_error']:.1e} {r['note']}",
                  file=log, flush=True)  # fmt: skip
            if args.rows:
                with open(args.rows, "a") as fh:
                    fh.write(json.dumps(r, default=float) + "\n")
    recs = recommendations(rows, specs)
    total = time.perf_counter() - t_all
    md = (
        PROTOCOL
        + "\n\n"
        + markdown(rows)
        + "\n\n### Targets (issue 20, spec ot.md §9)\n\n"
        + targets(rows, recs)
        + "\n\n### Solver recommendation (timed probe of both solvers; workbench.solvers.ot.recommend)\n\n"
        + "'right?' compares the pick with the faster of the two workbench solvers measured in the "
        "table above (our Sinkhorn and SNS; a capped Sinkhorn run counts as slower).\n\n"
        + recommendation_rows(rows, recs)
        + "\n\n### RegOT sinkhorn_sparse_newton\n\n"
        + REGOT_SPARSE_REASON
        + (" The search, rerun:\n\n" + regot_sparse_validation() if not args.quick else "")
    )
    png = None
    if not args.quick and not only:  # a partial or quick run keeps the stored curves
        out_json, png = write_curves(rows, args.quick)
    if png is not None:
        md += (
            f"\n\n### Error against time\n\nEvery solver's recomputed L1 error against wall time "
            f"(RegOT: truncated reruns) on {', '.join(FIGURE_LABELS)}: "
            f"![OT error against time](docs/{png.name}). All curves: `benchmarks/results/"
            f"{out_json.name}` (shown on the OT page)."
        )
    md += f"\n\nThis invocation: {time.perf_counter() - t_all:.0f} s (solver runs {total:.0f} s).\n"
    if not args.no_write and not args.quick and not only:
        from workbench.bench import write_section

        cmd = "workbench bench ot" + (f" --cap-s {cap:g}" if args.cap_s is not None else "")
        write_section("Optimal transport", md, cmd)
    if args.json:
        summary: dict[str, Any] = {"domain": "ot", "quick": args.quick, "wall_s": round(total, 2),
                                   "solvers": {}, "rows": [{k: v for k, v in r.items() if k != "curve"} for r in rows]}  # fmt: skip
        for r in rows:
            if r["label"] == rows[0]["label"]:
                summary["solvers"][r["key"]] = {
                    "problem": r["label"],
                    "iterations": r.get("iterations_total", r["iterations"]),
                    "passes": r["passes"],
                    "wall_s": r["wall_s"],
                    "marginal_error": r["marginal_error"],
                    "converged": r["converged"],
                }
        print(json.dumps(summary, default=str))
    else:
        print(md)
    if args.check:
        run_checks(rows, specs)
        print("ot: --check passed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
