"""Compiled view of a :class:`~workbench.problems.PDEProblem`: numeric source, boundary data,
exact solution, grids and the test grid shared by the reference solver, the GPs and the PINNs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from workbench.errors import InputError
from workbench.physics.pde import expr as E
from workbench.problems import PDEProblem

N_TEST = 300
BCS = ("dirichlet", "initial_boundary", "periodic", "neumann", "robin")
DIMS = {
    "poisson": (1, 2),
    "allen_cahn": (1, 2),
    "advection": (2,),
    "drift_poisson": (2,),
    "nl_poisson": (1,),
    "burgers": (2,),
}


@dataclass
class Compiled:
    """Numeric functions of one problem (coordinates as broadcastable arrays)."""

    problem: PDEProblem
    source: Callable[..., np.ndarray]
    boundary: Callable[..., np.ndarray]
    exact: Callable[..., np.ndarray] | None
    source_expr: str
    boundary_expr: str

    @property
    def dim(self) -> int:
        return self.problem.dim

    @property
    def box(self) -> tuple:
        return self.problem.box

    @property
    def coeffs(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.problem.coefficients.items()}

    def test_axes(self, n: int = N_TEST) -> list[np.ndarray]:
        return [np.linspace(lo, hi, n) for lo, hi in self.box]

    def mesh(self, axes: list[np.ndarray]) -> list[np.ndarray]:
        return np.meshgrid(*axes, indexing="ij")

    def f_on(self, axes: list[np.ndarray]) -> np.ndarray:
        return self.source(*self.mesh(axes))

    def g_on(self, axes: list[np.ndarray]) -> np.ndarray:
        return self.boundary(*self.mesh(axes))

    def u_on(self, axes: list[np.ndarray]) -> np.ndarray | None:
        return None if self.exact is None else self.exact(*self.mesh(axes))


def validate(problem: PDEProblem) -> None:
    """Check operator, box, dimension, BC and expressions; raise InputError on the first fault."""
    if problem.operator not in E.OPERATORS:
        raise InputError(f"unknown operator {problem.operator!r}; known: {', '.join(E.OPERATORS)}")
    if not 1 <= problem.dim <= 2:
        raise InputError(f"only 1-D and 2-D boxes are supported, got {problem.dim} dimensions")
    for lo, hi in problem.box:
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise InputError(f"domain interval [{lo}, {hi}] must be finite with lo < hi")
    if problem.dim not in DIMS[problem.operator]:
        raise InputError(
            f"operator {problem.operator!r} needs a {' or '.join(f'{d}-D' for d in DIMS[problem.operator])} box, "
            f"got {problem.dim}-D"
        )
    if len(problem.variables) != problem.dim:
        raise InputError("one variable name per dimension is needed")
    if problem.bc not in BCS:
        raise InputError(f"unknown boundary condition {problem.bc!r}; known: {', '.join(BCS)}")
    if problem.bc in ("neumann", "robin", "periodic"):
        raise InputError(f"{problem.bc} boundary conditions are not supported by the solvers yet")
    if len(problem.n_col) != problem.dim or min(problem.n_col) < 3:
        raise InputError("n_col needs one entry >= 3 per dimension")
    if problem.exact is None and problem.source is None:
        raise InputError("give either an exact solution or a source (plus boundary data)")
    compile_problem(problem)


@lru_cache(maxsize=64)
def _compile(problem_id: str, problem: PDEProblem) -> Compiled:
    v = problem.variables
    coeffs = {k: float(c) for k, c in problem.coefficients.items()}
    names = tuple(coeffs)
    if problem.exact is not None:
        u = E.parse(problem.exact, v, names)
        f = (
            E.parse(problem.source, v, names)
            if problem.source
            else E.derive_source(problem.operator, u, v, coeffs)
        )
        g = E.parse(problem.boundary, v, names) if problem.boundary else u
        ex = E.lambdify(u, v, coeffs)
    else:
        f = E.parse(problem.source, v, names)
        if problem.boundary is None:
            raise InputError("a problem given by its source also needs boundary data")
        g = E.parse(problem.boundary, v, names)
        ex = None
    comp = Compiled(problem, E.lambdify(f, v, coeffs), E.lambdify(g, v, coeffs), ex, str(f), str(g))
    axes = comp.test_axes(7)
    for what, fn in (("source", comp.source), ("boundary", comp.boundary), ("exact", comp.exact)):
        if fn is not None and not np.all(np.isfinite(fn(*comp.mesh(axes)))):
            raise InputError(f"the {what} is not finite everywhere on the domain")
    return comp


def compile_problem(problem: PDEProblem) -> Compiled:
    return _compile(problem.id, problem)


def boundary_mask(shape: tuple[int, ...], bc: str) -> np.ndarray:
    """True at grid nodes that carry boundary data."""
    m = np.zeros(shape, bool)
    if len(shape) == 1:
        m[0] = m[-1] = True
        return m
    m[0, :] = m[-1, :] = m[:, 0] = True
    if bc != "initial_boundary":
        m[:, -1] = True
    return m


def interp_linear(
    axes: list[np.ndarray], values: np.ndarray, new_axes: list[np.ndarray]
) -> np.ndarray:
    """Multilinear interpolation of gridded values onto another tensor grid."""
    from scipy.interpolate import RegularGridInterpolator

    if len(axes) == 1:
        return np.interp(new_axes[0], axes[0], values)
    rgi = RegularGridInterpolator(
        axes, values, method="cubic" if min(values.shape) >= 4 else "linear"
    )
    mesh = np.stack(np.meshgrid(*new_axes, indexing="ij"), -1)
    return rgi(mesh)
