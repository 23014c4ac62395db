"""Chebyshev spectral collocation: Gauss–Lobatto points, differentiation matrices, barycentric
interpolation and the fast-diagonalisation solver for separable 2-D operators.

Points are returned in increasing order on [a, b]; derivative matrices act on values there.
"""

from __future__ import annotations

import numpy as np


def cheb_points(n: int, a: float = -1.0, b: float = 1.0) -> np.ndarray:
    """n + 1 Chebyshev–Gauss–Lobatto points on [a, b], increasing."""
    xi = -np.cos(np.pi * np.arange(n + 1) / n)
    return 0.5 * (a + b) + 0.5 * (b - a) * xi


def bary_weights(n: int) -> np.ndarray:
    w = (-1.0) ** np.arange(n + 1)
    w[0] *= 0.5
    w[-1] *= 0.5
    return w


def cheb_diff(x: np.ndarray) -> np.ndarray:
    """First-derivative matrix on Chebyshev points x (any affine image, either order).

    D_ij = (w_j / w_i) / (x_i − x_j) for i ≠ j; the diagonal is minus the off-diagonal row sum.
    """
    n = len(x) - 1
    w = bary_weights(n)
    dx = x[:, None] - x[None, :]
    np.fill_diagonal(dx, 1.0)
    D = (w[None, :] / w[:, None]) / dx
    np.fill_diagonal(D, 0.0)
    np.fill_diagonal(D, -D.sum(axis=1))
    return D


def bary_matrix(x: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Matrix P with P @ u = barycentric interpolant of values u on Chebyshev points x at xs."""
    w = bary_weights(len(x) - 1)
    d = xs[:, None] - x[None, :]
    exact = np.isclose(d, 0.0, atol=1e-14 * max(1.0, np.abs(x).max()))
    d[exact] = 1.0
    c = w[None, :] / d
    P = c / c.sum(axis=1, keepdims=True)
    rows = exact.any(axis=1)
    P[rows] = exact[rows].astype(float)
    return P


class FastDiag:
    """Solve A_x V + V A_yᵀ + c V = R for interior operators A_x, A_y (eigen-decomposed once)."""

    def __init__(self, Ax: np.ndarray, Ay: np.ndarray) -> None:
        lx, Vx = np.linalg.eig(Ax)
        ly, Vy = np.linalg.eig(Ay)
        # Chebyshev second-derivative eigenvalues are real and negative; drop round-off imaginaries
        self.lx, self.Vx = lx.real, Vx.real
        self.ly, self.Vy = ly.real, Vy.real
        self.Vxi = np.linalg.inv(self.Vx)
        self.Vyi = np.linalg.inv(self.Vy)

    def solve(self, R: np.ndarray, c: float = 0.0) -> np.ndarray:
        H = self.Vxi @ R @ self.Vyi.T
        H = H / (self.lx[:, None] + self.ly[None, :] + c)
        return self.Vx @ H @ self.Vy.T
