"""Tune the classical MRI baselines on validation data (``workbench bench mri_tune``).

Validation data: examples of the ``val`` split of :mod:`workbench.datasets.mri_corpus` (template
slab z ∈ [118, 126) and its own phantom seeds) at 128², R = 4 and R = 8, coil maps chosen per
data set (``maps=auto``: ESPIRiT when the calibration region has ≥ 10 lines, else ACS-RSS).
The test split never enters. Stopping rules:

* Every method: λ **and** the iteration count are tuned together (CG-SENSE: λ ∈ {0, 1e-3,
  1e-2, 3e-2, 1e-1} × {5, 10, 20, 40} iterations; L1-wavelet and TV: λ ∈ {1e-3, 3e-3, 1e-2} ×
  {50, 100, 200, 300} iterations). The iteration counts come from one run of the largest count
  per λ (iteration k of that run is the k-iteration result). A fixed 100 iterations left
  L1-wavelet early-stopped at a λ whose minimiser is poor: at λ = 1e-4 its PSNR fell from 29 to
  24 dB between 100 and 300 iterations, because that minimiser is nearly the noisy
  least-squares solution and the iteration count was doing the regularising. Tuning both, with
  λ values large enough that the PSNR no longer falls with the iterations, makes the stopping
  point a validated choice; the table shows each λ's whole course.
* **CG-SENSE with the simulation's true maps** (an oracle for the maps, not a method a user can
  run) gets the same grid, tuned on its own.

One setting per method maximises the mean validation PSNR (fastMRI convention, reference
``sense_noisy_full``) over both accelerations; the per-R optimum is recorded too. The chosen
values are frozen into the solvers' ``Params`` defaults, whose comments name this run. A tiny
run (2 examples at 64², R = 4) is recorded beside it so that the tests can check that the tuner
reproduces its choice.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

# λ grids; the iteration counts are read off one run of the largest count per λ (the solvers
# are deterministic from x = 0, so iteration k of a long run is the k-iteration result)
LAMS = {
    "cg_sense": (0.0, 1e-3, 1e-2, 3e-2, 1e-1),
    "l1_wavelet": (1e-3, 3e-3, 1e-2),
    "tv": (1e-3, 3e-3, 1e-2),
}
ITERS = {"cg_sense": (5, 10, 20, 40), "l1_wavelet": (50, 100, 200, 300), "tv": (50, 100, 200, 300)}
ORACLE = "cg_sense_true_maps"
FULL = {"n": 3, "size": 128, "accels": (4.0, 8.0)}
TINY = {"n": 2, "size": 48, "accels": (4.0,)}
RECORD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "mri_tuning.json")


def val_problems(n: int, size: int, accels, maps: str = "auto") -> dict[float, list]:
    """The validation problems: corpus ``val`` examples 0..n−1 at ``size``² per acceleration."""
    from workbench.datasets.mri_corpus import corpus_problem

    return {
        r: [corpus_problem("val", i, size=size, accel=r, maps=maps) for i in range(n)]
        for r in accels
    }


def _solver(name: str):
    import importlib

    return importlib.import_module(
        f"workbench.solvers.mri.{'cg_sense' if name == ORACLE else name}"
    )


def curve(name: str, lam: float, probs: list) -> np.ndarray:
    """Mean fastMRI PSNR after each iteration 1..max(ITERS) of solver ``name`` at ``lam``
    (tolerance 0: every run takes all its iterations)."""
    mod = _solver(name)
    its = max(ITERS["cg_sense" if name == ORACLE else name])
    out = []
    for p in probs:
        r = mod.solve(p, mod.Params(lam=lam, max_iter=its, tol=0.0))
        h = np.asarray(r.history["psnr"], float)
        # CG stops by itself once its residual vanishes; later iterations would return the
        # same iterate, so its last value stands for them
        out.append(np.concatenate([h, np.full(its - h.size, h[-1])]))
    return np.mean(out, 0)


def tune(name: str, probs_by_r: dict[float, list]) -> dict:
    """Score every (λ, iterations) on every acceleration; choose the best mean PSNR over the
    accelerations (the first on ties, grid order). Also records, per λ, the PSNR at the last
    iteration, to show whether a choice sits on a semi-convergence peak."""
    base = "cg_sense" if name == ORACLE else name
    table = []
    for lam in LAMS[base]:
        curves = {str(r): curve(name, lam, probs) for r, probs in probs_by_r.items()}
        for it in ITERS[base]:
            per_r = {r: float(c[it - 1]) for r, c in curves.items()}
            table.append(
                {
                    "params": {"lam": lam, "max_iter": it},
                    "psnr": per_r,
                    "mean": float(np.mean(list(per_r.values()))),
                }
            )
    best = max(range(len(table)), key=lambda i: (table[i]["mean"], -i))
    per_r_best = {
        r: table[max(range(len(table)), key=lambda i: (table[i]["psnr"][r], -i))]["params"]
        for r in table[0]["psnr"]
    }
    return {"chosen": table[best]["params"], "best_per_R": per_r_best, "table": table}


def run(setting: dict, names=None) -> dict:
    names = names or [*LAMS, ORACLE]
    probs = val_problems(setting["n"], setting["size"], setting["accels"])
    out = {}
    for name in names:
        pb = probs
        if name == ORACLE:
            pb = val_problems(setting["n"], setting["size"], setting["accels"], maps="true")
        out[name] = tune(name, pb)
    maps = {str(r): sorted({p.maps_source for p in ps}) for r, ps in probs.items()}
    return {
        "setting": {**setting, "accels": list(setting["accels"])},
        "maps": maps,
        "methods": out,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="workbench bench mri_tune")
    ap.add_argument("--quick", action="store_true", help="the tiny setting only; writes nothing")
    ap.add_argument(
        "--check", action="store_true", help="correctness gate (finite scores, every method)"
    )
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(1)
    from workbench.bench import check, markdown_table, write_section

    t0 = time.time()
    tiny = run(TINY)
    full = None if a.quick else run(FULL)
    wall = time.time() - t0
    if a.check:
        for res in [tiny] + ([full] if full else []):
            for name in [*LAMS, ORACLE]:
                check(name in res["methods"], f"mri_tune: {name} missing")
                for row in res["methods"][name]["table"]:
                    check(
                        all(np.isfinite(v) for v in row["psnr"].values()),
                        f"{name}: non-finite PSNR",
                    )
    record = {
        "tiny": tiny,
        "full": full,
        "wall_s": wall,
        "command": "workbench bench mri_tune" + (" " + " ".join(argv) if argv else ""),
    }
    if not a.quick:
        os.makedirs(os.path.dirname(RECORD), exist_ok=True)
        with open(RECORD, "w") as f:
            json.dump(record, f, indent=1)
        rows = []
        for name, res in full["methods"].items():
            for row in res["table"]:
                rows.append(
                    {
                        "method": name,
                        "params": json.dumps(row["params"]),
                        **{
                            f"PSNR {r}×": v
                            for r, v in ((float(k), v) for k, v in row["psnr"].items())
                        },
                        "mean": row["mean"],
                        "chosen": "←" if row["params"] == res["chosen"] else "",
                    }
                )
        cols = [
            "method",
            "params",
            *[f"PSNR {float(r)}×" for r in FULL["accels"]],
            "mean",
            "chosen",
        ]
        md = (
            f"Validation only: {FULL['n']} examples of the corpus `val` split at {FULL['size']}², "
            f"R = {', '.join(f'{r:g}' for r in FULL['accels'])}, maps=auto (chosen per data set: "
            f"{json.dumps(full['maps'])}); PSNR in the fastMRI convention vs the noisy fully sampled "
            "SENSE reference. λ × iterations for every method (iteration counts read off one long "
            "run per λ). `cg_sense_true_maps` is the "
            "maps oracle, tuned on its own. The chosen rows are the solvers' defaults. "
            f"Wall time {wall / 60:.1f} min on 1 thread of a shared 2-core CPU.\n\n"
            + markdown_table(rows, cols, ".4g")
        )
        write_section("MRI baseline tuning", md, record["command"])
    print(
        json.dumps(
            {
                k: {n: m["chosen"] for n, m in v["methods"].items()}
                for k, v in (("tiny", tiny), ("full", full))
                if v
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
