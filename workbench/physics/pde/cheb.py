"""Chebyshev collocation solvers in 1-D (dense Newton) and 2-D (fast diagonalisation, and
Newton–Krylov preconditioned by it for non-separable or nonlinear operators)."""

from __future__ import annotations

import numpy as np
import scipy.sparse.linalg as spla

from workbench.physics.pde import fd
from workbench.physics.pde import spectral as S


def _a_of_x(x: np.ndarray, coeffs: dict) -> np.ndarray:
    t = np.arccos(np.clip(x, -1, 1))
    return sum(coeffs.get(f"z{k}", 0.0) * np.cos(k * t) for k in range(5))


def solve_1d(operator: str, n: int, box, source, g: tuple[float, float], coeffs: dict):
    """Collocation on n + 1 Gauss–Lobatto points. Returns (x, u, newton iterations, residual)."""
    a, b = box[0]
    x = S.cheb_points(n, a, b)
    D = S.cheb_diff(x)
    D2 = D @ D
    f = source(x)
    fscale = max(1.0, np.abs(f).max())
    g0, g1 = g
    if operator == "nl_poisson":
        az = _a_of_x(x, coeffs)

    def G(u):
        if operator == "nl_poisson":
            r = D @ ((fd.softplus(u * az) + 0.1) * (D @ u)) - f
        else:
            r = D2 @ u - f
            if operator == "allen_cahn":
                r = r + u * (u**2 - 1)
        r[0], r[-1] = u[0] - g0, u[-1] - g1
        return r

    def J(u, gres):
        if operator == "nl_poisson":
            kap = fd.softplus(u * az) + 0.1
            dk = fd.sigmoid(u * az) * az
            A = D @ (kap[:, None] * D + np.diag(dk * (D @ u)))
        else:
            A = D2.copy()
            if operator == "allen_cahn":
                A[np.diag_indices_from(A)] += 3 * u**2 - 1
        A[0, :] = 0
        A[-1, :] = 0
        A[0, 0] = A[-1, -1] = 1.0
        return np.linalg.solve(A, gres)

    u0 = g0 + (g1 - g0) * (x - a) / (b - a)
    u, it, r = fd.newton(G, J, u0, fscale)
    return x, u, it, r


def solve_2d(operator: str, n: tuple[int, int], box, source, boundary, coeffs: dict):
    """Tensor collocation on (n1 + 1) × (n2 + 1) points, Dirichlet data on all four edges.

    Returns (x, y, U, newton iterations, residual).
    """
    x = S.cheb_points(n[0], *box[0])
    y = S.cheb_points(n[1], *box[1])
    Dx, Dy = S.cheb_diff(x), S.cheb_diff(y)
    D2x, D2y = Dx @ Dx, Dy @ Dy
    X, Y = np.meshgrid(x, y, indexing="ij")
    F = source(X, Y)
    B = boundary(X, Y)
    B[1:-1, 1:-1] = 0.0
    Ax, Ay = D2x[1:-1, 1:-1], D2y[1:-1, 1:-1]
    fdg = S.FastDiag(Ax, Ay)
    fi = F[1:-1, 1:-1]
    fscale = max(1.0, np.abs(fi).max())
    shape = fi.shape

    def full(V):
        U = B.copy()
        U[1:-1, 1:-1] = V
        return U

    def extra(U):
        if operator == "allen_cahn":
            return U * (U**2 - 1)
        if operator == "drift_poisson":
            return -2 * X * (Dx @ U) - 2 * Y * (U @ Dy.T) - 4 * U
        return 0.0 * U

    def G(V):
        U = full(V)
        return (D2x @ U + U @ D2y.T + extra(U))[1:-1, 1:-1] - fi

    if operator == "poisson":
        lapB = (D2x @ B + B @ D2y.T)[1:-1, 1:-1]
        V = fdg.solve(fi - lapB)
        r = np.abs(G(V)).max() / fscale
        return x, y, full(V), 1, r

    def Jv(U, v):
        P = np.zeros_like(U)
        P[1:-1, 1:-1] = v
        out = Ax @ v + v @ Ay.T
        if operator == "allen_cahn":
            out = out + ((3 * U**2 - 1) * P)[1:-1, 1:-1]
        elif operator == "drift_poisson":
            out = out + (-2 * X * (Dx @ P) - 2 * Y * (P @ Dy.T) - 4 * P)[1:-1, 1:-1]
        return out

    def Gflat(vflat):
        return G(vflat.reshape(shape)).ravel()

    def Jsolve(vflat, gflat):
        U = full(vflat.reshape(shape))
        m = shape[0] * shape[1]
        Aop = spla.LinearOperator((m, m), matvec=lambda v: Jv(U, v.reshape(shape)).ravel())
        Mop = spla.LinearOperator((m, m), matvec=lambda v: fdg.solve(v.reshape(shape)).ravel())
        dv, _ = spla.gmres(Aop, gflat, M=Mop, rtol=1e-13, atol=0.0, restart=60, maxiter=20)
        return dv

    v0 = fdg.solve(fi - (D2x @ B + B @ D2y.T)[1:-1, 1:-1]).ravel()
    v, it, r = fd.newton(Gflat, Jsolve, v0, fscale, tol=1e-11)
    return x, y, full(v.reshape(shape)), it, r
