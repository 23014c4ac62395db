"""The reference discretisations of the PDEs: Chebyshev spectral collocation (1-D, tensor 2-D),
second-order finite differences, characteristics for advection and the method of lines for Burgers.

:func:`solve_reference` refines the grid by 1.5× (Chebyshev) or 2× (FD) until two successive
solutions agree on the 300-point test grid to ``tol`` (relative L2). The reference solver wraps it
in a :class:`~workbench.result.Result`; the ground truth of problems without an exact solution
(:func:`workbench.physics.pde.metrics.truth_on_test`) is the same computation at its defaults.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from workbench.errors import InputError
from workbench.physics.pde import cheb, fd
from workbench.physics.pde import spectral as S
from workbench.physics.pde.compiled import Compiled, compile_problem, interp_linear, validate
from workbench.problems import PDEProblem
from workbench.progress import Progress, ensure


def rel_change(new: np.ndarray, old: np.ndarray) -> float:
    """‖new − old‖₂ / ‖old‖₂ (absolute change when old is zero)."""
    den = float(np.linalg.norm(old))
    num = float(np.linalg.norm(np.asarray(new, float) - old))
    return num / den if den > 0 else num


@dataclass
class ReferenceSolution:
    """A reference solution: values on the solver's grid and on the 300-per-dimension test grid."""

    method: str
    axes: list[np.ndarray]
    u: np.ndarray
    u_test: np.ndarray
    iterations: int
    status: str = "converged"
    message: str = ""
    history: dict[str, list[float]] = field(default_factory=dict)
    extras: dict = field(default_factory=dict)


def choose_method(problem: PDEProblem, method: str = "auto") -> str:
    """The discretisation used for a problem: characteristics, mol, chebyshev or fd."""
    if problem.operator == "advection":
        return "characteristics"
    if problem.operator == "burgers":
        return "mol"
    if method == "auto":
        return "fd" if problem.operator == "nl_poisson" and problem.dim == 1 else "chebyshev"
    return method


def _solve_at(comp: Compiled, method: str, n: int):
    p = comp.problem
    op, box, cf = p.operator, p.box, comp.coeffs
    t_axes = comp.test_axes()
    if p.dim == 1:
        g = (float(comp.boundary(np.array(box[0][0]))), float(comp.boundary(np.array(box[0][1]))))
        if method == "chebyshev":
            x, u, it, r = cheb.solve_1d(op, n, box, comp.source, g, cf)
            test = S.bary_matrix(x, t_axes[0]) @ u
        else:
            x = np.linspace(*box[0], n + 1)
            u, it, r = fd.solve_1d(op, x, comp.source(x), g[0], g[1], cf)
            test = np.interp(t_axes[0], x, u) if n + 1 != len(t_axes[0]) else u
        return [x], u, test, it, r
    if method == "chebyshev":
        x, y, U, it, r = cheb.solve_2d(op, (n, n), box, comp.source, comp.boundary, cf)
        test = S.bary_matrix(x, t_axes[0]) @ U @ S.bary_matrix(y, t_axes[1]).T
        return [x, y], U, test, it, r
    axes = [np.linspace(lo, hi, n + 1) for lo, hi in box]
    F = comp.f_on(axes)
    Gb = comp.g_on(axes)
    U, it, r = fd.solve_2d(op, axes, F, Gb, cf)
    return axes, U, interp_linear(axes, U, t_axes), it, r


def _characteristics(comp: Compiled):
    """β u_x + u_y = 0: u is constant along x − βy; inflow data on y = y0 and the upwind x face."""
    (x0, x1), (y0, _) = comp.box
    beta = comp.coeffs.get("beta", 1.0)
    axes = comp.test_axes()
    X, Y = comp.mesh(axes)
    xi = X - beta * (Y - y0)
    if beta >= 0:
        from_bottom = xi >= x0
        side_x = np.full_like(X, x0)
        side_y = y0 + (x0 - xi) / beta if beta != 0 else Y
    else:
        from_bottom = xi <= x1
        side_x = np.full_like(X, x1)
        side_y = y0 + (x1 - xi) / beta
    U = np.where(
        from_bottom,
        comp.boundary(np.clip(xi, x0, x1), np.full_like(X, y0)),
        comp.boundary(side_x, np.where(from_bottom, Y, side_y)),
    )
    return axes, U


def _burgers(comp: Compiled, n: int):
    """Method of lines: centred FD in x on n + 1 nodes, implicit BDF in t (sparse Jacobian)."""
    import scipy.sparse as sps
    from scipy.integrate import solve_ivp

    (x0, x1), (t0, t1) = comp.box
    z0, z1 = comp.coeffs.get("z0", 0.05), comp.coeffs.get("z1", 1.0)
    x = np.linspace(x0, x1, n + 1)
    h = x[1] - x[0]
    xi = x[1:-1]
    axes = comp.test_axes()
    u0 = comp.boundary(xi, np.full_like(xi, t0))

    def bc(t):
        return float(comp.boundary(np.array(x0), np.array(t))), float(
            comp.boundary(np.array(x1), np.array(t))
        )

    def rhs(t, v):
        a, b = bc(t)
        u = np.concatenate([[a], v, [b]])
        ux = (u[2:] - u[:-2]) / (2 * h)
        uxx = (u[2:] - 2 * u[1:-1] + u[:-2]) / h**2
        return z0 * uxx - z1 * v * ux

    m = n - 1
    sparsity = sps.diags([np.ones(m - 1), np.ones(m), np.ones(m - 1)], [-1, 0, 1])
    sol = solve_ivp(
        rhs,
        (t0, t1),
        u0,
        method="BDF",
        t_eval=axes[1],
        rtol=1e-9,
        atol=1e-11,
        jac_sparsity=sparsity,
    )
    if not sol.success:
        raise RuntimeError(f"method of lines failed: {sol.message}")
    V = sol.y  # (m, nt)
    full = np.empty((n + 1, len(axes[1])))
    full[1:-1] = V
    for k, t in enumerate(axes[1]):
        full[0, k], full[-1, k] = bc(t)
    from scipy.interpolate import CubicSpline

    test = CubicSpline(x, full, axis=0)(axes[0])
    return [x, axes[1]], full, test, sol.nfev


def solve_reference(
    problem: PDEProblem,
    *,
    method: str = "auto",
    n: int = 0,
    n_max: int = 0,
    tol: float = 1e-10,
    max_iter: int = 20,
    progress: Progress | None = None,
) -> ReferenceSolution:
    """Solve N[u] = f with boundary data to near machine precision (smooth solutions).

    ``n = 0`` refines adaptively up to ``n_max`` (0: 4096 in 1-D Chebyshev, 768 in 2-D, 65536 FD
    1-D, 512 FD 2-D); each refinement is one progress step and may be cancelled there.
    """
    progress = ensure(progress)
    fixed = bool(n)
    t0 = time.perf_counter()
    validate(problem)
    comp = compile_problem(problem)
    method = choose_method(problem, method)
    extras: dict = {}
    history: dict[str, list[float]] = {"step": [], "n": [], "change": [], "time": []}
    status, message = "converged", ""
    if method == "characteristics":
        axes, U = _characteristics(comp)
        test = U
        progress(1, 1, n=len(axes[0]))
        its = 1
    elif method == "mol":
        n = n or 1024
        axes, U, test, nfev = _burgers(comp, n)
        extras["nfev"] = int(nfev)
        progress(1, 1, n=n)
        its = 1
    else:
        if problem.dim == 1:
            nmax = n_max or (4096 if method == "chebyshev" else 65536)
            n = n or 32
        else:
            nmax = n_max or (768 if method == "chebyshev" else 512)
            n = n or 16
        prev = None
        its = 0
        while True:
            its += 1
            try:
                axes, U, test, nit, res = _solve_at(comp, method, n)
            except np.linalg.LinAlgError as e:
                raise InputError(f"reference solve failed at n={n}: {e}") from None
            change = rel_change(test, prev) if prev is not None else float("inf")
            history["step"].append(its)
            history["n"].append(n)
            history["change"].append(change if np.isfinite(change) else 1.0)
            history["time"].append(time.perf_counter() - t0)
            progress(its, max_iter, n=n, change=history["change"][-1])
            extras.update(newton_iterations=int(nit), residual=float(res), n=int(n))
            if fixed:
                break
            if change <= tol:
                break
            if progress.cancelled:
                status, message = "cancelled", f"cancelled at n={n}"
                break
            if its >= max_iter:
                status, message = (
                    "max_iter",
                    f"not resolved after {its} refinements (change {change:.2e})",
                )
                break
            nn = int(n * 1.5) if method == "chebyshev" else 2 * n
            if nn > nmax:
                status, message = (
                    "max_iter",
                    f"grid limit n_max={nmax} reached (change {change:.2e})",
                )
                break
            prev, n = test, nn
    return ReferenceSolution(
        method=method,
        axes=[np.asarray(a) for a in axes],
        u=np.asarray(U),
        u_test=np.asarray(test),
        iterations=its,
        status=status,
        message=message,
        history=history if history["step"] else {},
        extras=extras,
    )
