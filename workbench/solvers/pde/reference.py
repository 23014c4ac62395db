"""Reference solver: Chebyshev spectral collocation (1-D, tensor 2-D), finite differences,
characteristics for advection and the method of lines for Burgers.

The discretisations live in :mod:`workbench.physics.pde.reference` (the ground truth of problems
without an exact solution uses them too); this module is the registered solver around them. With
``n = 0`` the resolution is chosen adaptively: the grid grows by 1.5× until two successive
solutions agree on the 300-point test grid to ``tol`` (relative L2); each refinement is one
progress step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from workbench.device import versions
from workbench.physics.pde.compiled import compile_problem
from workbench.physics.pde.metrics import rel_l2
from workbench.physics.pde.reference import solve_reference
from workbench.problems import PDEProblem
from workbench.progress import Progress
from workbench.registry import SolverSpec, param
from workbench.result import Result


@dataclass(frozen=True)
class Params:
    method: str = param(
        "auto",
        "chebyshev (spectral), fd (2nd-order finite differences) or auto",
        choices=("auto", "chebyshev", "fd"),
    )
    n: int = param(0, "grid size per dimension (0 = adaptive refinement)", min=0, max=200_000)
    n_max: int = param(
        0,
        "largest adaptive grid (0 = 4096 in 1-D Chebyshev, 768 in 2-D, 65536 FD 1-D, 512 FD 2-D)",
        min=0,
        max=200_000,
        advanced=True,
    )
    tol: float = param(
        1e-10, "adaptive stop: relative change between successive grids", min=0.0, log=True
    )
    max_iter: int = param(20, "maximum number of grid refinements", min=1, max=100)
    seed: int = param(0, "unused (deterministic solver)", advanced=True)
    device: str = param("cpu", "numpy solver: cpu only", choices=("cpu",), advanced=True)


def solve(problem: PDEProblem, params: Params, progress: Progress | None = None) -> Result:
    """Solve N[u] = f with boundary data to near machine precision (smooth solutions).

    Returns a ``field`` result: ``output`` on the solver's grid, ``extras["x"]`` (and ``"y"``),
    and ``extras["u_test"]`` on the 300-per-dimension test grid.
    """
    t0 = time.perf_counter()
    sol = solve_reference(
        problem,
        method=params.method,
        n=params.n,
        n_max=params.n_max,
        tol=params.tol,
        max_iter=params.max_iter,
        progress=progress,
    )
    extras = {"method": sol.method, **sol.extras, "u_test": sol.u_test, "x": sol.axes[0]}
    if problem.dim == 2:
        extras["y"] = sol.axes[1]
    wall = time.perf_counter() - t0
    metrics = {"wall_s": wall}
    comp = compile_problem(problem)
    if comp.exact is not None:
        metrics["rel_l2"] = rel_l2(sol.u_test, comp.u_on(comp.test_axes()))
    return Result(
        output=sol.u,
        kind="field",
        status=sol.status,
        iterations=sol.iterations,
        metrics=metrics,
        history=sol.history,
        extras=extras,
        meta={"seed": params.seed, "device": "cpu", "wall_s": wall, "versions": versions()},
        message=sol.message or f"{sol.method} solution",
    )


SPEC = SolverSpec(
    name="reference",
    domain="pde",
    title="Reference (Chebyshev / finite differences)",
    Params=Params,
    solve=solve,
    description=(
        "Ground truth: Chebyshev–Gauss–Lobatto collocation with adaptive resolution (fast "
        "diagonalisation in 2-D, Newton or Newton–Krylov for nonlinear and non-separable "
        "operators), second-order finite differences as a cross-check, characteristics for "
        "advection and the method of lines (BDF) for Burgers."
    ),
    reference="L. N. Trefethen, Spectral Methods in MATLAB, SIAM 2000.",
)
