import math

import numpy as np
import pytest
import torch

from workbench.solvers.pde.gp import kron_terms
from workbench.solvers.pde.kernels import (
    KINDS,
    ToeplitzGrid,
    dense_matrices,
    gram_solve,
    kernel_parts,
    toeplitz_mm,
)

DT = torch.float64


def _params(q=4, F=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    log_w = torch.randn(q, generator=g, dtype=DT) * 0.3 - 1
    freq = torch.linspace(0.2, F, q, dtype=DT)
    log_ls = torch.randn(q, generator=g, dtype=DT) * 0.3
    return log_w, freq, log_ls


@pytest.mark.parametrize("kind", KINDS)
def test_kernel_derivatives_match_finite_differences(kind):
    p = _params()
    a = torch.tensor([0.05, 0.2, 0.7, 1.3], dtype=DT)
    h = 1e-5
    k, k1, k2 = kernel_parts(kind, a, *p)
    kp, _, _ = kernel_parts(kind, a + h, *p)
    km, _, _ = kernel_parts(kind, a - h, *p)
    np.testing.assert_allclose(k1, (kp - km) / (2 * h), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(k2, (kp - 2 * k + km) / h**2, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_second_derivative_at_zero_lag(kind):
    """k''(0) from the analytic form equals the symmetric FD limit (the |τ| autograd pitfall)."""
    p = _params()
    z = torch.zeros(1, dtype=DT)
    k0, k1_0, k2_0 = kernel_parts(kind, z, *p)
    h = 1e-4
    kh, _, _ = kernel_parts(kind, z + h, *p)
    assert float(k1_0) == 0.0
    np.testing.assert_allclose(k2_0, 2 * (kh - k0) / h**2, rtol=1e-5)


def test_matern_second_derivative_at_zero_is_minus_five_thirds_rho_squared():
    rho = 2.5
    _, _, k2 = kernel_parts(
        "matern",
        torch.zeros(1, dtype=DT),
        torch.zeros(1, dtype=DT),
        torch.zeros(1, dtype=DT),
        torch.tensor([math.log(rho)], dtype=DT),
    )
    assert float(k2) == pytest.approx(-5.0 / 3.0 * rho**2, rel=1e-14)
    f = 1.7  # Matérn × cos: m''(0) − (2πf)²
    _, _, k2 = kernel_parts(
        "stm",
        torch.zeros(1, dtype=DT),
        torch.zeros(1, dtype=DT),
        torch.tensor([f], dtype=DT),
        torch.tensor([math.log(rho)], dtype=DT),
    )
    assert float(k2) == pytest.approx(-5.0 / 3.0 * rho**2 - (2 * math.pi * f) ** 2, rel=1e-12)


def test_toeplitz_gather_equals_dense_assembly():
    n, h = 17, 0.13
    p = _params()
    t = ToeplitzGrid(n, h)
    K, K1, K2 = t.matrices("stm", *p, need_first=True)
    x = torch.arange(n, dtype=DT) * h
    Kd, K1d, K2d = dense_matrices("stm", x, *p)
    for a, b in ((K, Kd), (K1, K1d), (K2, K2d)):
        np.testing.assert_allclose(a, b, atol=1e-12)
    assert torch.allclose(K1, -K1.T)


def test_custom_gradients_match_autograd_through_dense_cholesky():
    n = 9
    t = ToeplitzGrid(n, 0.2)
    p = [q.clone().requires_grad_(True) for q in _params()]
    U = torch.randn(n, 3, generator=torch.Generator().manual_seed(1), dtype=DT, requires_grad=True)

    def loss_custom():
        k, k1, k2 = kernel_parts("stm", t.lags, *p)
        k = torch.cat([k[:1] + 1e-3, k[1:]])
        ld, A = gram_solve(k, t.idx, U)
        return (
            ld
            + (U * A).sum()
            + (toeplitz_mm(k2, t.idx, None, A) ** 2).sum()
            + (toeplitz_mm(k1, t.idx, t.sign, A) ** 2).sum()
        )

    def loss_dense():
        K, K1, K2 = t.matrices("stm", *p, need_first=True)
        K = K + 1e-3 * torch.eye(n, dtype=DT)
        L = torch.linalg.cholesky(K)
        A = torch.cholesky_solve(U, L)
        return (
            2 * torch.log(torch.diagonal(L)).sum()
            + (U * A).sum()
            + ((K2 @ A) ** 2).sum()
            + ((K1 @ A) ** 2).sum()
        )

    g1 = torch.autograd.grad(loss_custom(), [U, *p])
    g2 = torch.autograd.grad(loss_dense(), [U, *p])
    with torch.no_grad():
        assert float(loss_custom()) == pytest.approx(float(loss_dense()), rel=1e-12)
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_kronecker_identities_against_dense_covariance():
    """log-det, quadratic form and U_xx + U_yy, U_x, U_y on a 7×6 grid vs the full K₁ ⊗ K₂."""
    n1, n2 = 7, 6
    t = [ToeplitzGrid(n1, 0.3), ToeplitzGrid(n2, 0.25)]
    kp = [_params(seed=2), _params(q=3, seed=3)]
    U = torch.randn(n1, n2, generator=torch.Generator().manual_seed(4), dtype=DT)
    jit = 1e-4
    ld, W, der = kron_terms("stm", t, kp, U, jit, {"x", "xx", "y", "yy"})
    mats = [t[d].matrices("stm", *kp[d], need_first=True) for d in range(2)]
    K1 = mats[0][0] + jit * torch.eye(n1, dtype=DT)
    K2 = mats[1][0] + jit * torch.eye(n2, dtype=DT)
    K = torch.kron(K1, K2)
    u = U.reshape(-1)
    a = torch.linalg.solve(K, u)
    assert float(ld) == pytest.approx(float(torch.logdet(K)), rel=1e-10)
    assert float((U * W).sum()) == pytest.approx(float(u @ a), rel=1e-10)
    lap = (torch.kron(mats[0][2], K2) + torch.kron(K1, mats[1][2])) @ a
    np.testing.assert_allclose(
        (der["xx"] + der["yy"]).reshape(-1), lap, rtol=1e-9, atol=1e-9 * float(lap.abs().max())
    )
    ux = torch.kron(mats[0][1], K2) @ a
    uy = torch.kron(K1, mats[1][1]) @ a
    np.testing.assert_allclose(
        der["x"].reshape(-1), ux, rtol=1e-9, atol=1e-9 * float(ux.abs().max())
    )
    np.testing.assert_allclose(
        der["y"].reshape(-1), uy, rtol=1e-9, atol=1e-9 * float(uy.abs().max())
    )


def test_kronecker_gradients_match_dense_autograd():
    """Gradients of a 2-D GP-HM-style loss (U and every kernel parameter) against the dense K₁ ⊗ K₂."""
    n1, n2 = 7, 6
    t = [ToeplitzGrid(n1, 0.3), ToeplitzGrid(n2, 0.25)]
    kp = [
        [p.requires_grad_(True) for p in _params(seed=5)],
        [p.requires_grad_(True) for p in _params(q=3, seed=6)],
    ]
    U = torch.randn(
        n1, n2, generator=torch.Generator().manual_seed(7), dtype=DT, requires_grad=True
    )
    jit = 1e-3

    def kron_loss():
        ld, W, d = kron_terms("stm", t, kp, U, jit, {"x", "xx", "y", "yy"})
        r = d["xx"] + d["yy"] + 0.3 * d["x"] - 0.2 * d["y"]
        return 0.5 * ld + 0.5 * (U * W).sum() + (r**2).sum()

    def dense_loss():
        m = [t[i].matrices("stm", *kp[i], need_first=True) for i in range(2)]
        K1 = m[0][0] + jit * torch.eye(n1, dtype=DT)
        K2 = m[1][0] + jit * torch.eye(n2, dtype=DT)
        K = torch.kron(K1, K2)
        a = torch.linalg.solve(K, U.reshape(-1))
        r = (
            torch.kron(m[0][2], K2)
            + torch.kron(K1, m[1][2])
            + 0.3 * torch.kron(m[0][1], K2)
            - 0.2 * torch.kron(K1, m[1][1])
        ) @ a
        return 0.5 * torch.logdet(K) + 0.5 * U.reshape(-1) @ a + (r**2).sum()

    params = [U, *kp[0], *kp[1]]
    for a, b in zip(
        torch.autograd.grad(kron_loss(), params),
        torch.autograd.grad(dense_loss(), params),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11 * float(b.abs().max()))
