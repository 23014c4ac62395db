"""Quality measures of PDE solutions: relative L2 and max error on the 300-per-dimension test
grid, against the exact solution or, where there is none, the reference discretisation."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from workbench.physics.pde.compiled import N_TEST, compile_problem, interp_linear
from workbench.problems import PDEProblem


def rel_l2(pred: np.ndarray, true: np.ndarray) -> float:
    """‖pred − true‖₂ / ‖true‖₂ (absolute error when the truth is zero)."""
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    den = float(np.linalg.norm(true))
    num = float(np.linalg.norm(pred - true))
    return num / den if den > 0 else num


@lru_cache(maxsize=16)
def _truth(problem_id: str, problem: PDEProblem) -> np.ndarray:
    comp = compile_problem(problem)
    if comp.exact is not None:
        return comp.u_on(comp.test_axes())
    from workbench.physics.pde.reference import solve_reference

    return solve_reference(problem).u_test


def truth_on_test(problem: PDEProblem) -> np.ndarray:
    """The exact solution on the 300-per-dimension test grid, or the reference solution there."""
    return _truth(problem.id, problem)


def prediction_on_test(problem: PDEProblem, result) -> np.ndarray:
    """A result's solution on the 300-per-dimension test grid (its own or interpolated)."""
    u = result.extras.get("u_test")
    shape = (N_TEST,) * problem.dim
    if u is not None and np.shape(u) == shape:
        return np.asarray(u, float)
    axes = [np.asarray(result.extras["x"], float)]
    if problem.dim == 2:
        axes.append(np.asarray(result.extras["y"], float))
    return interp_linear(
        axes, np.asarray(result.output, float), compile_problem(problem).test_axes()
    )


def evaluate(problem: PDEProblem, result) -> dict[str, float]:
    """Relative L2 (and max error) on the test grid, against the exact or the reference solution."""
    if result.output is None or np.size(result.output) == 0:
        return {}
    pred = prediction_on_test(problem, result)
    true = truth_on_test(problem)
    if not np.all(np.isfinite(pred)):
        return {"rel_l2": float("nan")}
    return {"rel_l2": rel_l2(pred, true), "max_abs_err": float(np.abs(pred - true).max())}
