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
    "gp4_200": (2000, 20),
    "gp4_400": (1500, 0),  # 0: not run (the finish alone takes minutes at 400²)
    "gp6_1d": (500, 100),
    "gp6_2d": (300, 20),
    "qsweep": (1500, 200),
}


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
    if m.get("loss_final") is not None:
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
    r = pinn.solve(
        p, pinn.Params(width=100, depth=3, max_iter=n, lr=1e-3, gamma=100.0, n_checkpoints=20)
    )
    rf = pinn_fourier.solve(
        p,
        pinn_fourier.Params(
            width=100,
            depth=3,
            max_iter=n,
            lr=1e-3,
            gamma=100.0,
            n_features=64,
            sigma=100 / (2 * np.pi),
            n_checkpoints=20,
        ),
    )
    for name, res in (
        ("pinn 3×100 tanh, Adam 1e-3", r),
        ("pinn_fourier 64 RFF σ=15.9 + 3×100", rf),
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
                f"finish {d['finish_s']:.0f} s, {d['cg_iter']} CG iterations: U exact at Adam's "
                f"τ_b, v → {d['trace'][0]:.2e}, after the precision sweep → {d['trace'][-1]:.2e}",
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


COLUMNS = [
    "id",
    "solver",
    "problem",
    "steps",
    "rel_l2",
    "Adam final",
    "best (oracle)",
    "best step",
    "wall_s",
    "s/step",
    "time_to_1e-3_s",
    "loss Adam → finish",
    "note",
    "target",
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks/pde.py", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI scale: ~10× fewer steps everywhere")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument(
        "--only", default="", help="comma-separated groups (development): " + ", ".join(GROUPS)
    )
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    ap.add_argument(
        "--budget",
        default="",
        help="override step budgets, e.g. gm=2000,gp4_200=100 (keys: " + ", ".join(BUDGET) + ")",
    )
    args = ap.parse_args(argv)
    for item in filter(None, (s.strip() for s in args.budget.split(","))):
        k, _, v = item.partition("=")
        if k not in BUDGET:
            ap.error(f"unknown budget key {k!r}")
        BUDGET[k] = (int(v), int(v))
    import torch

    torch.set_num_threads(1)
    quick = bool(args.quick)
    only = [g.strip() for g in args.only.split(",") if g.strip()] or list(GROUPS)
    log = sys.stderr if args.json else sys.stdout
    rows: list[dict] = []
    t_all = time.perf_counter()
    for g in only:
        t = time.perf_counter()
        rows += GROUPS[g](quick)
        print(f"[{g}] {time.perf_counter() - t:.0f} s", file=log, flush=True)
    total = time.perf_counter() - t_all
    from workbench.bench import markdown_table, write_section

    md = markdown_table(rows, [c for c in COLUMNS if any(c in r for r in rows)])
    k = 1 if quick else 0
    budgets = ", ".join(f"{key} {BUDGET[key][k]}" for key in BUDGET)
    md = (
        ("**Reduced (--quick) run.** " if quick else "")
        + ("**Partial run (--only " + ",".join(only) + ").** " if args.only else "")
        + f"One process, {total / 60:.0f} min in all. Adam step budgets of this run: {budgets} "
        "(gp1: GP1 and GP5; gp2: GP-HM, PINN and Fourier PINN alike; gp4_*: 2-D grids; gp6_2d "
        "at 64²). GP runs use Adam (lr 1e-2, β₂ = 0.99, the default; see gp.py for why not 0.999) in "
        "float64. Every GP run ends with the exact finish (Params `exact_u`, default on): at the "
        "final kernel, U is replaced by the exact minimiser of the same GP-HM loss (whitened "
        "least squares; 2-D: Kronecker PCG with a fast-diagonalisation preconditioner), then "
        "τ_b, v by their closed-form optimum and U once more; the loss is shown before → after. "
        "1-D GP-HM / PINN rows share the 400 collocation points of poisson1d_sin100 on [0, 2π]; "
        "errors are relative L2 on the 300-point test grid; `rel_l2` is the **final** error "
        "(after the finish), `Adam final` the last Adam iterate, `best (oracle)` the minimum "
        "over test-grid checkpoints (oracle early stopping, never used as the result). "
        "Threads pinned to 1 and nice 10 on 2 cores shared with other jobs, so wall times are "
        "upper bounds.\n\n" + md
    )
    if not args.no_write:
        write_section(
            "PDE",
            md,
            "workbench bench pde"
            + (" --quick" if quick else "")
            + (f" --only {args.only}" if args.only else "")
            + (f" --budget {args.budget}" if args.budget else ""),
        )
    if args.json:
        print(json.dumps({"domain": "pde", "quick": quick, "rows": rows}, default=float))
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
}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
