"""Per-step overhead of the dense SNS path on tiny problems: SNS / RegOT SSNS CPU time.

Validation only (never the benchmark's problems or grid cells, whose images are digits 3 -> 8
and whose random problems use seed 0): digit pairs 0 -> 1, 2 -> 5, 4 -> 7 and 6 -> 9 resized to
5 x 5 and 6 x 6 (W2 and W1 costs: n ~ 15-30 pixels), random costs U[0, 1] and point clouds
(X ~ U[0, 1]^2, Y ~ U[0.3, 1.1]^2, squared Euclidean) with non-uniform marginals of seeds
301-303, n = 20, 40, 60; eta in {1e2, 1e3, 1e4, 1e5}. Both solvers stop on the benchmark's rule
(recomputed L1 marginal error <= 1e-8; RegOT's own tolerance converted by the same ladder as
``benchmarks/ot.py``). CPU seconds of this process, one thread, the median of ``--reps`` runs
(each run is a few milliseconds: the median removes the machine's load spikes).

Usage: ``python benchmarks/ot_dense_overhead.py [--reps 7] [--json OUT.json] [--baseline FILE]``.
Prints a markdown table (one row per problem and eta) and the median and worst ratios.
``--stages`` prints instead the CPU time with the continuation forced to 1-4 stages at small
eta * range(C) (is a shorter schedule there worth a rule?).
``--baseline FILE`` also times the ``solve`` of another version of ``_dense_sns.py`` (e.g.
``git show REV:workbench/solvers/ot/_dense_sns.py > FILE``), alternating with the current one
run by run, so that both see the same machine load ("before" and "after" columns).
"""

from __future__ import annotations

import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [q for q in sys.path if os.path.abspath(q or os.getcwd()) != _here]
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

TOL = 1e-8
ETAS = (1e2, 1e3, 1e4, 1e5)
LADDER = (1.0, 0.1, 0.01, 0.001)


def problems():
    """The validation problems: (label, OTProblem)."""
    from workbench.datasets import ot as dot

    for first, second in ((0, 1), (2, 5), (4, 7), (6, 9)):
        for side in (5, 6):
            A, B = dot.digit_images(first, second, size=side)
            for cost, tag in (("sqeuclidean", "w2"), ("euclidean", "w1")):
                p = dot.from_images(A, B, cost=cost, name=f"digits{first}{second}_{side}_{tag}")
                yield p.name, p
    for seed in (301, 302, 303):
        for n in (20, 40, 60):
            rng = np.random.default_rng(seed)
            m = n - 3
            a, b = rng.random(n) + 0.1, rng.random(m) + 0.1
            yield f"random_{n}_s{seed}", dot.make_problem(a, b, rng.random((n, m)), name="v")
            X, Y = rng.random((n, 2)), 0.3 + 0.8 * rng.random((m, 2))
            yield (
                f"cloud_{n}_s{seed}",
                dot.make_problem(a, b, X=X, Y=Y, cost="sqeuclidean", name="v"),
            )


def _e(P, p) -> float:
    P = np.asarray(P, dtype=np.float64)
    return float(np.abs(P.sum(1) - p.a).sum() + np.abs(P.sum(0) - p.b).sum())


def _cpu(fn, reps: int):
    ts, out = [], None
    for _ in range(reps):
        t = time.process_time()
        out = fn()
        ts.append(time.process_time() - t)
    return float(np.median(ts)), out


def _load(path: str):
    """A module from a file (another version of ``_dense_sns``), imported under its own name."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_dense_sns_baseline", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sns_row(p, eta: float, reps: int, solve=None) -> dict:
    from workbench.solvers.ot import sinkhorn_newton as sns

    prm = sns.Params(reg=1.0 / eta, tol=TOL, device="cpu")
    solve = solve or sns.solve
    t, r = _cpu(lambda: solve(p, prm), reps)
    return {
        "cpu_s": t,
        "e": _e(r.output, p),
        "iterations": r.iterations,
        "newton": int(r.metrics["newton_iterations"]),
        "stages": int(r.metrics["stages"]),
        "status": r.status,
    }


def regot_row(p, eta: float, reps: int) -> dict:
    import regot

    M = np.asfortranarray(p.C)
    base = TOL / math.sqrt(p.n + p.m)
    for f in LADDER:
        r = regot.sinkhorn_ssns(M, p.a, p.b, 1.0 / eta, tol=base * f, max_iter=5000, verbose=0)
        if _e(np.asarray(r.plan), p) <= TOL or int(r.niter) >= 5000:
            break
    tol = base * f
    t, r = _cpu(
        lambda: regot.sinkhorn_ssns(M, p.a, p.b, 1.0 / eta, tol=tol, max_iter=5000, verbose=0),
        reps,
    )
    return {"cpu_s": t, "e": _e(np.asarray(r.plan), p), "iterations": int(r.niter)}


def stages_table(probs, reps: int) -> None:
    """CPU time of SNS with the continuation forced to 1-4 stages at eta 1e2, 3e2, 1e3 (where
    eta * range(C) is small), relative to the automatic schedule's count, on the validation
    problems: is a shorter schedule worth a rule?"""
    from workbench.solvers.ot import sinkhorn_newton as sns

    counts = (1, 2, 3, 4)
    print("| eta | problems | automatic stages | time / time at the automatic count, median (geometric mean) for 1, 2, 3, 4 stages | iterations, mean | all converged |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for eta in (1e2, 3e2, 1e3):
        rel, its, autos, ok = [], [], set(), True
        for _, p in probs:
            auto = len(sns.schedule(eta, float(p.C.max() - p.C.min()), sns.Params(reg=1 / eta)))
            autos.add(auto)
            ts, it = [], []
            for k in counts:
                prm = sns.Params(reg=1.0 / eta, tol=TOL, device="cpu", stages=k)
                t, r = _cpu(lambda prm=prm, p=p: sns.solve(p, prm), reps)
                ok &= r.status == "converged"
                ts.append(t)
                it.append(r.iterations)
            rel.append(np.array(ts) / ts[counts.index(auto)] if auto in counts else np.nan)
            its.append(it)
        q = np.array(rel)
        med, geo = np.median(q, axis=0), np.exp(np.log(q).mean(axis=0))
        print(f"| {eta:g} | {len(probs)} | {sorted(autos)} | "
              + ", ".join(f"{a:.2f} ({b:.2f})" for a, b in zip(med, geo, strict=True))
              + f" | {', '.join(f'{x:.1f}' for x in np.mean(its, axis=0))} | {'yes' if ok else 'no'} |",
              flush=True)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--json", default="")
    ap.add_argument("--label", default="")
    ap.add_argument("--baseline", default="", help="another _dense_sns.py, timed alongside")
    ap.add_argument("--stages", action="store_true", help="only the stage-count table")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    probs = list(problems())
    if args.stages:
        sns_row(probs[0][1], 100.0, 2)  # imports, untimed
        stages_table(probs, args.reps)
        return 0
    old = _load(args.baseline).solve if args.baseline else None
    sns_row(probs[0][1], 100.0, 2)  # imports, untimed
    regot_row(probs[0][1], 100.0, 1)
    rows = []
    head = "| problem | n x m | eta | SNS CPU ms | SNS it (Newton) | stages | RegOT CPU ms | RegOT it | SNS / RegOT | both <= 1e-8 |"  # fmt: skip
    if old:
        head += " before: SNS CPU ms | before: SNS / RegOT | before: it |"
    print(head)
    print("|---" * head.count(" | ") + "|")
    for label, p in probs:
        for eta in ETAS:
            s, g = sns_row(p, eta, args.reps), regot_row(p, eta, args.reps)
            ok = s["e"] <= TOL and g["e"] <= TOL
            q = s["cpu_s"] / g["cpu_s"]
            row = {"problem": label, "n": p.n, "m": p.m, "eta": eta, "sns": s, "regot": g,
                   "ratio": q, "ok": ok}  # fmt: skip
            line = (f"| {label} | {p.n}x{p.m} | {eta:g} | {1e3 * s['cpu_s']:.2f} | {s['iterations']} ({s['newton']}) | "
                    f"{s['stages']} | {1e3 * g['cpu_s']:.2f} | {g['iterations']} | {q:.2f} | {'yes' if ok else 'no'} |")  # fmt: skip
            if old:
                b = sns_row(p, eta, args.reps, old)
                row["before"], row["ratio_before"] = b, b["cpu_s"] / g["cpu_s"]
                line += f" {1e3 * b['cpu_s']:.2f} | {row['ratio_before']:.2f} | {b['iterations']} |"
            rows.append(row)
            print(line, flush=True)
    for key, name in (("ratio", "SNS"), ("ratio_before", "before: SNS")):
        if key not in rows[0]:
            continue
        qs = np.array([r[key] for r in rows])
        print(f"\n{name} / RegOT CPU time over {len(rows)} problems: median {np.median(qs):.2f}, "
              f"max {qs.max():.2f}; > 2x: {int((qs > 2).sum())}; by eta: "
              + ", ".join(f"{e:g}: median {np.median([r[key] for r in rows if r['eta'] == e]):.2f} "
                          f"max {max(r[key] for r in rows if r['eta'] == e):.2f}" for e in ETAS))  # fmt: skip
    if old:
        sp = np.array([r["before"]["cpu_s"] / r["sns"]["cpu_s"] for r in rows])
        print(
            f"before / after CPU time: median {np.median(sp):.2f}, min {sp.min():.2f}, max {sp.max():.2f}"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"label": args.label, "reps": args.reps, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
