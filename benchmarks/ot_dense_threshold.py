"""Where the dense NumPy SNS path stops paying: CPU time of both SNS paths on validation problems.

Validation only (never the benchmark's problems or grid cells): random costs U[0, 1] and point
clouds (X ~ U[0, 1]^2, Y ~ U[0.3, 1.1]^2, squared Euclidean), non-uniform marginals, seeds
101-102, n = m in {100, 200, 300, 400}, eta in {1e2, 1e3, 1e4, 1e5}. Prints the CPU seconds of
the dense path and of the general (blockwise) path and their ratio per problem, and the median
ratio per size; ``_dense_sns.LEAN_MAX`` was set from this table. One thread.

Usage: ``python benchmarks/ot_dense_threshold.py [sizes]`` (comma-separated n, default above).
"""

from __future__ import annotations

import sys
import time

import numpy as np


def _problems(n: int, seed: int):
    from workbench.datasets import ot as dot

    rng = np.random.default_rng(seed)
    a, b = rng.random(n) + 0.1, rng.random(n) + 0.1
    yield "random", dot.make_problem(a, b, rng.random((n, n)), name="val_random")
    X, Y = rng.random((n, 2)), rng.random((n, 2)) * 0.8 + 0.3
    yield "cloud", dot.make_problem(a, b, X=X, Y=Y, cost="sqeuclidean", name="val_cloud")


def _cpu(fn) -> tuple[float, object]:
    t = time.process_time()
    r = fn()
    return time.process_time() - t, r


def main(argv: list[str]) -> int:
    import torch

    from workbench.solvers.ot import _dense_sns
    from workbench.solvers.ot import sinkhorn_newton as sns

    torch.set_num_threads(1)
    sizes = [int(s) for s in argv[0].split(",")] if argv else [100, 200, 300, 400]
    lean = _dense_sns.LEAN_MAX
    _dense_sns.LEAN_MAX = 10**9
    sns.solve(next(_problems(30, 0))[1], sns.Params(reg=0.01))  # imports, untimed
    print(
        "| n | cost | seed | eta | dense CPU s | general CPU s | dense / general | both converged |"
    )
    print("|---|---|---|---|---|---|---|---|")
    med = {}
    for n in sizes:
        ratios = []
        for seed in (101, 102):
            for kind, p in _problems(n, seed):
                for eta in (1e2, 1e3, 1e4, 1e5):
                    prm = sns.Params(reg=1.0 / eta, device="cpu")
                    _dense_sns.LEAN_MAX = 10**9
                    td, rd = _cpu(lambda p=p, prm=prm: sns.solve(p, prm))
                    _dense_sns.LEAN_MAX = 0
                    tg, rg = _cpu(lambda p=p, prm=prm: sns.solve(p, prm))
                    ok = rd.status == rg.status == "converged"
                    ratios.append(td / tg)
                    print(f"| {n} | {kind} | {seed} | {eta:g} | {td:.4f} | {tg:.4f} | {td / tg:.2f} | {'yes' if ok else 'no'} |",
                          flush=True)  # fmt: skip
        med[n] = float(np.median(ratios))
    _dense_sns.LEAN_MAX = lean
    print(
        "\nmedian dense / general CPU time: " + ", ".join(f"n={k}: {v:.2f}" for k, v in med.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
