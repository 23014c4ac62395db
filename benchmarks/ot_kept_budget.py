"""Validation runs behind SNS's kept-entries memory budget (``max_memory_mb``, ``KEPT_BYTES``).

    python benchmarks/ot_kept_budget.py N SEED CAP_CPU_S ['{"max_kappa": 256}' ...]

Point clouds of the benchmark's family (X ~ U[0,1]^2, Y ~ U[0.3,1.1]^2, weights U + 0.1, squared
distance / max) at eta = 1e3, tol 1e-8, **validation seeds only** (7, 11: never seed 0, the
``--cloud10k`` benchmark's cloud, nor the grid's cells). SNS at its defaults, or with the JSON
overrides given, capped at CAP_CPU_S seconds of this process's CPU time; prints one JSON line
(status, e, CPU and wall seconds, peak RSS, iterations, passes, largest density).

Results (2026-12-07, one thread, shared 2-core machine; CPU seconds):

- seed 7, n = 10 000 (the lead's probe, per-row caps before the budget existed): 256 per row
  not converged at 200 s (e 1.2e-6, 775 MB); 512 converged in 139 s (1.2 GB); 1024 in 63 s
  (1.96 GB). The RSS slope, ~150 bytes per kept entry, is ``KEPT_BYTES`` (also measured on
  seed 11 at n = 5000: 243 MB at 1.28e6 entries, 821 MB at 5.12e6).
- seed 11, n = 5000: default budget (1536 MB; the 20 % density cap binds, 640 per row used)
  converged in 17.7 s, 17 Newton + 10 Sinkhorn, 42 passes, 1.11 GB; the former 256-per-row cap
  in 29.0 s, 24 Newton + 113 Sinkhorn, 259 passes, 514 MB.
- seed 11, n = 10 000: default budget (1.07e7 entries, 1074 per row) converged in 79 s,
  21 Newton + 11 Sinkhorn, 49 passes, 2.18 GB.

The default is the largest budget that keeps a 10 000-point solve near half of issue 17's 4 GB
bound (~2.2 GB): more kept entries were faster at every step measured above, so the memory
bound, not speed, sets it.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def run(n: int, seed: int, cap: float, overrides: dict) -> dict:
    import numpy as np
    import torch

    from workbench.progress import Progress
    from workbench.solvers.ot import sinkhorn_newton as sns

    torch.set_num_threads(1)
    if seed == 0:
        raise SystemExit("seed 0 is the benchmark's cloud: validation seeds only")
    rng = np.random.default_rng(seed)
    X, Y = rng.random((n, 2)), 0.3 + 0.8 * rng.random((n, 2))
    a, b = rng.random(n) + 0.1, rng.random(n) + 0.1
    prm = sns.Params(reg=1e-3, tol=1e-8, device="cpu", **overrides)
    c0, t0 = time.process_time(), time.perf_counter()
    prog = Progress(keep=1)
    prog._callback = lambda step, total, m: (
        prog.cancel() if time.process_time() - c0 > cap else None
    )
    out = sns.solve_points(X, Y, a, b, reg=1e-3, params=prm, progress=prog)
    st = out["stats"]
    return {
        "n": n,
        "seed": seed,
        "overrides": overrides,
        "status": out["status"],
        "e": out["marginal_error"],
        "cpu_s": round(time.process_time() - c0, 1),
        "wall_s": round(time.perf_counter() - t0, 1),
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "sinkhorn": int(st["sinkhorn_iterations"]),
        "newton": int(st["newton_iterations"]),
        "passes": int(st["passes"]),
        "max_density": max(out["history"]["density"] or [0.0]),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    n, seed, cap = int(args[0]), int(args[1]), float(args[2])
    for extra in args[3:] or ["{}"]:
        print(json.dumps(run(n, seed, cap, json.loads(extra))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
