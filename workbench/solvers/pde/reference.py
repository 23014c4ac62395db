"""Reference solver: Chebyshev spectral collocation (1-D, tensor 2-D), finite differences,
characteristics for advection and the method of lines for Burgers.

With ``n = 0`` the resolution is chosen adaptively: the grid grows by 1.5× until two successive
solutions agree on the 300-point test grid to ``tol`` (relative L2); each refinement is one
progress step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from workbench.device import versions
from workbench.errors import InputError
from workbench.problems import PDEProblem
from workbench.progress import Progress, ensure
from workbench.registry import SolverSpec, param
from workbench.result import Result
from workbench.physics.pde import cheb, fd
from workbench.physics.pde import spectral as S
from workbench.physics.pde.compiled import Compiled, compile_problem, rel_l2, validate


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


def _method(problem: PDEProblem, params: Params) -> str:
    if problem.operator == "advection":
        return "characteristics"
    if problem.operator == "burgers":
        return "mol"
    if params.method == "auto":
        return "fd" if problem.operator == "nl_poisson" and problem.dim == 1 else "chebyshev"
    return params.method


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
    from workbench.physics.pde.compiled import interp_linear

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


def solve(problem: PDEProblem, params: Params, progress: Progress | None = None) -> Result:
    """Solve N[u] = f with boundary data to near machine precision (smooth solutions).

    Returns a ``field`` result: ``output`` on the solver's grid, ``extras["x"]`` (and ``"y"``),
    and ``extras["u_test"]`` on the 300-per-dimension test grid.
    """
    progress = ensure(progress)
    t0 = time.perf_counter()
    validate(problem)
    comp = compile_problem(problem)
    method = _method(problem, params)
    extras: dict = {"method": method}
    history: dict[str, list[float]] = {"step": [], "n": [], "change": [], "time": []}
    status, message = "converged", ""
    if method == "characteristics":
        axes, U = _characteristics(comp)
        test = U
        progress(1, 1, n=len(axes[0]))
        its = 1
    elif method == "mol":
        n = params.n or 1024
        axes, U, test, nfev = _burgers(comp, n)
        extras["nfev"] = int(nfev)
        progress(1, 1, n=n)
        its = 1
    else:
        if problem.dim == 1:
            nmax = params.n_max or (4096 if method == "chebyshev" else 65536)
            n = params.n or 32
        else:
            nmax = params.n_max or (768 if method == "chebyshev" else 512)
            n = params.n or 16
        prev = None
        its = 0
        while True:
            its += 1
            try:
                axes, U, test, nit, res = _solve_at(comp, method, n)
            except np.linalg.LinAlgError as e:
                raise InputError(f"reference solve failed at n={n}: {e}") from None
            change = rel_l2(test, prev) if prev is not None else float("inf")
            history["step"].append(its)
            history["n"].append(n)
            history["change"].append(change if np.isfinite(change) else 1.0)
            history["time"].append(time.perf_counter() - t0)
            progress(its, params.max_iter, n=n, change=history["change"][-1])
            extras.update(newton_iterations=int(nit), residual=float(res), n=int(n))
            if params.n:
                break
            if change <= params.tol:
                break
            if progress.cancelled:
                status, message = "cancelled", f"cancelled at n={n}"
                break
            if its >= params.max_iter:
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
    extras["u_test"] = np.asarray(test)
    extras["x"] = np.asarray(axes[0])
    if problem.dim == 2:
        extras["y"] = np.asarray(axes[1])
    wall = time.perf_counter() - t0
    metrics = {"wall_s": wall}
    if comp.exact is not None:
        metrics["rel_l2"] = rel_l2(test, comp.u_on(comp.test_axes()))
    return Result(
        output=np.asarray(U),
        kind="field",
        status=status,
        iterations=its,
        metrics=metrics,
        history=history if history["step"] else {},
        extras=extras,
        meta={"seed": params.seed, "device": "cpu", "wall_s": wall, "versions": versions()},
        message=message or f"{method} solution",
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
