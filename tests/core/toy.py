"""A toy domain for testing the core without any real solver: least squares by gradient descent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from workbench.errors import InputError
from workbench.problems import Problem
from workbench.progress import ensure
from workbench.registry import DomainSpec, Sample, SolverSpec, param
from workbench.result import Result


@dataclass(frozen=True, eq=False, kw_only=True)
class ToyProblem(Problem):
    domain: ClassVar[str] = "toy"
    A: np.ndarray
    y: np.ndarray
    x_true: np.ndarray | None = None


def make(n: int = 8, seed: int = 0) -> ToyProblem:
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((2 * n, n))
    x = rng.standard_normal(n)
    return ToyProblem(name=f"toy_{n}", A=A, y=A @ x, x_true=x)


def load(data: bytes, filename: str) -> ToyProblem:
    from workbench.io.validate import check_finite, load_npz

    arrays = load_npz(data, filename)
    if "A" not in arrays or "y" not in arrays:
        raise InputError(f"{filename} needs arrays A and y")
    A = check_finite(np.asarray(arrays["A"], float), "A")
    y = check_finite(np.asarray(arrays["y"], float), "y")
    if A.ndim != 2 or y.shape != (A.shape[0],):
        raise InputError(f"shapes do not fit: A {A.shape}, y {y.shape}")
    return ToyProblem(name=filename, A=A, y=y)


@dataclass(frozen=True)
class Params:
    max_iter: int = param(200, "iterations", min=1, max=100_000)
    lr: float = param(0.01, "step size", min=0.0)
    seed: int = param(0, "seed of the random start")
    tol: float = param(1e-10, "stop when the gradient norm falls below this", min=0.0)


def solve(problem: ToyProblem, params: Params, progress=None) -> Result:
    progress = ensure(progress)
    rng = np.random.default_rng(params.seed)
    x = rng.standard_normal(problem.A.shape[1])
    hist = {"step": [], "residual": []}
    status = "max_iter"
    k = 0
    for k in range(1, params.max_iter + 1):
        g = problem.A.T @ (problem.A @ x - problem.y)
        x = x - params.lr * g
        r = float(np.linalg.norm(problem.A @ x - problem.y))
        hist["step"].append(k)
        hist["residual"].append(r)
        progress(k, params.max_iter, residual=r)
        if np.linalg.norm(g) < params.tol:
            status = "converged"
            break
        if progress.cancelled:
            status = "cancelled"
            break
    return Result(output=x, kind="parameters", status=status, iterations=k, history=hist)


def evaluate(problem: ToyProblem, result: Result) -> dict[str, float]:
    if problem.x_true is None:
        return {}
    return {"error": float(np.linalg.norm(result.output - problem.x_true))}


def figure(problem, result):
    from workbench.viz.common import line_overlay

    return line_overlay({"x": result.output, "x_true": problem.x_true})


SPEC = SolverSpec("gd", "toy", "Gradient descent", Params, solve, description="toy")
DOMAIN = DomainSpec(
    name="toy",
    title="Toy",
    problem_type=ToyProblem,
    samples=(
        Sample("toy_8", "8 unknowns", lambda: make(8)),
        Sample("toy_16", "16 unknowns", lambda: make(16)),
    ),
    evaluate=evaluate,
    figure="toy:figure",
    load=load,
    upload_types=("npz",),
)

# toy.py is its own catalog: registry.add_catalog(solvers="toy", domains="toy")
SOLVER_MODULES = ["toy"]
DOMAIN_MODULES = ["toy"]
