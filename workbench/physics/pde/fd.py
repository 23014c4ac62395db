"""Second-order finite differences on uniform grids (scipy.sparse, direct solves, Newton)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sps
import scipy.sparse.linalg as spla


def d2_1d(n: int, h: float) -> sps.csr_matrix:
    """Centred second difference on n nodes (rows 0 and n−1 are left zero for the BCs)."""
    main = np.full(n, -2.0)
    off = np.ones(n - 1)
    D = sps.diags([off, main, off], [-1, 0, 1], format="lil") / h**2
    D[0, :] = 0
    D[-1, :] = 0
    return D.tocsr()


def d1_1d(n: int, h: float) -> sps.csr_matrix:
    off = np.ones(n - 1) / (2 * h)
    D = sps.diags([-off, off], [-1, 1], format="lil")
    D[0, :] = 0
    D[-1, :] = 0
    return D.tocsr()


def softplus(s: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, s)


def sigmoid(s: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * s))


def newton(G, J, u0: np.ndarray, fscale: float, tol: float = 1e-12, max_iter: int = 50):
    """Damped Newton with backtracking on ‖G‖∞. Returns (u, iterations, ‖G‖∞ / fscale)."""
    u = u0.copy()
    g = G(u)
    r = np.abs(g).max() / fscale
    it = 0
    for it in range(1, max_iter + 1):
        if r <= tol:
            return u, it - 1, r
        du = J(u, g)
        lam = 1.0
        while lam > 1e-4:
            un = u - lam * du
            gn = G(un)
            rn = np.abs(gn).max() / fscale
            if rn < r or lam <= 2e-4:
                break
            lam *= 0.5
        u, g, r = un, gn, rn
        if np.abs(lam * du).max() <= 1e-13 * max(1.0, np.abs(u).max()):
            break
    return u, it, r


def solve_1d(operator: str, x: np.ndarray, f: np.ndarray, g0: float, g1: float, coeffs: dict):
    """FD solve on uniform nodes x with Dirichlet values g0, g1. Returns (u, newton iterations)."""
    n = len(x)
    h = x[1] - x[0]
    interior = slice(1, n - 1)
    fscale = max(1.0, np.abs(f).max())
    if operator in ("poisson", "allen_cahn"):
        D2 = d2_1d(n, h)

        def G(u):
            r = D2 @ u - f
            if operator == "allen_cahn":
                r = r + u * (u**2 - 1)
            r[0], r[-1] = u[0] - g0, u[-1] - g1
            return r

        def J(u, g):
            A = D2.tolil()
            if operator == "allen_cahn":
                A = (D2 + sps.diags(3 * u**2 - 1)).tolil()
            A[0, :] = 0
            A[-1, :] = 0
            A[0, 0] = A[-1, -1] = 1.0
            return spla.spsolve(A.tocsc(), g)

    elif operator == "nl_poisson":
        xm = 0.5 * (x[1:] + x[:-1])
        a = sum(
            coeffs.get(f"z{k}", 0.0) * np.cos(k * np.arccos(np.clip(xm, -1, 1))) for k in range(5)
        )

        def flux_parts(u):
            ub = 0.5 * (u[1:] + u[:-1])
            kap = softplus(ub * a) + 0.1
            dkap = sigmoid(ub * a) * a  # d kappa / d ubar
            return kap, dkap

        def G(u):
            kap, _ = flux_parts(u)
            q = kap * np.diff(u) / h  # face fluxes
            r = np.zeros(n)
            r[interior] = (q[1:] - q[:-1]) / h - f[interior]
            r[0], r[-1] = u[0] - g0, u[-1] - g1
            return r

        def J(u, g):
            kap, dkap = flux_parts(u)
            du = np.diff(u) / h
            # dq_k/du_k = -kap/h + dkap*du/2 ; dq_k/du_{k+1} = kap/h + dkap*du/2
            dq_l = -kap / h + 0.5 * dkap * du
            dq_r = kap / h + 0.5 * dkap * du
            main = np.zeros(n)
            lower = np.zeros(n - 1)
            upper = np.zeros(n - 1)
            i = np.arange(1, n - 1)
            # r_i = (q_i - q_{i-1}) / h with q_i between nodes i and i+1
            main[i] = (dq_l[i] - dq_r[i - 1]) / h
            upper[i] = dq_r[i] / h
            lower[i - 1] = -dq_l[i - 1] / h
            main[0] = main[-1] = 1.0
            A = sps.diags([lower, main, upper], [-1, 0, 1], format="csc")
            return spla.spsolve(A, g)

    else:
        raise ValueError(f"1-D finite differences do not handle {operator!r}")
    u0 = np.linspace(g0, g1, n)
    return newton(G, J, u0, fscale)


def solve_2d(operator: str, axes: list[np.ndarray], F: np.ndarray, Gb: np.ndarray, coeffs: dict):
    """5-point FD solve on a uniform tensor grid; Gb holds boundary values on the edges."""
    x, y = axes
    n1, n2 = len(x), len(y)
    hx, hy = x[1] - x[0], y[1] - y[0]
    I1, I2 = sps.identity(n1), sps.identity(n2)
    Dxx = sps.kron(_raw_d2(n1, hx), I2)
    Dyy = sps.kron(I1, _raw_d2(n2, hy))
    L = (Dxx + Dyy).tocsr()
    X, Y = np.meshgrid(x, y, indexing="ij")
    if operator == "drift_poisson":
        Dx = sps.kron(_raw_d1(n1, hx), I2)
        Dy = sps.kron(I1, _raw_d1(n2, hy))
        L = (
            L
            - sps.diags(2 * X.ravel()) @ Dx
            - sps.diags(2 * Y.ravel()) @ Dy
            - 4 * sps.identity(n1 * n2)
        ).tocsr()
    elif operator not in ("poisson", "allen_cahn"):
        raise ValueError(f"2-D finite differences do not handle {operator!r}")
    bnd = np.zeros((n1, n2), bool)
    bnd[0, :] = bnd[-1, :] = bnd[:, 0] = bnd[:, -1] = True
    b = bnd.ravel()
    keep = sps.diags((~b).astype(float))
    A0 = (keep @ L + sps.diags(b.astype(float))).tocsr()
    f = F.ravel().copy()
    gvec = Gb.ravel()
    fscale = max(1.0, np.abs(f).max())

    def G(u):
        r = L @ u - f
        if operator == "allen_cahn":
            r = r + u * (u**2 - 1)
        r[b] = u[b] - gvec[b]
        return r

    def J(u, g):
        A = A0
        if operator == "allen_cahn":
            A = (A0 + keep @ sps.diags(3 * u**2 - 1)).tocsr()
        return spla.spsolve(A.tocsc(), g)

    u0 = np.where(b, gvec, 0.0)
    u, it, r = newton(G, J, u0, fscale)
    return u.reshape(n1, n2), it, r


def _raw_d2(n: int, h: float) -> sps.csr_matrix:
    off = np.ones(n - 1)
    return sps.diags([off, np.full(n, -2.0), off], [-1, 0, 1], format="csr") / h**2


def _raw_d1(n: int, h: float) -> sps.csr_matrix:
    off = np.ones(n - 1) / (2 * h)
    return sps.diags([-off, off], [-1, 1], format="csr")
