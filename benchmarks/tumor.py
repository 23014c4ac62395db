"""Tumour benchmark (issue 4, spec tumor.md §8): database lookup against CMA-ES on held-out patients.

Held-out synthetic patients are drawn from the identifiable prior with their own RNG stream,
simulated at a finer grid than the database (96^3), thresholded at random per-patient thresholds
theta_WT ~ U[0.15, 0.35], theta_TC ~ U[0.5, 0.85], randomly eroded/dilated by one voxel, and mapped
to the database grid exactly like an upload. The query always assumes the default thresholds
(0.25 / 0.675), so nothing about the patients is "the database checking itself".

Measured: top-1 Dice (WT, TC) and parameter/seed errors against database size (prefixes of the
accepted entries), the oracle gap (true parameters simulated on the database grid), brute-force
and PCA query times and the PCA fidelity (recall@1, overlap@15), and CMA-ES best-so-far Dice
against wall time with the time it needs to equal the lookup.

    python benchmarks/tumor.py [--quick] [--json] [--db PATH] [--patients N] [--cmaes-patients M]
    workbench bench tumor [--quick] [--json]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def _q(x, p):
    x = np.asarray([v for v in x if v == v], dtype=float)
    return float(np.percentile(x, p)) if x.size else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks/tumor.py")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--db", default="")
    ap.add_argument("--patients", type=int, default=None)
    ap.add_argument("--cmaes-patients", type=int, default=None)
    ap.add_argument("--cmaes-gens", type=int, default=None)
    ap.add_argument("--sim-grid", type=int, default=96)
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from workbench.datasets.tumor import random_patient
    from workbench.registry import parse_params
    from workbench.solvers.tumor import cmaes_fit, db_lookup
    from workbench.solvers.tumor import query as Q
    from workbench.solvers.tumor.common import aggregate, atlas_model, dice, masks_on_grid
    from workbench.solvers.tumor.database import open_db

    n_pat = a.patients or (4 if a.quick else 12)
    n_cma = a.cmaes_patients if a.cmaes_patients is not None else (1 if a.quick else 3)
    gens = a.cmaes_gens or (8 if a.quick else 25)
    db = open_db(a.db or None)
    N_all = db.n_ok
    sizes = sorted({s for s in (250, 500, 1000, 2000, 5000) if s < N_all} | {N_all})
    if a.quick:
        sizes = sorted({s for s in (250, 1000) if s < N_all} | {N_all})
    model = atlas_model(db.grid)
    t_gen = time.perf_counter()
    patients = [random_patient(10_000 + i, sim_grid=a.sim_grid, grid=db.grid) for i in range(n_pat)]
    t_gen = time.perf_counter() - t_gen
    per_size: dict[int, list[dict]] = {s: [] for s in sizes}
    timing = {"brute": [], "fast": [], "fast_short": []}
    fidelity = {"recall1": [], "overlap15": []}
    oracle = []
    lookup_best = []
    for p in patients:
        tr = p.meta["truth"]
        wt, tc = masks_on_grid(p, db.grid, db.affine)
        q = Q.PatientQuery(db, wt, tc)
        # oracle: the true parameters on the database grid, default thresholds
        sim = model.simulate([tr["DT_mm2"]], [tr["mu"]], [tr["seed_mm"]])
        u = sim["u"][0]
        oracle.append((dice(u >= 0.25, wt), dice(u >= 0.675, tc)))
        for s in sizes:
            rows = np.arange(s)
            t0 = time.perf_counter()
            sc = Q.scores(db, q, "dice", 0.25, 0.675, rows=rows if s < N_all else None)
            order = Q.rank(sc["score"])
            dt = time.perf_counter() - t0
            if s == N_all:
                timing["brute"].append(dt)
            top = order[:10]
            P = db.row_params(top)
            agg = aggregate(P["DT_mm2"], P["mu"], P["seed_mm"], sc["score"][top], 0.02)
            rec = {
                "dice_wt": float(sc["dice_wt"][order[0]]),
                "dice_tc": float(sc["dice_tc"][order[0]]),
                "seed_err": float(np.linalg.norm(P["seed_mm"][0] - np.asarray(tr["seed_mm"]))),
                "seed_err_k": float(
                    np.linalg.norm(np.asarray(agg["seed_mm"]) - np.asarray(tr["seed_mm"]))
                ),
            }
            for qn, val in (
                ("ell_mm", math.sqrt(P["DT_mm2"][0])),
                ("mu", P["mu"][0]),
                ("lambda_mm", math.sqrt(P["DT_mm2"][0] / P["mu"][0])),
            ):
                rec[f"e_{qn}"] = abs(math.log(val / tr[qn]))
                rec[f"ek_{qn}"] = abs(math.log(agg[qn] / tr[qn]))
            per_size[s].append(rec)
            if s == N_all:
                lookup_best.append(rec["dice_wt"] + rec["dice_tc"])
                brute_order = order
        t0 = time.perf_counter()
        cand = Q.shortlist(db, q, 100)
        t_short = time.perf_counter() - t0
        sc2 = Q.scores(db, q, "dice", 0.25, 0.675, rows=cand)
        fast_order = cand[Q.rank(sc2["score"], cand)]
        timing["fast"].append(time.perf_counter() - t0)
        timing["fast_short"].append(t_short)
        fidelity["recall1"].append(float(fast_order[0] == brute_order[0]))
        fidelity["overlap15"].append(len(set(fast_order[:15]) & set(brute_order[:15])) / 15.0)

    # CMA-ES on the first patients, same objective, database grid
    cma = []
    for i, p in enumerate(patients[:n_cma]):
        lk = db_lookup.solve(p, parse_params(db_lookup.Params, {"db": a.db}))
        r = cmaes_fit.solve(
            p, parse_params(cmaes_fit.Params, {"max_iter": gens, "grid": db.grid, "seed": i})
        )
        h = r.history
        target = lookup_best[i]
        reach = [t for t, b in zip(h["time"], h["best_score"], strict=True) if b >= target]
        lk_time = float(lk.meta["wall_s"])  # whole solve: query, top-k, re-run of the best match
        cma.append(
            {
                "patient": p.name,
                "lookup_dice_sum": target,
                "lookup_s": lk_time,
                "cmaes_final_dice_sum": h["best_score"][-1],
                "cmaes_s": h["time"][-1],
                "cmaes_evals": h["evals"][-1],
                "cmaes_s_to_match": reach[0] if reach else float("nan"),
                "curve": list(zip(h["time"], h["best_score"], strict=True)),
            }
        )

    # ---- report ----------------------------------------------------------------------------
    build_s = float(db.attrs.get("build_wall_s", float("nan")))
    lines = []
    lines.append(
        f"Database: `{db.path.name}` ({db.grid}³, {db.n_ok} accepted of {db.params['status'].size} draws, "
        f"{db.summary()['size_mb']:.1f} MB, build {build_s / 60:.0f} min on a shared 2-core CPU). "
        f"{n_pat} held-out patients simulated at {a.sim_grid}³ with random thresholds and ±1-voxel mask noise "
        f"(generated in {t_gen:.0f} s); queries assume θ = 0.25/0.675.\n"
    )
    lines.append(
        "**T1–T3: top-1 accuracy vs database size** (median [IQR] over patients; errors are |log(q̂/q)|, seed in mm)\n"
    )
    lines.append(
        "| N accepted | Dice WT | Dice TC | err √(DT) | err ρT | err √(D/ρ) | seed err | top-10 err √(DT) | top-10 seed err |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|")

    def mi(v):
        return f"{_q(v, 50):.3f} [{_q(v, 25):.3f}, {_q(v, 75):.3f}]"

    for s in sizes:
        R = per_size[s]
        col = lambda k, R=R: [r[k] for r in R]  # noqa: E731
        lines.append(
            f"| {s} | {mi(col('dice_wt'))} | {mi(col('dice_tc'))} | {_q(col('e_ell_mm'), 50):.2f} | "
            f"{_q(col('e_mu'), 50):.2f} | {_q(col('e_lambda_mm'), 50):.2f} | {_q(col('seed_err'), 50):.1f} | "
            f"{_q(col('ek_ell_mm'), 50):.2f} | {_q(col('seed_err_k'), 50):.1f} |"
        )
    top_full = per_size[N_all]
    gap_wt = [o[0] - r["dice_wt"] for o, r in zip(oracle, top_full, strict=True)]
    gap_tc = [o[1] - r["dice_tc"] for o, r in zip(oracle, top_full, strict=True)]
    lines.append("")
    lines.append(
        f"**T2 oracle gap** (Dice of the true parameters on the DB grid minus top-1 Dice, median): "
        f"WT {_q(gap_wt, 50):.3f}, TC {_q(gap_tc, 50):.3f}; oracle Dice WT median {_q([o[0] for o in oracle], 50):.3f}, "
        f"TC {_q([o[1] for o in oracle], 50):.3f}.\n"
    )
    lines.append(
        f"**T4 query time** (N = {N_all}, warm, median): brute-force Dice {1e3 * _q(timing['brute'], 50):.1f} ms; "
        f"PCA shortlist {1e3 * _q(timing['fast_short'], 50):.1f} ms + exact re-rank of 100 = "
        f"{1e3 * _q(timing['fast'], 50):.1f} ms.  "
        f"**T7 PCA fidelity**: recall@1 {np.mean(fidelity['recall1']):.2f}, overlap@15 {np.mean(fidelity['overlap15']):.2f}.\n"
    )
    if cma:
        lines.append(
            f"**T6 lookup vs CMA-ES** (CMA-ES: population 8, {gens} generations, {db.grid}³ forward solves)\n"
        )
        lines.append(
            "| patient | lookup Dice sum | lookup s (query + re-run) | CMA-ES final Dice sum | CMA-ES s | evals | CMA-ES s to match lookup | speed-up |"
        )
        lines.append("|---|---|---|---|---|---|---|---|")
        for c in cma:
            su = (
                c["cmaes_s_to_match"] / c["lookup_s"]
                if c["cmaes_s_to_match"] == c["cmaes_s_to_match"]
                else float("nan")
            )
            lines.append(
                f"| {c['patient']} | {c['lookup_dice_sum']:.3f} | {c['lookup_s']:.3f} | {c['cmaes_final_dice_sum']:.3f} | "
                f"{c['cmaes_s']:.1f} | {c['cmaes_evals']:.0f} | "
                + (f"{c['cmaes_s_to_match']:.1f}" if su == su else "not reached")
                + f" | {su:.0f}× |"
                if su == su
                else f"| {c['patient']} | {c['lookup_dice_sum']:.3f} | {c['lookup_s']:.3f} | {c['cmaes_final_dice_sum']:.3f} | "
                f"{c['cmaes_s']:.1f} | {c['cmaes_evals']:.0f} | not reached | ≥ {c['cmaes_s'] / c['lookup_s']:.0f}× |"
            )
        saved = np.mean([c["cmaes_s"] - c["lookup_s"] for c in cma])
        lines.append("")
        lines.append(
            f"Break-even: build time / time saved per patient ≈ {build_s / max(saved, 1e-9):.0f} patients "
            f"(vs a full {gens}-generation CMA-ES run).\n"
        )
    md = "\n".join(lines)
    summary = {
        "db": str(db.path),
        "n_accepted": N_all,
        "patients": n_pat,
        "sim_grid": a.sim_grid,
        "median_dice_wt": {str(s): _q([r["dice_wt"] for r in per_size[s]], 50) for s in sizes},
        "median_dice_tc": {str(s): _q([r["dice_tc"] for r in per_size[s]], 50) for s in sizes},
        "median_seed_err_mm": {str(s): _q([r["seed_err"] for r in per_size[s]], 50) for s in sizes},
        "oracle_gap_wt": _q(gap_wt, 50),
        "oracle_gap_tc": _q(gap_tc, 50),
        "brute_ms": 1e3 * _q(timing["brute"], 50),
        "fast_ms": 1e3 * _q(timing["fast"], 50),
        "shortlist_ms": 1e3 * _q(timing["fast_short"], 50),
        "recall1": float(np.mean(fidelity["recall1"])),
        "overlap15": float(np.mean(fidelity["overlap15"])),
        "cmaes": [{k: v for k, v in c.items() if k != "curve"} for c in cma],
        "build_s": build_s,
    }
    if not a.no_write:
        from workbench.bench import write_section

        cmd = "workbench bench tumor " + " ".join(x for x in (argv or []) if x != "--json")
        write_section("Tumour growth", md, cmd)
    if a.json:
        print(json.dumps(summary, default=float))
    else:
        print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
