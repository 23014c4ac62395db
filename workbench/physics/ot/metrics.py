"""Quality measures of transport plans, computed identically for every solver: the L1 marginal
error (the workbench's one stopping rule), the transport cost and the entropic objective."""

from __future__ import annotations

from typing import Any

import numpy as np


def marginal_error(P: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """e = ||P 1 - a||_1 + ||P^T 1 - b||_1 (the one stopping rule of the workbench)."""
    P = np.asarray(P, dtype=np.float64)
    return float(np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum())


def plan_entropy_term(P: np.ndarray) -> float:
    """sum_ij P_ij log P_ij with 0 log 0 = 0."""
    P = np.asarray(P, dtype=np.float64)
    pos = P[P > 0]
    return float(np.sum(pos * np.log(pos)))


def plan_metrics(problem: Any, P: np.ndarray, reg: float | None) -> dict[str, float]:
    """Metrics computed from a returned plan, identically for every solver."""
    C = np.asarray(problem.C, dtype=np.float64)
    cost = float(np.sum(C * P))
    out = {
        "marginal_error": marginal_error(P, problem.a, problem.b),
        "transport_cost": cost * float(problem.cost_scale),
        "transport_cost_normalised": cost,
    }
    if reg is not None and reg > 0:
        out["entropic_objective"] = cost + reg * plan_entropy_term(P)
    return out
