"""Validation runs of the staged PINN samplers (issue 15), on problems the AS benchmark never uses.

``valA``: Δu = f, u = exp(−1000|x − (0.2, −0.4)|²); ``valB``: the same with exp(−500|x − (−0.3,
0.25)|²); ``valC``: the drift operator of peak2d_double with two peaks at (0.35, −0.6) and
(−0.6, 0.3) (centres not at ±(0.5, 0.5)); all on [−1, 1]² with Dirichlet data from u. Never
peak2d_single, peak2d_double or ring2d_front.

One job per call, one JSON line on stdout: final and per-stage rel L2, W1, the share of each
stage's points within 0.1 of each centre, the rel-L2 history, wall and CPU time::

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/pde_as_validate.py valA aas c2 \\
        '{"n_points": 1000, "stage_steps": 300, "adam_iter": 1500, "max_iter": 1550, "stage_lm": 25}'

``The error map: where the final error lies (share within 0.1 of the centres, share below 2 cycles
per unit, i.e. smooth).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

# run as a script, this folder is sys.path[0], and its ot.py (the OT benchmark) would shadow
# POT's ``ot``, which the residual's W1 needs
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402
import torch  # noqa: E402

BOX = ((-1.0, 1.0), (-1.0, 1.0))


def _peak(cx: float, cy: float, a: int = 1000) -> str:
    return f"exp(-{a}*((x-({cx}))**2 + (y-({cy}))**2))"


VAL = {
    "valA": (dict(operator="poisson", exact=_peak(0.2, -0.4)), [(0.2, -0.4)]),
    "valB": (dict(operator="poisson", exact=_peak(-0.3, 0.25, 500)), [(-0.3, 0.25)]),
    "valC": (
        dict(operator="drift_poisson", exact=_peak(0.35, -0.6) + " + " + _peak(-0.6, 0.3)),
        [(0.35, -0.6), (-0.6, 0.3)],
    ),
}


def error_map(u: np.ndarray, pname: str) -> dict:
    """Where the error of u (on the 300² test grid) lies: near the centres, and how smooth."""
    from workbench.physics.pde.metrics import truth_on_test

    t = truth_on_test(problem(pname))
    n = u.shape[0]
    x = np.linspace(-1, 1, n)
    X, Y = np.meshgrid(x, x, indexing="ij")
    e = u - t
    near = np.zeros_like(X, bool)
    for cx, cy in VAL[pname][1]:
        near |= np.hypot(X - cx, Y - cy) < 0.1
    F = np.abs(np.fft.fft2(e)) ** 2
    k = np.fft.fftfreq(n, d=2 / (n - 1))
    K = np.hypot(*np.meshgrid(k, k, indexing="ij"))
    E = float(np.sum(e**2))
    return {
        "near_share": float(np.sum(e[near] ** 2) / E),
        "smooth_share": float(F[K < 2].sum() / F.sum()),
    }


def problem(pname: str):
    from workbench.problems import PDEProblem

    return PDEProblem(box=BOX, variables=("x", "y"), n_col=(64, 64), **VAL[pname][0])


def run(pname: str, sname: str, kw: dict) -> dict:
    from workbench.solvers.pde import pinn_aas, pinn_rad, pinn_rar, pinn_uniform

    mod = {"uniform": pinn_uniform, "rar": pinn_rar, "rad": pinn_rad, "aas": pinn_aas}[sname]
    c0, t0 = time.process_time(), time.perf_counter()
    r = mod.solve(problem(pname), mod.Params(**kw))
    near = []
    for P in r.extras["stage_points"]:
        P = P[np.isfinite(P[:, 0])]
        near.append([float(np.mean(np.hypot(*(P - c).T) < 0.1)) for c in VAL[pname][1]])
    h = r.history
    return {
        "problem": pname,
        "sampler": sname,
        "kw": kw,
        "rel": r.metrics["rel_l2_final"],
        "w1": r.metrics["residual_w1"],
        "wall": time.perf_counter() - t0,
        "cpu": time.process_time() - c0,
        "stage_rel": [float(v) for v in r.extras["stage_rel_l2"]],
        "near": near,
        "hist": [[int(s), float(e)] for s, e in zip(h["step"], h["rel_l2"], strict=True)],
        **error_map(r.extras["u_test"], pname),
    }


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(
        json.dumps({"tag": sys.argv[3], **run(sys.argv[1], sys.argv[2], json.loads(sys.argv[4]))})
    )
