"""Exact optimal transport by the network simplex (POT's ``ot.emd``), the reference solver.

Solves ``min_P <C, P>`` s.t. ``P 1 = a``, ``P^T 1 = b``, ``P >= 0`` exactly. If the simplex hits
``num_iter_max`` pivots before optimality the status is ``max_iter`` (never silent).

Reference: N. Bonneel, M. van de Panne, S. Paris, W. Heidrich, "Displacement interpolation using
Lagrangian mass transport", SIGGRAPH Asia 2011; POT (R. Flamary et al., JMLR 2021).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.device import versions
from workbench.physics.ot.metrics import plan_metrics
from workbench.progress import Progress, ensure
from workbench.registry import SolverSpec, param
from workbench.result import Result
from workbench.solvers.ot import _core


@dataclass(frozen=True)
class Params:
    num_iter_max: int = param(
        10_000_000,
        "Maximum network-simplex pivots (POT numItermax); hitting it gives status max_iter.",
        min=1,
        max=10**10,
    )
    tol: float = param(
        1e-8,
        "Marginal error (L1) above which the returned plan is not called converged.",
        min=1e-14,
        max=1.0,
        log=True,
        advanced=True,
    )
    seed: int = param(
        0, "Unused (the method is deterministic); kept for the common interface.", advanced=True
    )


def solve(problem: Any, params: Params, progress: Progress | None = None) -> Result:
    import ot

    progress = ensure(progress)
    clock = _core.Timer()
    a = np.asarray(problem.a, dtype=np.float64)
    b = np.asarray(problem.b, dtype=np.float64)
    C = np.ascontiguousarray(problem.C, dtype=np.float64)
    if a.size * b.size > _core.MAX_ENTRIES:
        raise _core.InputError(f"problem too large for the exact solver: {a.size}x{b.size}")
    # POT checks the masses to ~1e-9 relative; renormalise tiny round-off exactly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cap is reported through the status instead
        P, log = ot.emd(a, b / b.sum() * a.sum(), C, numItermax=int(params.num_iter_max), log=True)
    P = np.asarray(P, dtype=np.float64)
    warning = str(log.get("warning") or "")
    m = plan_metrics(problem, P, None)
    hit_cap = "numItermax" in warning or int(log.get("result_code", 1)) == 3
    if hit_cap:
        status = "max_iter"
    elif int(log.get("result_code", 1)) != 1 or not np.isfinite(m["marginal_error"]):
        status = "failed"
    else:
        status = "converged" if m["marginal_error"] <= max(params.tol, 1e-8) else "failed"
    wall = clock()
    m["wall_s"] = wall
    m["iterations"] = 1.0
    progress(1, 1, e=m["marginal_error"])
    msg = {
        "converged": "exact optimum (network simplex)",
        "max_iter": f"network simplex stopped at num_iter_max={params.num_iter_max} before optimality: {warning}",
        "failed": f"network simplex failed: {warning or 'result code ' + str(log.get('result_code'))}",
    }[status]
    return Result(
        output=P,
        kind="plan",
        status=status,
        iterations=1,
        metrics={k: float(v) for k, v in m.items()},
        history={"step": [1], "e": [m["marginal_error"]], "time": [wall]},
        extras={
            "x": np.asarray(log["u"], dtype=np.float64),
            "y": np.asarray(log["v"], dtype=np.float64),
        },
        meta={
            "solver": "emd",
            "wall_s": wall,
            "device": "cpu",
            "pot_warning": warning,
            "versions": versions(),
        },
        message=msg,
    )


SPEC = SolverSpec(
    name="emd",
    domain="ot",
    title="Exact EMD (network simplex, POT)",
    Params=Params,
    solve=solve,
    description=(
        "POT's network simplex: the exact (unregularised) optimal plan, used as the reference for "
        "the entropic solvers' cost gap. Sparse plan; no reg."
    ),
    reference="N. Bonneel et al., SIGGRAPH Asia 2011; R. Flamary et al., POT, JMLR 22(78), 2021.",
)
