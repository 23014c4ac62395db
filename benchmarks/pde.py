"""PDE benchmark (issue 6, spec pde.md §8): reference accuracy, GP-HM (StM, GM) against GP-SE,
PINN and Fourier-feature PINN on the 1-D and 2-D presets, Kronecker correctness and memory.

Every number is re-measured here, in one process on the same machine; iterative solvers report
the final error (``rel_l2``, after the exact finish), the last Adam iterate and, separately, the
oracle best over test-grid checkpoints.

    workbench bench pde [--quick] [--json] [--budget key=steps,...] [--only GROUPS] [--no-write]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

# full / quick budgets (Adam steps), sized so that one `workbench bench pde` finishes in about
# 40 minutes on the shared 2-core build machine
BUDGET = {
    "gp1": (8000, 1000),
    "gp2": (3000, 300),
    "gm": (2000, 300),
    "se": (1000, 200),
    "gp4_128": (8000, 50),
    "gp4_200": (2000, 0),  # 0 in --quick: the 200² finish alone takes minutes
    "gp4_400": (1500, 0),  # 0: not run (the finish alone takes minutes at 400²)
    "gp6_1d": (500, 100),
    "gp6_2d": (300, 20),
    "qsweep": (1500, 200),
    # PINN baseline on poisson1d_sin10 (Adam steps + L-BFGS iterations) and the sampler benchmark:
    # K stages of n_θ Adam steps, then the finish (Levenberg–Marquardt, the staged solvers'
    # default); N interior points (spec AS1 asks K = 10 × 1000 + 500 L-BFGS; the CPU budget
    # below is smaller and said so in the section)
    "pinn_adam": (2000, 300),
    # the PINN's default: 2000 Adam + 500 finish iterations (Levenberg–Marquardt in 1-D; see
    # pinn.py, chosen on validation problems, never on poisson1d_sin10)
    "pinn_finish": (500, 20),
    "as_stages": (4, 2),
    "as_stage_steps": (150, 20),
    "as_finish": (100, 10),
    "as_points": (500, 200),
    "as_seeds": (1, 1),
    "as_candidates": (0, 2000),  # RAR/RAD candidates per stage (0 = the solvers' default, 100k)
    # LM iterations at the end of every stage but the last (the staged solvers' stage_lm)
    "as_stage_lm": (0, 0),
    "as_workers": (3, 2),  # forked single-thread worker processes of the AS group
    "pinn_seeds": (5, 1),
    "ho": (5000, 300),  # held-out GP-HM problems: the frozen default max_iter (5000) in full runs
}

# the third 2-D problem of the sampler benchmark, fixed before any sampler was run and never used
# to choose a setting: a circular front of width ~0.04 at radius 0.5, with non-zero boundary data
RING2D = dict(
    operator="poisson",
    box=((-1.0, 1.0), (-1.0, 1.0)),
    variables=("x", "y"),
    exact="tanh(25*(x**2 + y**2 - 0.25))",
    n_col=(64, 64),
)


def _ci(values) -> str:
    """Seeded percentile-bootstrap interval of the median over seeds (workbench.bench)."""
    from workbench.bench import bootstrap_ci

    lo, hi = bootstrap_ci(values, stat=np.median)
    return "n/a (1 seed)" if not np.isfinite(lo) else f"[{lo:.2g}, {hi:.2g}]"


def _hist_at(h: dict, step: int) -> float | None:
    steps = h.get("step", [])
    for s, e in zip(steps, h.get("rel_l2", []), strict=False):
        if int(s) == step:
            return float(e)
    return None


def _time_to(h: dict, level: float) -> float | None:
    for t, e in zip(h.get("time", []), h.get("rel_l2", []), strict=False):
        if e <= level:
            return float(t)
    return None


def _row(name: str, solver: str, problem: str, r, **extra: Any) -> dict:
    m = r.metrics
    row = {
        "id": name,
        "solver": solver,
        "problem": problem,
        "steps": r.iterations,
        "rel_l2": m.get("rel_l2_final", m.get("rel_l2")),
        "Adam final": m.get("rel_l2_adam_final"),
        "best (oracle)": m.get("rel_l2_best"),
        "best step": m.get("rel_l2_best_step"),
        "wall_s": r.meta.get("wall_s"),
        "s/step": m.get("s_per_step"),
    }
    if m.get("finish_converged") is not None:
        row["_finish_converged"] = m["finish_converged"]
    sel = r.extras.get("selection") if isinstance(r.extras, dict) else None
    if sel:
        # the default 1-D rule: which candidate was kept, and GP-HM with Adam alone beside it
        row["kept"] = f"{sel['chosen']}, {sel['chosen_step']}"
        row["estimate"] = m.get("error_estimate")
        row["Adam only"] = m.get("rel_l2_adam_only")
    if m.get("loss_final") is not None and m.get("loss_adam_final") is not None:
        row["loss Adam → finish"] = f"{m['loss_adam_final']:.4g} → {m['loss_final']:.4g}"
    row.update(extra)
    return row


def run_reference(quick: bool) -> list[dict]:
    from workbench.datasets.pde import make_preset
    from workbench.physics.pde import cheb, fd
    from workbench.physics.pde import spectral as S
    from workbench.physics.pde.compiled import compile_problem
    from workbench.physics.pde.metrics import rel_l2
    from workbench.problems import PDEProblem
    from workbench.solvers.pde import reference

    rows = []
    p = make_preset("poisson1d_sin100")
    t = time.perf_counter()
    r = reference.solve(p, reference.Params(method="chebyshev", n=400))
    rows.append(
        {
            "id": "R1",
            "solver": "reference (Chebyshev N=400)",
            "problem": p.name,
            "steps": 1,
            "rel_l2": r.metrics["rel_l2"],
            "wall_s": time.perf_counter() - t,
            "target": "<= 1e-9 in < 1 s",
        }
    )
    q = PDEProblem(box=((0.0, 1.0),), exact="sin(3*x) + x**2")
    errs = [
        reference.solve(q, reference.Params(method="fd", n=n)).metrics["rel_l2"]
        for n in (64, 128, 256, 512)
    ]
    order = float(np.mean(np.log2(np.array(errs[:-1]) / np.array(errs[1:]))))
    rows.append(
        {
            "id": "R1",
            "solver": "reference (FD, n = 64..512)",
            "problem": "sin(3x)+x² on [0,1]",
            "rel_l2": errs[-1],
            "note": f"observed order {order:.3f}",
            "target": "order 2 ± 0.15",
        }
    )
    nl = make_preset("nlpoisson1d_param")
    comp = compile_problem(nl)
    x = np.linspace(-1, 1, 201)
    t = time.perf_counter()
    u, it, _ = fd.solve_1d("nl_poisson", x, comp.source(x), 0.0, 0.0, comp.coeffs)
    wall = time.perf_counter() - t
    xc, uc, _, _ = cheb.solve_1d("nl_poisson", 128, nl.box, comp.source, (0.0, 0.0), comp.coeffs)
    rows.append(
        {
            "id": "R1",
            "solver": "reference (FD Newton, 201 nodes)",
            "problem": nl.name,
            "steps": it,
            "rel_l2": rel_l2(u, S.bary_matrix(xc, x) @ uc),
            "wall_s": wall,
            "note": "vs Chebyshev N=128",
            "target": "<= 5e-5, <= 8 Newton steps",
        }
    )
    if quick:  # the 2-D Chebyshev reference takes ~40 s; --quick checks the 1-D ones
        return rows
    p2 = make_preset("poisson2d_sin100")
    t = time.perf_counter()
    r = reference.solve(p2, reference.Params())
    rows.append(
        {
            "id": "R1",
            "solver": f"reference (Chebyshev 2-D, N={r.extras['n']})",
            "problem": p2.name,
            "rel_l2": r.metrics["rel_l2"],
            "wall_s": time.perf_counter() - t,
        }
    )
    return rows


def run_gp1(quick: bool, kernel: str = "stm", steps: int | None = None) -> tuple[list[dict], Any]:
    from workbench.datasets.pde import make_preset
    from workbench.solvers.pde import gp_hm

    p = make_preset("poisson1d_sin100")
    n = steps or BUDGET["gp1"][quick]
    r = gp_hm.solve(p, gp_hm.Params(kernel=kernel, max_iter=n, n_checkpoints=max(1, n // 200)))
    return gp1_rows(r, kernel, n), r


def gp1_rows(r, kernel: str, n: int) -> list[dict]:
    """Rows of a finished GP-HM run on poisson1d_sin100 (final, Adam final, best, 2k/3k errors)."""
    h = r.history
    note = "; ".join(
        f"Adam at {s // 1000}k: {_hist_at(h, s):.2e}"
        for s in (2000, 3000, 10000)
        if s < n and _hist_at(h, s) is not None
    )
    u = r.extras.get("u_solves", [{}])[-1]
    if u:
        note = (
            note + f"; finish {u['time_s']:.1f} s: U exact (→ {u['trace'][0]['rel_l2']:.2e}), then "
            f"τ_b, v closed-form and U again (→ {u['trace'][-1]['rel_l2']:.2e})"
        ).lstrip("; ")
    row = _row(
        "GP1" if kernel == "stm" else "GP6",
        f"gp_hm {kernel}, Adam lr 1e-2 constant, β₂ 0.99 + exact finish",
        "poisson1d_sin100",
        r,
        note=note,
    )
    row["time_to_1e-3_s"] = _time_to(h, 1e-3)
    if kernel == "stm":
        row["target"] = "final <= 2e-4 within 600 s"
    return [row]


def spectrum_row(r) -> dict:
    w = np.asarray(r.extras["weights_x"])
    f = np.asarray(r.extras["freqs_x"])
    keep = w >= 1e-3 * w.max()
    big = int(np.sum(keep))
    fdom = float(f[np.argmax(w)])
    # the surviving components may sit at one frequency (a split peak) or at several
    peaks = len({round(float(x) / (0.01 * fdom)) for x in f[keep]}) if fdom > 0 else big
    return {
        "id": "GP5",
        "solver": "gp_hm stm spectrum",
        "problem": "poisson1d_sin100",
        "note": f"{big} of {len(w)} weights within 1e-3 of the largest, at {peaks} distinct frequencies (1% bins: {np.array2string(np.sort(f[keep]), precision=3, max_line_width=10**4)}); dominant f = {fdom:.3f} (target 100/2π = 15.915, {100 * abs(fdom - 15.915) / 15.915:.2f}% off)",
        "target": "<= 5 weights; f within 2%",
    }


def run_gp2(quick: bool) -> list[dict]:
    """GP-HM, PINN and Fourier-feature PINN on the same 400 points with the same step budget."""
    from workbench.datasets.pde import make_preset
    from workbench.solvers.pde import gp_hm, pinn, pinn_fourier

    p = make_preset("poisson1d_sin100")
    n = BUDGET["gp2"][quick]
    g = gp_hm.solve(p, gp_hm.Params(max_iter=n, n_checkpoints=20))
    rows = [_row("GP2", "gp_hm stm + exact finish", p.name, g)]
    gerr = g.metrics["rel_l2_final"]
    # the balanced PINN (exact BCs, scaling, normalised residual): Adam for 5/6 of the steps,
    # then L-BFGS, on the same 400 points
    adam = n - n // 6
    r = pinn.solve(
        p,
        pinn.Params(width=100, depth=3, max_iter=n, adam_iter=adam, lr=1e-3, n_checkpoints=20),
    )
    rf = pinn_fourier.solve(
        p,
        pinn_fourier.Params(
            width=100,
            depth=3,
            max_iter=n,
            adam_iter=adam,
            lr=1e-3,
            n_features=64,
            n_checkpoints=20,  # σ = 0: from the source term's spectrum, not the answer's 100/2π
        ),
    )
    for name, res in (
        ("pinn 3×100 tanh, exact BCs, Adam 1e-3 then L-BFGS", r),
        (f"pinn_fourier 64 RFF σ={rf.extras.get('fourier_sigma', 0):.3g} (source) + 3×100", rf),
    ):
        e = res.metrics["rel_l2_final"]
        rows.append(
            _row(
                "GP2",
                name,
                p.name,
                res,
                note=f"collocation residual (rms, rel) {res.metrics['residual_rms_rel']:.2e}; "
                f"PINN / GP-HM final = {e / gerr:.3g}×",
                target=">= 50× GP-HM's error at the same steps",
            )
        )
    return rows


def run_gm_se(quick: bool) -> list[dict]:
    from workbench.datasets.pde import make_preset
    from workbench.solvers.pde import gp_hm, gp_se

    p = make_preset("poisson1d_sin100")
    n = BUDGET["gm"][quick]
    r = gp_hm.solve(p, gp_hm.Params(kernel="gm", max_iter=n, n_checkpoints=20))
    rows = [_row("GP6", "gp_hm gm + exact finish", p.name, r)]
    n = BUDGET["se"][quick]
    r = gp_se.solve(p, gp_se.Params(max_iter=n, n_checkpoints=20))
    rows.append(_row("GP6", "gp_se + exact finish", p.name, r))
    return rows


def run_gp3(quick: bool) -> list[dict]:
    import torch

    from workbench.solvers.pde.gp import kron_terms
    from workbench.solvers.pde.kernels import ToeplitzGrid

    dt = torch.float64
    n = 20
    t = [ToeplitzGrid(n, 0.3), ToeplitzGrid(n, 0.3)]
    q = 5
    kp = [
        (
            torch.full((q,), -1.0, dtype=dt),
            torch.linspace(0, 5, q, dtype=dt),
            torch.zeros(q, dtype=dt),
        )
    ] * 2
    U = torch.randn(n, n, generator=torch.Generator().manual_seed(0), dtype=dt)
    ld, W, der = kron_terms("stm", t, kp, U, 1e-6, {"xx", "yy"})
    mats = [t[d].matrices("stm", *kp[d]) for d in range(2)]
    K1 = mats[0][0] + 1e-6 * torch.eye(n, dtype=dt)
    K = torch.kron(K1, K1)
    a = torch.linalg.solve(K, U.reshape(-1))
    loss_k = 0.5 * float(ld) + 0.5 * float((U * W).sum())
    loss_d = 0.5 * float(torch.logdet(K)) + 0.5 * float(U.reshape(-1) @ a)
    lap_d = (torch.kron(mats[0][2], K1) + torch.kron(K1, mats[1][2])) @ a
    lap_k = (der["xx"] + der["yy"]).reshape(-1)
    rel_loss = abs(loss_k - loss_d) / abs(loss_d)
    rel_lap = float((lap_k - lap_d).norm() / lap_d.norm())
    rows = [
        {
            "id": "GP3",
            "solver": "Kronecker vs dense K (20×20)",
            "problem": "random U, StM Q=5",
            "rel_l2": max(rel_loss, rel_lap),
            "note": f"loss rel diff {rel_loss:.1e}; Laplacian rel diff {rel_lap:.1e}",
            "target": "agree to 1e-10",
        }
    ]
    from workbench.problems import PDEProblem
    from workbench.solvers.pde import gp_hm

    p = PDEProblem(
        box=((0.0, 6.283185307179586),) * 2,
        variables=("x", "y"),
        exact="sin(6*x)*cos(20*x) + sin(6*y)*cos(20*y)",
        n_col=(128, 128),
        freq_scale=20.0,
    )
    r = gp_hm.solve(p, gp_hm.Params(max_iter=20, n_checkpoints=1, exact_u=False))
    rows.append(
        {
            "id": "GP3",
            "solver": "gp_hm stm step time at 128²",
            "problem": "poisson2d_sin6cos20 @128²",
            "steps": 20,
            "s/step": r.metrics["s_per_step"],
            "target": "<= 0.2 s per step",
        }
    )
    return rows


_CHILD = r"""
import json, resource, sys, torch
torch.set_num_threads(1)
from workbench.datasets.pde import make_preset
from workbench.solvers.pde import gp_hm
name, n, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
extra = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
p = make_preset(name, n_col=n)
import threading, time
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
gp_hm.solve(p, gp_hm.Params(max_iter=2, n_col=16))  # warm-up: imports, lazy allocations
base = rss_mb()
high, done = [base], threading.Event()
def sample():
    while not done.is_set():
        high[0] = max(high[0], rss_mb()); time.sleep(0.02)
th = threading.Thread(target=sample, daemon=True); th.start()
r = gp_hm.solve(p, gp_hm.Params(max_iter=steps, n_checkpoints=max(1, steps // 10), **extra))
done.set(); th.join()
peak = max(high[0], rss_mb()) * 1024
u = r.extras.get("u_solves", [{}])[-1]
f = {d: float(r.extras["freqs_" + d][r.extras["weights_" + d].argmax()]) for d in "xy"}
print(json.dumps({"metrics": r.metrics, "iterations": r.iterations, "wall_s": r.meta["wall_s"],
                  "peak_rss_mb": peak / 1024, "rss_before_mb": base,
                  "freq_scale": r.extras["freq_scale"], "fdom": f,
                  "cg_iter": u.get("cg_iter"), "finish_s": u.get("time_s"),
                  "trace": [t["rel_l2"] for t in u.get("trace", [])]}))
"""


def alias_check(n: int = 200) -> dict:
    """Why poisson2d_sin100 at n² nodes on [0, 2π]² is not identifiable from collocation data.

    With h = 2π/(n - 1) and n = 200, the alias frequency ω_a = 2π/h - 100 = 99 gives
    sin(ω_a x_i) = -sin(100 x_i) at every node, so u_a = (100/ω_a)² sin(ω_a x) sin(ω_a y) is a
    smooth function with Δu_a = f and u_a = 0 on the boundary at every collocation node: a method
    that sees f and g only at those nodes cannot tell it from sin(100x) sin(100y)."""
    x = np.linspace(0.0, 2 * np.pi, n)
    wa = 2 * np.pi / (x[1] - x[0]) - 100.0
    X, Y = np.meshgrid(x, x, indexing="ij")
    f = -2e4 * np.sin(100 * X) * np.sin(100 * Y)
    c = (100.0 / wa) ** 2
    ua = c * np.sin(wa * X) * np.sin(wa * Y)
    res = np.abs(-2 * wa**2 * ua - f).max() / np.abs(f).max()
    bnd = max(np.abs(ua[[0, -1], :]).max(), np.abs(ua[:, [0, -1]]).max())
    xt = np.linspace(0.0, 2 * np.pi, 1001)
    XT, YT = np.meshgrid(xt, xt, indexing="ij")
    ut = np.sin(100 * XT) * np.sin(100 * YT)
    err = np.linalg.norm(c * np.sin(wa * XT) * np.sin(wa * YT) - ut) / np.linalg.norm(ut)
    return {
        "id": "GP4",
        "solver": "alias check (no solver)",
        "problem": f"poisson2d_sin100 @{n}²",
        "rel_l2": float(err),
        "note": f"u_a = {c:.4f}·sin({wa:.0f}x)·sin({wa:.0f}y) satisfies every collocation equation "
        f"(max |Δu_a − f| / max |f| = {res:.1e}, max |u_a| on ∂Ω = {bnd:.1e}) yet is this far from "
        "sin(100x)sin(100y): at 200² the grid is past Nyquist and the target is not identifiable "
        "from the data; the paper's grid is 400²",
        "target": "(diagnostic)",
    }


def run_gp4(quick: bool) -> list[dict]:
    """2-D GP-HM through the Kronecker path in a child process whose peak RSS is measured."""
    rows = []
    # the 400² row uses Adam β₂ = 0.9: with the default 0.99 the kernel had not found the
    # solution's frequency after 1500 steps (8.0e-2 with automatic exact steps, 895 s; measured
    # separately on 2026-11-30, not in this run)
    for name, n, key, target, extra in (
        ("poisson2d_sin6cos20", 128, "gp4_128", "<= 1e-2 within 600 s", {}),
        ("poisson2d_sin100", 200, "gp4_200", "no (N₁N₂)² matrix; memory reported", {}),
        (
            "poisson2d_sin100",
            400,
            "gp4_400",
            "(the paper's grid; no target)",
            {"adam_beta2": 0.9, "exact_every": 0},
        ),
    ):
        steps = BUDGET[key][quick]
        if steps == 0:
            continue
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, name, str(n), str(steps), json.dumps(extra)],
            capture_output=True,
            text=True,
            check=True,
        )
        d = json.loads(out.stdout.strip().splitlines()[-1])
        m = d["metrics"]
        dense_gb = (n * n) ** 2 * 8 / 1e9
        rows.append(
            {
                "id": "GP4",
                "solver": "gp_hm stm (Kronecker) + exact finish (PCG)"
                + "".join(f", {k} = {v}" for k, v in extra.items()),
                "problem": f"{name} @{n}²",
                "steps": d["iterations"],
                "rel_l2": m["rel_l2_final"],
                "Adam final": m.get("rel_l2_adam_final"),
                "best (oracle)": m["rel_l2_best"],
                "best step": m["rel_l2_best_step"],
                "wall_s": d["wall_s"],
                "s/step": (d["wall_s"] - (d["finish_s"] or 0.0)) / max(1, d["iterations"]),
                "note": f"peak RSS during the solve {d['peak_rss_mb']:.0f} MB, "
                f"{d['peak_rss_mb'] - d['rss_before_mb']:.0f} MB above the warmed-up process before it "
                f"(/proc VmRSS sampled every 20 ms); dense K would be {dense_gb:.1f} GB; "
                f"F = {d['freq_scale']:.2f}; dominant f = {d['fdom']['x']:.3f}, {d['fdom']['y']:.3f}; "
                f"finish {d['finish_s']:.0f} s, {d['cg_iter']} CG iterations, "
                f"{'converged' if m.get('finish_converged', 1.0) else 'NOT converged (CG cap)'} "
                f"(worst CG rel residual {m.get('finish_cg_rel_residual', float('nan')):.1e}, "
                f"final ‖∇L‖ / initial {m.get('finish_grad_rel', float('nan')):.1e}): U exact at "
                f"Adam's τ_b, v → {d['trace'][0]:.2e}, after the precision sweep → {d['trace'][-1]:.2e}",
                "_finish_converged": m.get("finish_converged"),
                "target": target,
            }
        )
    rows.append(alias_check(200))
    return rows


def run_gp6(quick: bool) -> list[dict]:
    from workbench.datasets.pde import PRESETS, make_preset
    from workbench.solvers.pde import gp_hm, reference

    rows = []
    for name in PRESETS:
        p = make_preset(name)
        if p.operator in ("nl_poisson", "burgers") or name in ("poisson1d_sin10",):
            continue
        t = time.perf_counter()
        # allencahn2d_mix's reference is capped at 256 Chebyshev points per dimension (it
        # needs ~7 min at the default 768 cap on this CPU); the others run at the defaults
        rr = reference.solve(p, reference.Params(n_max=256 if name == "allencahn2d_mix" else 0))
        rows.append(
            {
                "id": "GP6",
                "solver": "reference",
                "problem": name,
                "rel_l2": rr.metrics.get("rel_l2"),
                "wall_s": time.perf_counter() - t,
            }
        )
        if p.dim == 2 and name.startswith("peak"):
            continue
        steps = BUDGET["gp6_1d" if p.dim == 1 else "gp6_2d"][quick]
        n_col = 0 if p.dim == 1 else 64
        r = gp_hm.solve(p, gp_hm.Params(max_iter=steps, n_col=n_col, n_checkpoints=10))
        rows.append(
            _row(
                "GP6",
                f"gp_hm stm{' @64²' if n_col else ''}",
                name,
                r,
                note=f"F = {r.extras['freq_scale']:.3g}",
            )
        )
    p = make_preset("poisson1d_sin100")
    for q in (10, 30, 60):
        r = gp_hm.solve(p, gp_hm.Params(q=q, max_iter=BUDGET["qsweep"][quick], n_checkpoints=10))
        rows.append(_row("GP6", f"gp_hm stm Q={q}", p.name, r))
    return rows


# Held-out problems for GP-HM (issue 20), fixed on 2026-12-07 before any GP-HM run on them and
# never used to choose a setting: other frequencies, mixed scales, a growing amplitude with
# non-zero boundary data, and another (nonlinear) operator. They enter as a user's JSON file would
# (no n_col, no freq_scale), so the grid (about 8 points per period of the source's highest
# significant frequency) and GP-HM's F both come from the source term, never the exact solution.
HELD_OUT = {
    "ho_poisson_growing": dict(operator="poisson", domain=[[0.0, 2.0]], exact="exp(x/2)*sin(25*x)"),
    "ho_poisson_unit_mix": dict(
        operator="poisson", domain=[[0.0, 1.0]], exact="sin(3*x) + 0.05*sin(150*x)"
    ),
    "ho_poisson_sin37": dict(operator="poisson", domain=[[0.0, 2 * np.pi]], exact="sin(37*x)"),
    "ho_allencahn_cos45": dict(operator="allen_cahn", domain=[[0.0, 2 * np.pi]], exact="cos(45*x)"),
    "ho_poisson_mixscale": dict(
        operator="poisson", domain=[[0.0, 2 * np.pi]], exact="sin(2*x) + 0.2*cos(61*x)"
    ),
}
# New mixed-scale *validation* problems (issue 20, second round), defined on 2026-12-07 after the
# first held-out set above exposed GP-HM's failure on mixed scales, and before any run on them:
# the change of default that followed was chosen on these (with the first-round validation
# problems), so their rows are validation numbers, not test numbers. Like the failing pair, each
# has a low-frequency part of amplitude ~1 and a small high-frequency part that dominates the
# source (its share of the source's power is below frequency.POWER_FLOOR or close to it).
VALIDATION_MIX = {
    "val_mix_sin1_40": dict(
        operator="poisson", domain=[[0.0, 2 * np.pi]], exact="sin(x) + 0.1*sin(40*x)"
    ),
    "val_mix_poly_120": dict(
        operator="poisson", domain=[[0.0, 1.0]], exact="x**2 - x/2 + 0.02*sin(120*x)"
    ),
    "val_mix_ac_60": dict(
        operator="allen_cahn", domain=[[0.0, 3.0]], exact="cos(2*x) + 0.1*sin(60*x)"
    ),
}
# The second held-out *test* set (issue 20, second round), fixed in code on 2026-12-07 before any
# run on it and never used to choose a setting: three-scale and other mixed-scale solutions
# (exponential, offset cosine, Gaussian bump under a small fast wave), another single frequency
# on another interval, and mixed scales under the nonlinear Allen–Cahn operator. The first set
# (HELD_OUT) was looked at to diagnose the mixed-scale failure, so it is no longer a test set.
HELD_OUT_2 = {
    "ho2_poisson_mix3": dict(
        operator="poisson",
        domain=[[0.0, np.pi]],
        exact="sin(5*x) + 0.1*sin(30*x) + 0.02*sin(120*x)",
    ),
    "ho2_poisson_exp_mix": dict(
        operator="poisson", domain=[[0.0, 2.0]], exact="exp(-x) + 0.05*sin(100*x)"
    ),
    "ho2_poisson_cos_offset": dict(
        operator="poisson", domain=[[-1.0, 2.0]], exact="cos(1.5*x) + 0.1*cos(70*x)"
    ),
    "ho2_poisson_bump_mix": dict(
        operator="poisson", domain=[[0.0, 1.5]], exact="exp(-20*(x - 0.5)**2) + 0.03*sin(90*x)"
    ),
    "ho2_poisson_sin70": dict(operator="poisson", domain=[[0.0, 3.0]], exact="sin(70*x)"),
    "ho2_allencahn_mix": dict(
        operator="allen_cahn", domain=[[0.0, 2 * np.pi]], exact="sin(2*x) + 0.1*sin(50*x)"
    ),
}
# The THIRD held-out *test* set (issue 20, third round), fixed in code on 2026-12-07 before any
# run on it and never used to choose a setting: mixed scales with other smooth parts (a cosine,
# a tanh front), another single frequency on another interval, a chirp (a frequency that varies
# across the box, which no single spectral line describes), mixed scales under Allen–Cahn, and
# another operator (the nonlinear Poisson (κ(u) u′)′ with κ = softplus(u·a(x)) + 0.1).
HELD_OUT_3 = {
    "ho3_poisson_cos_mix": dict(
        operator="poisson", domain=[[0.0, 2.5]], exact="cos(3*x) + 0.08*sin(55*x)"
    ),
    "ho3_poisson_tanh_mix": dict(
        operator="poisson", domain=[[0.0, 2.0]], exact="tanh(3*(x - 1)) + 0.04*sin(80*x)"
    ),
    "ho3_poisson_sin90": dict(operator="poisson", domain=[[0.0, 1.5]], exact="sin(90*x)"),
    "ho3_poisson_chirp": dict(operator="poisson", domain=[[0.0, 3.0]], exact="sin(20*x + 4*x**2)"),
    "ho3_allencahn_mix": dict(
        operator="allen_cahn", domain=[[0.0, 4.0]], exact="0.5*cos(x) + 0.1*sin(40*x)"
    ),
    "ho3_nlpoisson_mix": dict(
        operator="nl_poisson",
        domain=[[-1.0, 1.0]],
        exact="0.3*sin(2*x) + 0.02*sin(30*x)",
        params={"z0": 0.5, "z1": -0.4},
    ),
}
# the validation problems the frozen defaults were chosen on (see gp_hm.py)
VALIDATION = "poisson1d_sin100, poisson2d_sin6cos20 @128², sin(3x) + x² on 32 points"
PROTOCOL = (
    "**Protocol.** What was tuned: GP-HM's defaults (Adam β₂ = 0.99, `exact_rounds` 2, "
    "`exact_every` automatic) were chosen by looking at errors on the validation problems "
    f"{VALIDATION}, and are frozen (gp_hm.py); the 1-D rule `warm_start=select` (third "
    "round) has no threshold and was checked on the validation problems of 'PDE: GP-HM "
    "mixed-scale validation'; lr 1e-2 and Q = 30 are the paper's. No preset "
    "carries a frequency bound any more: F (and the Fourier PINN's σ) come from the source "
    "term's spectrum, never from the exact solution. The rows of this section on those "
    "problems are therefore validation numbers; the held-out test numbers are in 'PDE: GP-HM "
    "held-out problems'. Budget: a fixed number of Adam steps per row, the same for the peers "
    "of a row group (GP2: GP-HM, PINN and Fourier PINN all get gp2 steps on the same 400 "
    "points); no run is stopped or selected on test data (`best (oracle)` is shown, never used). "
    "GP-HM is deterministic (its seed is recorded only), so its rows are single runs; the "
    "stochastic PINN rows are here single seeds (GP2) and, with seeds and bootstrap intervals, "
    "in 'PDE: PINN baseline'."
)


# Single-scale *validation* problems (issue 20, third round), defined on 2026-12-07 before any run
# on them, beside VALIDATION_MIX: the default rule (warm_start = "select", gp_hm.py) was checked on
# these two sets only. A rule must not give up the single-frequency accuracy of the paper's start
# (the warm start alone lost it: poisson1d_sin100 5.6e-7 → 2.9e-3).
VALIDATION_SINGLE = {
    "val_single_sin45": dict(operator="poisson", domain=[[0.0, 2.0]], exact="sin(45*x)"),
    "val_single_ac_cos35": dict(operator="allen_cahn", domain=[[0.0, 2.5]], exact="cos(35*x)"),
}
# Chirp *validation* problems (issue 20, fourth round), defined on 2026-12-07 after the third
# held-out set's chirp (HO3) missed 1e-3, and before any run on them: other chirp rates (slower,
# faster, a frequency that falls across the box), another amplitude and non-zero boundary data.
# Any change of the 1-D defaults for chirps is chosen on these (with the problems above), never
# on HO3's chirp, which is test data looked at, nor on HELD_OUT_4.
VALIDATION_CHIRP = {
    "val_chirp_slow": dict(operator="poisson", domain=[[0.0, 4.0]], exact="sin(12*x + 2*x**2)"),
    "val_chirp_amp": dict(operator="poisson", domain=[[0.0, 2.0]], exact="0.3*sin(25*x + 8*x**2)"),
    "val_chirp_down": dict(operator="poisson", domain=[[0.0, 3.0]], exact="1 + sin(30*x - 4*x**2)"),
}
VALIDATION_ALL = {**VALIDATION_MIX, **VALIDATION_SINGLE, **VALIDATION_CHIRP}
# The FOURTH held-out *test* set (issue 20, fourth round), fixed in code on 2026-12-07 and
# committed before any run on it; never used to choose a setting: another single frequency with
# non-zero boundary data, mixed scales, a chirp of another rate (6, HO3's was 4) and one whose
# frequency falls across the box, mixed scales under Allen–Cahn, and the nonlinear Poisson
# operator with other coefficients.
HELD_OUT_4 = {
    "ho4_poisson_cos64": dict(operator="poisson", domain=[[0.0, 2.0]], exact="cos(64*x)"),
    "ho4_poisson_sin_mix": dict(
        operator="poisson", domain=[[0.0, 2.5]], exact="sin(4*x) + 0.06*cos(75*x)"
    ),
    "ho4_poisson_chirp": dict(operator="poisson", domain=[[0.0, 2.5]], exact="sin(10*x + 6*x**2)"),
    "ho4_poisson_chirp_down": dict(
        operator="poisson", domain=[[0.0, 3.0]], exact="cos(45*x - 5*x**2)"
    ),
    "ho4_allencahn_mix": dict(
        operator="allen_cahn", domain=[[0.0, 3.0]], exact="sin(3*x) + 0.08*cos(45*x)"
    ),
    "ho4_nlpoisson_mix": dict(
        operator="nl_poisson",
        domain=[[-1.0, 1.0]],
        exact="0.4*cos(3*x) + 0.03*sin(25*x)",
        params={"z0": -0.2, "z2": 0.6},
    ),
}
# the problem sets of the GP-HM held-out section: (id, set, role)
HO_SETS = (
    ("HO-val", VALIDATION_ALL, "validation (checked the rule)"),
    ("HO-diag", HELD_OUT, "first held-out set (looked at in round 2)"),
    ("HO", HELD_OUT_2, "second held-out set"),
    ("HO3", HELD_OUT_3, "third held-out set (looked at in round 4)"),
    ("HO4", HELD_OUT_4, "fourth held-out set (new, clean)"),
)


HO_PROTOCOL = (
    "**Protocol (issue 20, fourth round).** GP-HM runs with its defaults and nothing else set "
    "(max_iter {steps}). The 1-D default is a rule (`warm_start=select`, gp_hm.py): two "
    "runs in lockstep, one from U = 0 on the paper's frequency grid (`off`: the first-round "
    "defaults) and one with the warm start (`on`: the round-2 opt-in), each with its exact "
    "finish; the candidate with the smallest **a-posteriori error estimate** is kept. The "
    "estimate uses only what a user gives: the GP mean's residual 𝒩[u] − f against the source "
    "on a check grid 4× finer than the collocation grid, carried to an error by solving the "
    "linearised equation (e″ = −r for Poisson) with the boundary misfit as boundary values "
    "(second-order finite differences on the check grid); ‖e‖/‖u‖ estimates the relative L2 "
    "error. The candidates are each run's final state and its probes (the exact U at the "
    "kernel of every 1000th Adam step, and of step 0 for the paper's start) and, new in the "
    "fourth round, two more step-0 candidates of the paper's start: the joint minimiser over "
    "(U, v, τ_b) with the block-coordinate sweeps run to convergence (τ_b bounded by "
    "λ_b τ_b ≤ 10¹² v) at the initial kernel and at half its components' inverse "
    "length-scales. Why: on chirps learning the kernel made every later candidate worse, and "
    "the finish's two sweeps left τ_b far from its optimum at the initial kernel. They were "
    "chosen on validation problems only (VALIDATION_CHIRP: three chirps of other rates, "
    "amplitudes and a falling frequency, defined before any run on them; then checked on "
    "VALIDATION_MIX, VALIDATION_SINGLE and poisson1d_sin100): the chirps' results went from "
    "1.9e-3, 1.4e-3, 2.4e-3 to 5.1e-4, 7.2e-4, 1.9e-4; x² − x/2 + 0.02 sin(120x) from 1.7e-3 "
    "to 7.6e-4; the other validation problems keep their candidate (the new ones' estimates "
    "are larger; on poisson1d_sin100 0.30 and 0.45). The runs themselves are unchanged (a "
    "probe restores the state it found), so a problem's result can only change to a "
    "candidate with a smaller estimate. `kept` names the candidate returned. The rule has no "
    "threshold. Each problem enters as a user's JSON "
    "would (no n_col, no freq_scale): the grid (about 8 points per period of the source's "
    "highest significant frequency) and F come from the source term. `rel_l2` is the "
    "returned result; `Adam only` is GP-HM with Adam alone (the `off` run's last Adam iterate: "
    "U from 0, no exact step before the end, i.e. the paper's method at this budget); `off` / "
    "`on` the two runs' finished errors (diagnostics, never used to choose); `estimate` "
    "the kept candidate's a-posteriori estimate. Sets, newest first: `HO4` is the **new "
    "held-out test set**, six problems fixed in code (HELD_OUT_4, committed in 87bfbea before "
    "any run on it): cos(64x) on [0, 2], sin(4x) + 0.06 cos(75x), a chirp of another rate "
    "sin(10x + 6x²), a falling chirp cos(45x − 5x²), Allen–Cahn mixed, nonlinear Poisson with "
    "other coefficients. `HO3` is the third set: its chirp's miss (4.3e-3) was known when the "
    "fourth-round candidates were designed (on validation chirps, never on it), so it is "
    "not clean. `HO` is the second set (its round-2 numbers were known when the round-3 rule "
    "was designed), `HO-diag` the first (looked at in round 2 to design the warm start). "
    "Deterministic (no seed enters GP-HM), so one run per problem. Forked "
    "single-thread workers on 2 cores shared with other jobs: wall times are upper bounds; "
    "the sets run newest first and a problem the run's time limit (`--stop-at`) cut off is "
    "listed as NOT MEASURED."
    "\n\n"
)
HOVAL_PROTOCOL = (
    "**Protocol.** Validation problems for GP-HM's default 1-D rule (issue 20, third round; "
    "`warm_start=select`: keep the smaller a-posteriori error estimate of the plain run and the "
    "warm-started one): the three mixed-scale problems of round 2 (VALIDATION_MIX) and two "
    "single-scale problems (VALIDATION_SINGLE), all defined before any run on them. Same "
    "{steps} Adam steps as the held-out rows; columns as there. The held-out numbers are in "
    "'PDE: GP-HM held-out problems'.\n\n"
)


def _ho_job(job: tuple) -> dict:
    from workbench.datasets.pde import from_spec
    from workbench.solvers.pde import gp_hm

    specs, name = job
    p = from_spec(specs[name], name=name)
    # the defaults: nothing but the step budget, and that only in --quick or when --budget
    # overrides it (the section then says so)
    steps = BUDGET["ho"][1 if _QUICK[0] else 0]
    kw = {"max_iter": steps} if steps != 5000 else {}
    r = gp_hm.solve(p, gp_hm.Params(**kw))
    return {
        "metrics": r.metrics,
        "iterations": r.iterations,
        "wall_s": r.meta["wall_s"],
        "n_col": r.extras["n_col"],
        "F": r.extras["freq_scale"],
        "F_origin": r.extras.get("freq_scale_origin", ""),
        "selection": r.extras.get("selection", {}),
        "status": r.status,
    }


_QUICK = [False]
# --stop-at: a time.time() after which the held-out jobs stop (None = no limit)
STOP_AT: list = [None]


def _ho_jobs(quick: bool, sets: tuple[str, ...]) -> list[tuple]:
    if quick:
        # the CI correctness gate: the first two problems of the second held-out set
        return [("HO", HELD_OUT_2, n) for n in list(HELD_OUT_2)[:2] if "HO" in sets]
    return [(sid, specs, n) for sid, specs, _ in HO_SETS if sid in sets for n in specs]


def _describe(spec: dict) -> str:
    op = {"poisson": "", "allen_cahn": " (Allen–Cahn)", "nl_poisson": " (nonlinear Poisson)"}
    extra = op.get(spec["operator"], f" ({spec['operator']})")
    if spec.get("params"):
        extra += " " + ", ".join(f"{k} = {v}" for k, v in spec["params"].items())
    return f"{spec['exact']} on {spec['domain'][0]}{extra}"


def run_ho(quick: bool, sets: tuple[str, ...] = ("HO", "HO-diag", "HO3", "HO4")) -> list[dict]:
    """GP-HM's defaults (the 1-D rule) on the held-out sets, or with ``sets=("HO-val",)`` on
    the validation problems that checked the rule; one row per problem, then a target row per
    set for the defaults and for Adam alone."""
    _QUICK[0] = quick
    jobs = _ho_jobs(quick, sets)
    if not jobs:
        return []

    def log(job, d):  # one line per finished problem, so a cut-short run still tells
        m = d["metrics"]
        print(
            f"[{_sid_of(job[0])}] {job[1]}: rel_l2 {m['rel_l2_final']:.3g} (kept "
            f"{d['selection'].get('chosen', '-')}, {d['selection'].get('chosen_step', '-')}), "
            "Adam only "
            f"{m.get('rel_l2_adam_only', float('nan')):.3g}, n_col {d['n_col'][0]}, "
            f"{d['wall_s']:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    # the newest (cleanest) set first, so that a run cut short by --stop-at loses the sets
    # already looked at; within a set the largest jobs first, so that the workers finish together
    prio = {sid: -k for k, (sid, _, _) in enumerate(HO_SETS)}
    order = sorted(range(len(jobs)), key=lambda i: (prio[jobs[i][0]], -_ho_size(jobs[i])))
    res_sorted = _in_workers(
        [jobs[i][1:] for i in order], _ho_job, workers=3, on_result=log, stop_at=STOP_AT[0]
    )
    res = [None] * len(jobs)
    for i, d in zip(order, res_sorted, strict=True):
        res[i] = d
    rows = []
    for (sid, specs, name), d in zip(jobs, res, strict=True):
        if d is None:
            # cut by --stop-at: reported as a row of its own, never dropped silently
            rows.append(
                {
                    "id": sid,
                    "solver": "gp_hm stm, defaults",
                    "problem": f"{name}: {_describe(specs[name])}",
                    "note": "NOT MEASURED: the run's time limit (--stop-at) came first",
                    "target": "<= 1e-3",
                }
            )
            continue
        m = d["metrics"]
        sel = d["selection"]
        # each run's final state (the last candidate listed per run)
        cand = {c["warm_start"]: c for c in sel.get("candidates", []) if c["step"] == "final"}
        note = f"n_col {d['n_col'][0]} and F = {d['F']:.3g} from the {d['F_origin']}"
        if cand:
            note += "; final estimates " + ", ".join(
                f"{k} {c['error_estimate']:.2g}" for k, c in cand.items()
            )
            note += f"; {len(sel['candidates'])} candidates"
        rows.append(
            {
                "id": sid,
                "solver": "gp_hm stm, defaults",
                "problem": f"{name}: {_describe(specs[name])}",
                "steps": d["iterations"],
                "rel_l2": m["rel_l2_final"],
                "kept": f"{sel.get('chosen', 'off')}, {sel.get('chosen_step', 'final')}",
                "estimate": m.get("error_estimate"),
                "Adam only": m.get("rel_l2_adam_only", m.get("rel_l2_adam_final")),
                "off": cand.get("off", {}).get("rel_l2"),
                "on": cand.get("on", {}).get("rel_l2"),
                "best (oracle)": m.get("rel_l2_best"),
                "wall_s": d["wall_s"],
                "finish converged": m.get("finish_converged"),
                "note": note,
                "target": "<= 1e-3",
            }
        )
    for sid, _, role in HO_SETS:
        sel = [r for r in rows if r["id"] == sid]
        done = [r for r in sel if "rel_l2" in r]
        if not done:
            continue
        missing = len(sel) - len(done)
        for label, key in (("defaults", "rel_l2"), ("Adam only", "Adam only")):
            errs = np.array([r[key] for r in done], dtype=float)
            ok = int(np.sum(errs <= 1e-3))
            verdict = (
                "met" if ok == len(sel) else "MISSED" if ok < len(done) else "NOT ALL MEASURED"
            )
            rows.append(
                {
                    "id": f"{sid} target",
                    "solver": f"gp_hm {label}",
                    "problem": f"{len(sel)} problems, {role}",
                    "rel_l2": float(np.median(errs)),
                    "note": f"median over the {len(done)} measured; {ok}/{len(sel)} at or "
                    f"below 1e-3 ({verdict}); worst {np.max(errs):.2g}"
                    + (f"; {missing} not measured (time limit)" if missing else ""),
                    "target": "every problem <= 1e-3",
                }
            )
    return rows


def _sid_of(specs: dict) -> str:
    return next(sid for sid, s, _ in HO_SETS if s is specs)


def _ho_size(job: tuple) -> float:
    """Rough cost of a job: the grid size from the solution's frequencies is not known before
    the run, so use the interval length times the highest frequency in the expression."""
    import re

    spec = job[1][job[2]]
    ks = [float(k) for k in re.findall(r"(\d+(?:\.\d+)?)\*x", spec["exact"])] or [1.0]
    lo, hi = spec["domain"][0]
    return max(ks) * (hi - lo)


def _in_workers(jobs: list, fn, workers: int = 3, on_result=None, stop_at=None) -> list:
    """fn(job) for each job in up to ``workers`` forked processes (one thread each), results in
    order; ``on_result(job, result)`` is called as each one arrives (progress logs). Forked
    ``Process`` targets are not pickled, so this works from a runpy-loaded script.

    ``stop_at`` (a ``time.time()`` value): from then on no job starts and the running ones are
    terminated; their results are ``None``."""
    import multiprocessing as mp
    import queue as q_mod

    ctx = mp.get_context("fork")
    out: dict[int, Any] = {}
    results = ctx.Queue()
    pending = list(enumerate(jobs))
    running: dict[int, Any] = {}

    def work(i, job, q):
        import torch

        torch.set_num_threads(1)
        try:
            q.put((i, fn(job), ""))
        except Exception as exc:  # report, do not hang the parent
            q.put((i, None, f"{type(exc).__name__}: {exc}"))

    while pending or running:
        if stop_at is not None and time.time() >= stop_at:
            for i, proc in running.items():
                proc.terminate()
                proc.join()
                print(f"stopped at the time limit: job {jobs[i]}", file=sys.stderr, flush=True)
            for _i, job in pending:
                print(f"not started (time limit): job {job}", file=sys.stderr, flush=True)
            break
        while pending and len(running) < workers:
            i, job = pending.pop(0)
            proc = ctx.Process(target=work, args=(i, job, results))
            proc.start()
            running[i] = proc
        try:
            i, res, err = results.get(timeout=30)
        except q_mod.Empty:
            dead = [i for i, p in running.items() if not p.is_alive() and p.exitcode != 0]
            if dead:
                raise RuntimeError(f"benchmark worker for job {jobs[dead[0]]} died") from None
            continue
        if err:
            raise RuntimeError(f"job {jobs[i]} failed: {err}")
        out[i] = res
        if on_result is not None:
            on_result(jobs[i], res)
        running.pop(i).join()
    return [out.get(i) for i in range(len(jobs))]


def _pinn_job(job: tuple) -> dict:
    from workbench.datasets.pde import make_preset
    from workbench.solvers.pde import pinn, pinn_fourier

    name, kind, kw = job
    p = make_preset(name)
    mod = pinn_fourier if kind == "fourier" else pinn
    r = mod.solve(p, mod.Params(**kw))
    return {
        "metrics": r.metrics,
        "wall_s": r.meta["wall_s"],
        "iterations": r.iterations,
        "note": r.extras.get("lbfgs_note", ""),
        "reasons": r.extras.get("suspect_reasons", ""),
    }


def run_pinn(quick: bool) -> list[dict]:
    """The balanced PINN baseline (issue 15): poisson1d_sin10 with each boundary mode (the
    default over the seeds), and the GP2 setting on poisson1d_sin100 (3×100 network, the same
    400 points and 3000 steps as GP-HM's GP2 row in the PDE section)."""
    k = int(quick)
    n_adam, n_lb = BUDGET["pinn_adam"][k], BUDGET["pinn_finish"][k]
    base = dict(max_iter=n_adam + n_lb, adam_iter=n_adam, n_checkpoints=10)
    seeds = BUDGET["pinn_seeds"][k]
    jobs = [("poisson1d_sin10", "mlp", dict(base, bc="exact", seed=s)) for s in range(seeds)]
    jobs += [
        ("poisson1d_sin10", "mlp", dict(base, bc=bc, seed=0)) for bc in ("adaptive", "penalty")
    ]
    n2 = BUDGET["gp2"][k]
    gp2 = dict(width=100, depth=3, max_iter=n2, adam_iter=n2 - n2 // 6, n_col=400, n_checkpoints=10)
    jobs += [
        ("poisson1d_sin100", "mlp", gp2),
        ("poisson1d_sin100", "fourier", dict(gp2, n_features=64)),
    ]
    # the long GP2-setting jobs first, so that the short ones fill the workers at the end
    order = sorted(range(len(jobs)), key=lambda i: jobs[i][0] != "poisson1d_sin100")
    done = _in_workers([jobs[i] for i in order], _pinn_job)
    res: list = [None] * len(jobs)
    for pos, i in enumerate(order):
        res[i] = done[pos]
    rows = []
    groups = [
        ("pinn 4×64, bc=exact (default)", res[:seeds], "poisson1d_sin10", "<= 1e-2"),
        ("pinn 4×64, bc=adaptive", res[seeds : seeds + 1], "poisson1d_sin10", ""),
        (
            "pinn 4×64, bc=penalty (γ = 100, normalised terms)",
            res[seeds + 1 : seeds + 2],
            "poisson1d_sin10",
            "",
        ),
        (
            "pinn 3×100, bc=exact, 400 points (GP2 setting)",
            res[-2:-1],
            "poisson1d_sin100",
            "GP2: > 1e-1",
        ),
        (
            "pinn_fourier 64 RFF, σ from the source + 3×100 (GP2 setting)",
            res[-1:],
            "poisson1d_sin100",
            "GP2: > 1e-1",
        ),
    ]
    for name, rs, prob, target in groups:
        e = np.array([r["metrics"]["rel_l2_final"] for r in rs])
        rows.append(
            {
                "id": "PINN",
                "solver": name,
                "problem": prob,
                "steps": rs[0]["iterations"],
                "rel_l2": float(np.median(e)),
                "range": f"{e.min():.2g}–{e.max():.2g} ({len(rs)} seed{'s' if len(rs) > 1 else ''})",
                "95% CI (median)": _ci(e),
                "best (oracle)": float(np.median([r["metrics"]["rel_l2_best"] for r in rs])),
                "wall_s": float(np.median([r["wall_s"] for r in rs])),
                "suspect": f"{int(sum(r['metrics']['suspect'] for r in rs))}/{len(rs)}",
                "note": "; ".join(
                    dict.fromkeys(x for r in rs for x in (r["note"], r["reasons"]) if x)
                )
                + f"; residual (check grid, rel) {np.median([r['metrics']['residual_check_rel'] for r in rs]):.2e}",
                "target": target,
            }
        )
    return rows


def _as_problems():
    from workbench.datasets.pde import make_preset
    from workbench.problems import PDEProblem

    return [
        ("peak2d_single", make_preset("peak2d_single")),
        ("peak2d_double", make_preset("peak2d_double")),
        ("ring2d_front (held out)", PDEProblem(**RING2D)),
    ]


def _as_job(job: tuple) -> dict:
    from workbench.solvers.pde import pinn_aas, pinn_rad, pinn_rar, pinn_uniform

    pi, sname, kw, cand = job
    prob = _as_problems()[pi][1]
    if sname in ("rar", "rad") and cand:
        kw = dict(kw, n_candidates=cand)
    mod = {"uniform (fixed)": pinn_uniform, "rar": pinn_rar, "rad": pinn_rad, "aas": pinn_aas}[
        sname
    ]
    r = mod.solve(prob, mod.Params(**kw))
    P = r.extras["stage_points"][-1]
    P = P[np.isfinite(P[:, 0])]
    near = [float(np.mean(np.hypot(P[:, 0] - c, P[:, 1] - c) < 0.1)) for c in (0.5, -0.5)]
    return {
        "metrics": r.metrics,
        "wall_s": r.meta["wall_s"],
        "iterations": r.iterations,
        "near": near,
        "stage_w1": [float(x) for x in r.extras["stage_w1"]],
    }


def _lift_only_error(prob) -> float:
    """rel L2 of u = G, the exact-BC lift with the network's output at zero (its start)."""
    import torch

    from workbench.physics.pde.compiled import compile_problem
    from workbench.physics.pde.constraints import DirichletLift
    from workbench.physics.pde.metrics import rel_l2, truth_on_test

    comp = compile_problem(prob)
    X = np.stack([g.ravel() for g in comp.mesh(comp.test_axes())], -1)
    true = truth_on_test(prob)
    G = DirichletLift(prob).lift(torch.tensor(X, dtype=torch.float64)).numpy()
    return float(rel_l2(G.reshape(true.shape), true))


def run_as(quick: bool) -> list[dict]:
    """AS1–AS4: fixed uniform, RAR, RAD and AAS with one network (4×64 tanh, exact BCs), one
    optimiser (Adam 1e-3 per stage, then Levenberg–Marquardt on the last set) and one budget,
    on three 2-D problems."""
    import torch

    # the optimiser's lazy imports (torch._dynamo, seconds) once here, not in every forked job
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    k = int(quick)
    K, n_st, n_lb = BUDGET["as_stages"][k], BUDGET["as_stage_steps"][k], BUDGET["as_finish"][k]
    N, seeds = BUDGET["as_points"][k], BUDGET["as_seeds"][k]
    common = dict(
        n_points=N,
        stage_steps=n_st,
        adam_iter=K * n_st,
        max_iter=K * n_st + n_lb,
        n_checkpoints=K,
        stage_lm=BUDGET["as_stage_lm"][k],
    )
    samplers = ["uniform (fixed)", "rar", "rad", "aas"]
    probs = _as_problems()
    cand = BUDGET["as_candidates"][k]
    # seed-major order: if --stop-at cuts the run, every problem still has the same seeds for
    # every sampler (a later seed is dropped for all four, never for one)
    keys = [(s, pi, sname) for s in range(seeds) for pi in range(len(probs)) for sname in samplers]
    jobs = [(pi, sname, dict(common, seed=s), cand) for s, pi, sname in keys]
    nw = BUDGET["as_workers"][k]
    got = dict(zip(keys, _in_workers(jobs, _as_job, nw, stop_at=STOP_AT[0]), strict=True))
    # the seeds every sampler finished on every problem: the comparison uses only those
    done = [
        s
        for s in range(seeds)
        if all(got[(s, pi, n)] for pi in range(len(probs)) for n in samplers)
    ]
    rows = []
    if not done:
        return [
            {
                "id": "AS",
                "solver": "all samplers",
                "problem": pname,
                "note": "NOT MEASURED: the run's time limit (--stop-at) came before one seed "
                "of every sampler finished",
            }
            for pname, _ in probs
        ]
    for pi, (pname, prob) in enumerate(probs):
        med = {}
        for sname in samplers:
            res = [got[(s, pi, sname)] for s in done]
            if sname == "aas":
                near_aas = res
            e = np.array([r["metrics"]["rel_l2_final"] for r in res])
            w = np.array([r["wall_s"] for r in res])
            w1 = np.array([r["metrics"]["residual_w1"] for r in res])
            med[sname] = (float(np.median(e)), float(np.median(w)), float(np.median(w1)))
            w1s = np.median(np.array([r["stage_w1"] for r in res]), 0)
            note = (
                f"W1 per stage {' → '.join(f'{x:.2g}' for x in w1s)}; "
                f"CV {np.median([r['metrics']['residual_cv'] for r in res]):.3g}"
            )
            if pname.startswith("peak2d_double"):
                fr = np.array([r["near"] for r in res])
                note += (
                    f"; last stage's points within 0.1 of (0.5, 0.5) / (−0.5, −0.5): "
                    f"{np.median(fr[:, 0]):.1%} / {np.median(fr[:, 1]):.1%}"
                )
            if len(done) < seeds:
                note += f"; {seeds - len(done)} of {seeds} seeds cut by --stop-at"
            rows.append(
                {
                    "id": "AS",
                    "solver": f"pinn_{sname}",
                    "problem": pname,
                    "steps": res[0]["iterations"],
                    "rel_l2": med[sname][0],
                    "range": f"{e.min():.2g}–{e.max():.2g} ({len(res)} seed{'s' if len(res) > 1 else ''})",
                    "95% CI (median)": _ci(e),
                    "best (oracle)": float(np.median([r["metrics"]["rel_l2_best"] for r in res])),
                    "wall_s": med[sname][1],
                    "W1(μ_r, U)": med[sname][2],
                    "suspect": f"{int(sum(r['metrics']['suspect'] for r in res))}/{len(res)}",
                    "note": note,
                }
            )
        u, rad, aas = med["uniform (fixed)"], med["rad"], med["aas"]

        def verdict(ok: bool) -> str:
            return "met" if ok else "MISSED"

        as4 = ""
        if pname.startswith("peak2d_double"):
            fr = np.median(np.array([r["near"] for r in near_aas]), 0)
            as4 = (
                f"; AAS points within 0.1 of each centre {fr[0]:.1%} / {fr[1]:.1%} "
                f"(AS4 ≥ 20% each: {verdict(min(fr) >= 0.2)})"
            )

        rows.append(
            {
                "id": "AS targets",
                "solver": "aas against the others",
                "problem": pname,
                "note": f"AAS / fixed uniform rel L2 = {aas[0] / u[0]:.3g} (AS1 ≤ 1/3: {verdict(aas[0] <= u[0] / 3)}); "
                f"AAS / RAD = {aas[0] / rad[0]:.3g} (≤ 1.2: {verdict(aas[0] <= 1.2 * rad[0])}); "
                f"uniform W1 / AAS W1 = {u[2] / aas[2]:.3g} (AS2 ≥ 5: {verdict(u[2] >= 5 * aas[2])}); "
                f"AAS / uniform wall = {aas[1] / u[1]:.3g} (AS3 ≤ 3: {verdict(aas[1] <= 3 * u[1])})"
                f"{as4}; for scale, the boundary lift alone (N ≡ 0) has rel L2 "
                f"{_lift_only_error(prob):.3g}",
            }
        )
    return rows


COLUMNS = [
    "id",
    "solver",
    "problem",
    "steps",
    "rel_l2",
    "kept",
    "estimate",
    "Adam only",
    "off",
    "on",
    "Adam final",
    "best (oracle)",
    "best step",
    "wall_s",
    "s/step",
    "finish converged",
    "time_to_1e-3_s",
    "loss Adam → finish",
    "range",
    "95% CI (median)",
    "W1(μ_r, U)",
    "suspect",
    "note",
    "target",
]


# the day the balanced PINN (issue 15) replaced the old one: PINN rows of the main "PDE" section
# measured before it describe the unbalanced PINN (γ = 100 against an unnormalised residual)
BALANCED_PINN_SINCE = "2026-12-06"
SUPERSEDED = "SUPERSEDED (pre-issue-15 PINN; see 'PDE: PINN baseline')"


def mark_superseded_pinn_rows(text: str, stamp: str) -> str:
    """Mark the GP2 PINN rows of the "## PDE" section stale when that section predates the fix.

    ``text`` is BENCHMARKS.md; ``stamp`` the date of the fresh 'PDE: PINN baseline' section.
    Only rows of a section measured before :data:`BALANCED_PINN_SINCE` are touched (their
    solver cell gets :data:`SUPERSEDED`, once), plus one line under the section's stamp; a
    section measured later holds fresh PINN rows and is returned unchanged.
    """
    import re

    m = re.search(r"^## PDE\n.*?(?=^## |\Z)", text, re.S | re.M)
    if m is None:
        return text
    sec = m.group(0)
    when = re.search(r"^Measured (\d{4}-\d{2}-\d{2})", sec, re.M)
    if when is None or when.group(1) >= BALANCED_PINN_SINCE:
        return text
    out = []
    for line in sec.split("\n"):
        cells = line.split(" | ")
        if line.startswith("| GP2 | pinn") and SUPERSEDED not in line:
            cells[1] = f"{cells[1]} {SUPERSEDED}"
            line = " | ".join(cells)
        out.append(line)
    sec = "\n".join(out)
    note = (
        f"**Superseded PINN rows.** The GP2 `pinn` and `pinn_fourier` rows below were measured "
        f"on {when.group(1)} with the unbalanced PINN replaced on {BALANCED_PINN_SINCE} "
        f"(issue 15); the fixed baseline's GP2-setting rows are in 'PDE: PINN baseline' "
        f"(measured {stamp}). The other rows of this section are unaffected."
    )
    sec = re.sub(r"\*\*Superseded PINN rows\.\*\*[^\n]*\n\n", "", sec)
    sec = re.sub(
        r"(^Measured [^\n]*\n)", lambda g: g.group(1) + "\n" + note + "\n", sec, count=1, flags=re.M
    )
    return text[: m.start()] + sec + text[m.end() :]


def _aas_defaults() -> str:
    """The AAS sampler's defaults, read from its Params (so the text cannot go stale)."""
    from workbench.solvers.pde.pinn_aas import Params

    p = Params()
    return (
        f"{p.flow_layers} coupling layers × {p.flow_width} over a {p.flow_components}-Gaussian "
        f"base mixture, {p.n_alpha} flow steps per stage (Adam {p.lr_alpha:g}, batch "
        f"{p.flow_batch}), β = {p.beta:g} reached from β_start = {p.beta_start:g} within each "
        f"stage, ζ = {p.zeta:g}, a share keep = {p.keep:g} of each set carried into the next; "
        "chosen on validation two-bump densities, see "
        "`pinn_samplers.AASSampler`"
    )


def _pinn_section(rows, title, quick, only, t_pinn, command, no_write) -> str:
    """Markdown of the PINN or the AS rows, written to their own BENCHMARKS.md section."""
    from workbench.bench import markdown_table, write_section

    k = 1 if quick else 0
    md = markdown_table(rows, [c for c in COLUMNS if any(c in r for r in rows)])
    budgets = ", ".join(f"{key} {BUDGET[key][k]}" for key in BUDGET if key not in GP_BUDGETS)
    head = ("**Reduced (--quick) run.** " if quick else "") + (
        f"One command ({', '.join(only)}: {t_pinn / 60:.0f} min, "
        f"{BUDGET['as_workers'][k] if title.endswith('adaptive sampling') else 3} forked "
        f"single-thread workers). Budgets: {budgets}. "
    )
    if title.endswith("PINN baseline"):
        head += (
            "The balanced PINN of issue 15 (4×64, sin activation by default, exact Dirichlet "
            "BCs, inputs scaled to the box, output scaled to the solution's size, residual "
            "normalised by the source's rms, Adam 1e-3 in float32 then a Levenberg–Marquardt "
            "finish in float64 (`finish=auto`: LM up to 1024 points, which covers every row "
            "here; its length was chosen on the validation problems sin 7x, sin 13x, "
            "sin 7x + x/2 + 1 and sin 13x − 0.3x + 2, never on poisson1d_sin10; the previous "
            "finish, 8000 L-BFGS-B iterations, left one seed in three above 1e-2) in its three "
            "boundary modes: `exact` (lift + distance function, the "
            "default), `adaptive` (learning-rate-annealed γ) and `penalty` (γ = 100 on "
            "normalised terms); the pre-fix PINN gave rel L2 3.25 on poisson1d_sin10 (issue 15). "
            "The GP2 rows rerun the PINN rows of the PDE section with the fixed baseline (3×100, "
            "the same 400 points and step budget as GP-HM there). "
        )
    else:
        head += (
            "One network (4×64 tanh, exact BCs), N interior points, as_stages stages of "
            "as_stage_steps Adam steps (each stage but the last ending with as_stage_lm "
            "Levenberg–Marquardt iterations) with the sampler acting between stages, then as_finish "
            "Levenberg–Marquardt iterations on the last set; the same budget, seeds and defaults "
            "for every sampler, no setting tuned on these problems (the samplers run their "
            "documented defaults: RAR adds N/10 of the candidates, RAD k = 1, c = 1 over them "
            "(as_candidates uniform candidates per stage; 0 = the solvers' 100k), AAS "
            f"{_aas_defaults()}). The staged solvers' "
            "defaults were changed after the 2026-12-07 06:44 run, where every sampler ended at "
            "rel L2 ≥ 1 on both peak problems (training failure, not sampling: an oracle point "
            "set, half of it around the peak, also ended above 1): the output scale is the sup-norm "
            "estimate max|f| / k̄² (the rms one was 0.0093 for a peak of height 1), the output "
            "layer starts at zero (u = lift at step 0) and the finish is Levenberg–Marquardt "
            "instead of L-BFGS-B (the input auto-scale kept); chosen on two validation problems (a peak exp(−500|x − (−0.3, 0.25)|²) and "
            "a front tanh(30(x + y/2 − 0.3))), never on the three below. After the 2026-12-07 12:58 run (every sampler "
            "still above rel L2 1 on both peaks) the Adam rate decays exponentially to lr/100 over the Adam phase "
            "(`lr_decay` 0.01): on the validation peak with an oracle point set (half of N around the peak) a constant "
            "rate left a smooth error of ~20× ‖u‖ that the residual hardly weighs, and the run ended at rel L2 0.20; "
            "with the decay 0.090 (uniform points 1.96 → 1.41); see `pinn_staged`. After the 2026-12-07 15:44 "
            "run (every sampler above rel L2 1 on both peaks, RAR 7.5–60) the budget ends every stage but the "
            "last with as_stage_lm LM iterations (the solvers' `stage_lm`, same for every sampler): on the "
            "validation peak exp(−1000|x − (0.2, −0.4)|²) (seed 0, N = 1000, 5 × 300 Adam + 50 LM) every "
            "sampler's Adam phase built a smooth error (rel L2 5.7 after the first 300 steps, 5–15 at later "
            "stage ends) that the 50-iteration finish removed only partly (uniform / RAD / AAS / RAR 1.05 / "
            "0.137 / 0.293 / 0.018; AAS's leftover 98 % below 2 cycles per unit); with 25 LM iterations at "
            "each stage end 0.993 / 0.071 / 0.040 / 0.121 (better for three of four; chosen by a rule fixed "
            "before the runs, `benchmarks/pde_as_validate.py`, rows in "
            "`benchmarks/results/pde_as_validation.jsonl`). The AAS sampler was "
            "changed after the 2026-12-07 09:48 run (one-Gaussian flow, β = 1e-3, lr 2e-3): "
            "trained alone against a fixed two-bump r², that flow put 21–31 % of its samples "
            "near one bump and < 3 % near the other; the mixture base and the β continuation "
            "were chosen on two validation two-bump densities, not on these problems. The spec's AS1 budget "
            "(10 × 1000 Adam + 500 L-BFGS, N = 1000) was cut to fit the CPU time this run had "
            "(a 2-core machine shared with many other jobs): read the targets as measured at "
            "this budget, not the spec's. Residuals and their "
            "derivatives are propagated forward through the network (one pass; same values as "
            "nested autograd to round-off, 2.2× cheaper per step). `W1(μ_r, U)` is the Wasserstein-1 distance "
            "between r²/∫r² and the uniform density on a 100² check grid (POT, 32² cells); wall "
            "time includes the sampler (flow training, candidate residuals). `ring2d_front` "
            "(u = tanh(25(x² + y² − 0.25)) on [−1, 1]², Δu = f) was fixed before any run and "
            "chose no setting. A rel L2 above the 'boundary lift alone' figure in the targets "
            "row is worse than predicting N ≡ 0. "
        )
    head += (
        "`rel_l2` is the median of the seeds' final errors, `range` their min–max. Threads "
        "pinned to 1 on 2 cores shared with other jobs: wall times are upper bounds.\n\n"
    )
    md = head + md
    if not no_write:
        path = write_section(title, md, command)
        if title.endswith("PINN baseline"):
            stamp = time.strftime("%Y-%m-%d", time.gmtime())
            path.write_text(mark_superseded_pinn_rows(path.read_text(), stamp))
    return md + "\n\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks/pde.py", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI scale: ~10× fewer steps everywhere")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument(
        "--only", default="", help="comma-separated groups (development): " + ", ".join(GROUPS)
    )
    ap.add_argument(
        "--no-write", action="store_true", help="do not touch BENCHMARKS.md (implied by --quick)"
    )
    ap.add_argument(
        "--check",
        action="store_true",
        help="after the run, fail (exit 1) on a correctness fault: a reference off its accuracy, "
        "a NaN metric, a missing peer row, a 2-D finish without its converged flag; never on time",
    )
    ap.add_argument(
        "--budget",
        default="",
        help="override step budgets, e.g. gm=2000,gp4_200=100 (keys: " + ", ".join(BUDGET) + ")",
    )
    ap.add_argument(
        "--stop-at",
        default="",
        help="UTC time HH:MM after which held-out GP-HM and AS jobs stop (a shared machine's deadline); "
        "problems not finished get a NOT MEASURED row",
    )
    args = ap.parse_args(argv)
    if args.stop_at:
        import datetime as dt

        hh, mm = (int(t) for t in args.stop_at.split(":"))
        now = dt.datetime.now(dt.UTC)
        when = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
        if when <= now:
            when += dt.timedelta(days=1)
        STOP_AT[0] = when.timestamp()
    for item in filter(None, (s.strip() for s in args.budget.split(","))):
        k, _, v = item.partition("=")
        if k not in BUDGET:
            ap.error(f"unknown budget key {k!r}")
        BUDGET[k] = (int(v), int(v))
    import torch

    torch.set_num_threads(1)
    quick = bool(args.quick)
    only = [g.strip() for g in args.only.split(",") if g.strip()] or (
        list(QUICK_GROUPS) if quick else list(GROUPS)
    )
    unknown = [g for g in only if g not in GROUPS]
    if unknown:
        ap.error(f"unknown group(s) {', '.join(unknown)}; known: {', '.join(GROUPS)}")
    # bench-quick convention: a --quick run never writes BENCHMARKS.md
    args.no_write = args.no_write or quick
    log = sys.stderr if args.json else sys.stdout
    rows: list[dict] = []
    pinn_rows: list[dict] = []
    t_all = time.perf_counter()
    t_pinn = 0.0
    for g in only:
        t = time.perf_counter()
        out = GROUPS[g](quick)
        dt_g = time.perf_counter() - t
        if g in PINN_GROUPS:
            pinn_rows += out
            t_pinn += dt_g
        else:
            rows += out
        print(f"[{g}] {dt_g:.0f} s", file=log, flush=True)
    total = time.perf_counter() - t_all - t_pinn
    from workbench.bench import markdown_table, write_section

    k = 1 if quick else 0
    command = (
        "workbench bench pde"
        + (" --quick" if quick else "")
        + (f" --only {args.only}" if args.only else "")
        + (f" --budget {args.budget}" if args.budget else "")
        + (f" --stop-at {args.stop_at}" if args.stop_at else "")
    )
    text = ""
    val_rows = [r for r in rows if r["id"].startswith("HO-val")]
    ho_rows = [r for r in rows if r["id"].startswith("HO") and r not in val_rows]
    gp_rows = [r for r in rows if not r["id"].startswith("HO")]
    flags = ("**Reduced (--quick) run.** " if quick else "") + (
        "**Partial run (--only " + ",".join(only) + ").** " if args.only else ""
    )
    if gp_rows:
        md = markdown_table(gp_rows, [c for c in COLUMNS if any(c in r for r in gp_rows)])
        budgets = ", ".join(f"{key} {BUDGET[key][k]}" for key in BUDGET if key in GP_BUDGETS)
        md = (
            flags + PROTOCOL + "\n\n"
            f"One process, {total / 60:.0f} min in all. Adam step budgets of this run: {budgets} "
            "(gp1: GP1 and GP5; gp2: GP-HM, PINN and Fourier PINN alike; gp4_*: 2-D grids; gp6_2d "
            "at 64²). GP runs use the frozen defaults (Adam lr 1e-2, β₂ = 0.99, Q = 30) in "
            "float64 and F from the source term (the column `note` gives it where it matters). "
            "Every GP run ends with the exact finish (Params `exact_u`, default on): at the "
            "final kernel, U is replaced by the exact minimiser of the same GP-HM loss (whitened "
            "least squares; 2-D: Kronecker PCG with a fast-diagonalisation preconditioner whose "
            "boundary rows enter by Woodbury), then τ_b, v by their closed-form optimum and U "
            "once more; the loss is shown before → after, and the 2-D rows say whether every CG "
            "solve of the finish met its tolerance. 1-D GP-HM / PINN rows share the 400 "
            "collocation points of poisson1d_sin100 on [0, 2π]; errors are relative L2 on the "
            "300-point test grid; `rel_l2` is the **final** error (after the finish), `Adam "
            "final` the last Adam iterate of the kept run, `best (oracle)` the minimum over "
            "test-grid checkpoints (oracle early stopping, never used as the result). 1-D GP-HM "
            "rows use the default rule (`warm_start=select`: the paper's start and the warm "
            "start run in lockstep, the candidate with the smallest a-posteriori error "
            "estimate is kept; see 'PDE: GP-HM held-out problems'): `kept` names it, "
            "`estimate` is its estimate, `Adam only` is GP-HM with Adam alone (the paper's "
            "start, its last Adam iterate), and `wall_s` counts both runs. Threads pinned to 1 and nice 10 "
            "on 2 cores shared with other jobs, so wall times are upper bounds.\n\n" + md
        )
        text += md
        if not args.no_write:
            # a partial run must not wipe the rows of the groups it did not run: its rows go
            # to a section of their own
            # a whole run measures again what the partial "rerun of" sections hold
            write_section(
                "PDE" if not args.only else f"PDE: rerun of {args.only}",
                md,
                command,
                supersedes=() if args.only else ("PDE: rerun of ",),
            )
    if ho_rows:
        md = markdown_table(ho_rows, [c for c in COLUMNS if any(c in r for r in ho_rows)])
        if not quick and BUDGET["ho"][k] != 5000:
            flags += (
                f"**Reduced budget: max_iter {BUDGET['ho'][k]} instead of the default 5000** "
                "(the shared machine could not afford the default on these sets in time); "
                "everything else is the defaults. "
            )
        md = flags + HO_PROTOCOL.format(steps=BUDGET["ho"][k]) + md
        text += md + "\n\n"
        if not args.no_write:
            sets = [g for g in only if g in ("HO1", "HO2", "HO3", "HO4")]
            title = "PDE: GP-HM held-out problems"
            if "HO" not in only and sets:
                # one set alone: a section of its own, so that the other sets' rows stay
                title += f" ({', '.join(sets)}, third round)"
            # every set at once replaces the sections of the one-set runs
            older = () if "HO" not in only else ("PDE: GP-HM held-out problems (",)
            write_section(title, md, command, supersedes=older)
    if val_rows:
        md = markdown_table(val_rows, [c for c in COLUMNS if any(c in r for r in val_rows)])
        md = flags + HOVAL_PROTOCOL.format(steps=BUDGET["ho"][k]) + md
        text += md + "\n\n"
        if not args.no_write:
            write_section("PDE: GP-HM mixed-scale validation", md, command)
    # PINN rows and AS rows go to two sections, so that either group can be rerun alone
    for title, sel in (
        ("PDE: PINN baseline", [r for r in pinn_rows if r["id"] == "PINN"]),
        ("PDE: adaptive sampling", [r for r in pinn_rows if r["id"] != "PINN"]),
    ):
        if sel:
            text += _pinn_section(sel, title, quick, only, t_pinn, command, args.no_write)
    md = text
    if args.check:
        from workbench.bench import CheckFailed

        try:
            check_rows(rows + pinn_rows, only, quick)
        except CheckFailed as exc:
            print(md, file=log)
            print(f"bench pde --check FAILED: {exc}", file=sys.stderr)
            return 1
        print(f"bench pde --check: {len(rows) + len(pinn_rows)} rows correct", file=log)
    if args.json:
        print(
            json.dumps({"domain": "pde", "quick": quick, "rows": rows + pinn_rows}, default=float)
        )
    else:
        print(md)
    return 0


def _gp1_with_spectrum(quick: bool) -> list[dict]:
    rows, r = run_gp1(quick, "stm")
    return rows + [spectrum_row(r)]


GROUPS = {
    "R1": run_reference,
    "GP1": _gp1_with_spectrum,
    "GP2": run_gp2,
    "GP3": run_gp3,
    "GP4": run_gp4,
    "GM": run_gm_se,
    "GP6": run_gp6,
    "HO": run_ho,
    "HOVAL": lambda quick: run_ho(quick, ("HO-val",)),
    # the held-out sets one at a time (a shared machine may not afford all three in one run)
    "HO1": lambda quick: run_ho(quick, ("HO-diag",)),
    "HO2": lambda quick: run_ho(quick, ("HO",)),
    "HO3": lambda quick: run_ho(quick, ("HO3",)),
    "HO4": lambda quick: run_ho(quick, ("HO4",)),
    "PINN": run_pinn,
    "AS": run_as,
}
# the groups of a --quick run (make bench-quick): GP6 (every preset's reference, minutes) is left out
QUICK_GROUPS = ("R1", "GP1", "GP2", "GP3", "GP4", "HO", "PINN", "AS")


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and bool(np.isfinite(x))


def check_rows(rows: list[dict], groups: list[str], quick: bool) -> None:
    """Correctness gate of ``--check`` (workbench.bench.check): never about time.

    Every group that ran produced its rows; every reported error is finite; the reference
    solvers reach their accuracy (spec R1); Kronecker and dense algebra agree (GP3); every 2-D
    exact finish reports its converged flag (printed, not gated: see the GP4 note); every
    sampler row is present for every sampler problem.
    """
    from workbench.bench import check

    ids = {
        "R1": "R1",
        "GP1": "GP1",
        "GP2": "GP2",
        "GP3": "GP3",
        "GP4": "GP4",
        "GM": "GP6",
        "GP6": "GP6",
        "HO": "HO",
        "HOVAL": "HO-val",
        "HO1": "HO-diag",
        "HO2": "HO",
        "HO3": "HO3",
        "HO4": "HO4",
        "PINN": "PINN",
        "AS": "AS",
    }
    for g in groups:
        check(any(r["id"] == ids[g] for r in rows), f"group {g}: no rows")
    for r in rows:
        where = f"{r['id']} {r['solver']} on {r.get('problem')}"
        for key in ("rel_l2", "Adam final", "Adam only", "estimate", "best (oracle)"):
            if key in r and r[key] is not None and "alias" not in r["solver"]:
                check(_finite(r[key]), f"{where}: {key} is {r[key]!r}")
        if r["id"] == "GP4" and "alias" not in r["solver"]:
            # the flag must be reported; its value is not gated: the 2-D finish's CG is known
            # not to reach 1e-9 on these grids (BENCHMARKS.md says so), and a known miss
            # is a finding to show, not a CI failure
            check("_finish_converged" in r, f"{where}: the 2-D finish reports no converged flag")
            if not r["_finish_converged"]:
                print(f"note: {where}: the 2-D exact finish did not converge", file=sys.stderr)
        if r["id"] == "R1" and "Chebyshev N=400" in r["solver"]:
            check(r["rel_l2"] <= 1e-9, f"{where}: Chebyshev error {r['rel_l2']:.2e} > 1e-9")
        if r["id"] == "R1" and "FD, n" in r["solver"]:
            order = float(r["note"].split()[-1])
            check(abs(order - 2) <= 0.15, f"{where}: FD order {order:.3f} not 2 ± 0.15")
        if r["id"] == "R1" and "Newton" in r["solver"]:
            check(r["rel_l2"] <= 5e-5, f"{where}: Newton reference off by {r['rel_l2']:.2e}")
        if r["id"] == "GP3" and "dense" in r["solver"]:
            check(r["rel_l2"] <= 1e-10, f"{where}: Kronecker vs dense differ by {r['rel_l2']:.1e}")
    if "AS" in groups:
        for pname, _ in _as_problems():
            got = {r["solver"] for r in rows if r["id"] == "AS" and r["problem"] == pname}
            for sname in ("pinn_uniform (fixed)", "pinn_rar", "pinn_rad", "pinn_aas"):
                check(sname in got, f"AS on {pname}: the {sname} row is missing")
    if "HO" in groups:
        if quick:
            n = sum(r["id"] == "HO" for r in rows)
            check(n == 2, f"HO: {n} held-out rows, expected 2")
        else:
            for sid, specs, _ in HO_SETS:
                if sid == "HO-val":
                    continue
                n = sum(r["id"] == sid for r in rows)
                want = len(specs)
                check(n == want, f"{sid}: {n} rows, expected {want}")
    if "HOVAL" in groups and not quick:
        n = sum(r["id"] == "HO-val" for r in rows)
        want = len(VALIDATION_ALL)
        check(n == want, f"HO-val: {n} rows, expected {want}")


# groups whose rows go to their own section of BENCHMARKS.md (issue 15)
PINN_GROUPS = ("PINN", "AS")
GP_BUDGETS = (
    "gp1",
    "gp2",
    "gm",
    "se",
    "gp4_128",
    "gp4_200",
    "gp4_400",
    "gp6_1d",
    "gp6_2d",
    "qsweep",
    "ho",
)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
