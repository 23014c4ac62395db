"""Validation sweep behind the lookup's default local refinement (``db_lookup`` ``refine``).

    python benchmarks/tumor_refine_sweep.py OUT.json [--matched 30000-30011] [--mismatch 50000-50009]
    python benchmarks/tumor_refine_sweep.py --summary OUT.json [OUT2.json ...]

Validation patients only, on RNG streams no table of ``benchmarks/tumor.py`` uses: the matched
generator (``random_patient``) on streams 30 000+ (those that chose ``align_sims``) and the
model-mismatch generator (``mismatch_patient``) on streams 50 000+, both at 96^3 like the test
patients and cached with them (``~/.cache/workbench/tumor_bench``). The test patients (10 000+,
40 000+) are never read here.

Per patient, on the shipped database (full size) and its 64^3 grid, with the default thresholds:
the plain rank 1, the aligned re-rank with 8 re-simulations (the start of every refinement) and
with 16 (the "more candidates" alternative), and three refinements of the aligned answer run to
MAX_BUDGET forward solves - compass search with initial log-steps 0.3 and 0.6, and a small
CMA-ES (step 0.3, seed 0) - read at the budgets in BUDGETS (nothing in a refinement depends on
its budget before the cap, so the first polls of the long run are the run with that budget).
Score = (Dice WT + Dice TC) / 2 on the database grid, the CMA-ES baseline's objective.

Rule fixed before the sweep ran: the default is the (method, steps) with the highest mean score
over all validation patients at the largest budget (MAX_BUDGET, the cost cap: with the aligned
stage's at most 24 solves that is ~1/20 of CMA-ES's 3200); its default budget is the smallest
in BUDGETS whose mean is within 0.002 of its own mean at MAX_BUDGET.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

MAX_BUDGET = 120
BUDGETS = (30, 60, 90, 120)
VARIANTS = {
    "pattern_0.3": ("pattern", (0.3, 0.3)),
    "pattern_0.6": ("pattern", (0.6, 0.6)),
    "cmaes_0.3": ("cmaes", (0.3, 0.3)),
}


def _range(s: str) -> list[int]:
    if not s:
        return []
    a, _, b = s.partition("-")
    return list(range(int(a), int(b or a) + 1))


def at_budget(trace, b: int, start: float) -> float:
    got = [s for e, s in trace if e <= b]
    return got[-1] if got else start


def run(out: Path, matched: list[int], mismatch: list[int]) -> None:
    import torch

    from benchmarks.tumor import cached_patient
    from workbench.physics.tumor.forward import atlas_model
    from workbench.solvers.tumor import query as Q
    from workbench.solvers.tumor.align import align_refine, wt_centroids
    from workbench.solvers.tumor.common import masks_on_grid
    from workbench.solvers.tumor.database import open_db
    from workbench.solvers.tumor.refine import local_refine

    torch.set_num_threads(1)
    cache = Path.home() / ".cache" / "workbench" / "tumor_bench"
    db = open_db(None)
    wt_centroids(db)
    model = atlas_model(db.grid, float(db.attrs["R"]))
    rows = json.loads(out.read_text()) if out.exists() else []
    done = {r["patient"] for r in rows}
    for kind, seeds in (("mismatch", mismatch), ("matched", matched)):
        for s in seeds:
            p, _ = cached_patient(s, 96, db.grid, cache, kind=kind)
            if p.name in done:
                continue
            wt, tc = masks_on_grid(p, db.grid, db.affine)
            q = Q.PatientQuery(db, wt, tc)
            sc = Q.scores(db, q, "dice", 0.25, 0.675)
            order = Q.rank(sc["score"])
            rec = {"patient": p.name, "kind": kind, "plain": float(sc["score"][order[0]]) / 2}
            t0 = time.process_time()
            al = align_refine(db, q, order, 0.25, 0.675, n_sim=8, model=model)
            rec["align8"], rec["align8_cpu_s"] = al["score"] / 2, time.process_time() - t0
            rec["align8_sims"] = al["n_sim"]
            t0 = time.process_time()
            al16 = align_refine(db, q, order, 0.25, 0.675, n_sim=16, model=model)
            rec["align16"], rec["align16_cpu_s"] = al16["score"] / 2, time.process_time() - t0
            rec["align16_sims"] = al16["n_sim"]
            for name, (method, steps) in VARIANTS.items():
                t0 = time.process_time()
                r = local_refine(
                    model, wt, tc, al, 0.25, 0.675, method=method, budget=MAX_BUDGET,
                    step_log=steps,
                )  # fmt: skip
                rec[name + "_cpu_s"] = time.process_time() - t0
                for b in BUDGETS:
                    rec[f"{name}@{b}"] = at_budget(r["trace"], b, al["score"]) / 2
            print(json.dumps(rec), flush=True)
            rows.append(rec)
            out.write_text(json.dumps(rows, indent=1))


def summary(paths: list[Path]) -> None:
    rows, seen = [], set()
    for r in (r for p in paths for r in json.loads(p.read_text())):
        if r["patient"] not in seen:  # files of split runs may share a patient: count it once
            seen.add(r["patient"])
            rows.append(r)
    keys = ["plain", "align8", "align16"] + [f"{v}@{b}" for v in VARIANTS for b in BUDGETS]
    print(f"{len(rows)} validation patients")
    print(f"| variant | all (n={len(rows)}) | matched | mismatch | min | cpu s (median) |")
    print("|---|---|---|---|---|---|")
    for k in keys:
        v = np.array([r[k] for r in rows])
        by = {
            kind: np.mean([r[k] for r in rows if r["kind"] == kind])
            for kind in ("matched", "mismatch")
        }
        base = k.split("@")[0]
        cpu = (
            np.median([r[base + "_cpu_s"] for r in rows]) if base + "_cpu_s" in rows[0] else np.nan
        )
        print(
            f"| {k} | {v.mean():.4f} | {by['matched']:.4f} | {by['mismatch']:.4f} | {v.min():.3f} | "
            f"{cpu:.1f} |"
        )
    best = max(VARIANTS, key=lambda v: np.mean([r[f"{v}@{MAX_BUDGET}"] for r in rows]))
    top = np.mean([r[f"{best}@{MAX_BUDGET}"] for r in rows])
    b = min(bb for bb in BUDGETS if np.mean([r[f"{best}@{bb}"] for r in rows]) >= top - 0.002)
    print(f"rule: best variant {best} (mean {top:.4f} at {MAX_BUDGET}); default budget {b}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--summary":
        summary([Path(x) for x in args[1:]])
        raise SystemExit(0)
    opts = {"--matched": "30000-30011", "--mismatch": "50000-50009"}
    for o in opts:
        if o in args:
            i = args.index(o)
            opts[o] = args[i + 1]
            del args[i : i + 2]
    run(Path(args[0]), _range(opts["--matched"]), _range(opts["--mismatch"]))
