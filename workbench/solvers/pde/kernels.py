"""Stationary 1-D kernels with analytic derivatives in τ = x − x′ (torch, float64).

Spectral mixtures (GP-HM): Student-t mixture ``stm`` k = Σ w_q m(τ; ρ_q) cos(2π f_q τ) with the
Matérn-5/2 envelope m, and Gaussian mixture ``gm`` k = Σ w_q exp(−s_q τ²) cos(2π f_q τ).
Baselines: ``se`` (w exp(−s τ²)) and ``matern`` (w m(τ; ρ)).

All derivatives are written out (never autograd through |τ|, whose gradient torch sets to 0 at
0, giving a wrong diagonal for k″). Functions take a = |τ| ≥ 0 and return (k, k′, k″) on that
side; k′ is odd, so callers multiply it by sign(τ).
"""

from __future__ import annotations

import math

import torch

SQRT5 = math.sqrt(5.0)
KINDS = ("stm", "gm", "se", "matern")


def matern52(a: torch.Tensor, rho: torch.Tensor):
    """m, m′, m″ at a = |τ| ≥ 0 (broadcast with ρ, the inverse length-scale)."""
    r = SQRT5 * rho * a
    e = torch.exp(-r)
    m = (1 + r + r * r / 3) * e
    m1 = -(5.0 / 3.0) * rho**2 * a * (1 + r) * e
    m2 = -(5.0 / 3.0) * rho**2 * (1 + r - r * r) * e
    return m, m1, m2


def sqexp(a: torch.Tensor, s: torch.Tensor):
    e = torch.exp(-s * a * a)
    return e, -2 * s * a * e, (4 * s * s * a * a - 2 * s) * e


def kernel_parts(
    kind: str,
    a: torch.Tensor,
    log_w: torch.Tensor,
    freq: torch.Tensor,
    log_ls: torch.Tensor,
    order: int = 2,
):
    """(k, k′, k″) at lags a ≥ 0 (any shape); parameters have shape (Q,).

    Mixture components sit on a trailing axis and are summed out.
    """
    A = a.unsqueeze(-1)
    w = torch.exp(log_w)
    ls = torch.exp(log_ls)
    if kind in ("stm", "matern"):
        m, m1, m2 = matern52(A, ls)
    elif kind in ("gm", "se"):
        m, m1, m2 = sqexp(A, ls)
    else:
        raise ValueError(f"unknown kernel {kind!r}")
    if kind in ("stm", "gm"):
        om = 2 * math.pi * freq
        c = torch.cos(om * A)
        s = torch.sin(om * A)
        k = (w * m * c).sum(-1)
        if order == 0:
            return k, None, None
        k1 = (w * (m1 * c - om * m * s)).sum(-1)
        k2 = (w * (m2 * c - 2 * om * m1 * s - om * om * m * c)).sum(-1)
        return k, k1, k2
    k = (w * m).sum(-1)
    if order == 0:
        return k, None, None
    return k, (w * m1).sum(-1), (w * m2).sum(-1)


class ToeplitzGrid:
    """Index helpers for an equispaced grid: K[i, j] depends only on the lag |i − j|·h."""

    def __init__(self, n: int, h: float, device: str = "cpu") -> None:
        i = torch.arange(n, device=device)
        d = i[:, None] - i[None, :]
        self.idx = d.abs()
        self.sign = torch.sign(d).to(torch.float64)
        self.lags = torch.arange(n, device=device, dtype=torch.float64) * h
        self.n = n

    def matrices(self, kind: str, log_w, freq, log_ls, need_first: bool = False):
        """K, K′ (antisymmetric, or None) and K″ from the n distinct lags, by gathering."""
        k, k1, k2 = kernel_parts(kind, self.lags, log_w, freq, log_ls)
        K = k[self.idx]
        K2 = k2[self.idx]
        K1 = self.sign * k1[self.idx] if need_first else None
        return K, K1, K2


def dense_matrices(kind: str, x: torch.Tensor, log_w, freq, log_ls):
    """Same matrices on arbitrary points by direct evaluation (for tests and prediction)."""
    tau = x[:, None] - x[None, :]
    k, k1, k2 = kernel_parts(kind, tau.abs(), log_w, freq, log_ls)
    return k, torch.sign(tau) * k1, k2


class _GramSolve(torch.autograd.Function):
    """(log|K|, K⁻¹R₁, K⁻¹R₂, ...) for the symmetric Toeplitz K = k[idx], one Cholesky.

    Backward uses the explicit inverse: ∂/∂K = ḡ·K⁻¹ − Σ_r β_r A_rᵀ with β_r = K⁻¹ Ā_r; the
    gradient on the lag vector is the sum of ∂/∂K over each pair of diagonals (bincount).
    This is ~N³ flops per step instead of autograd through Cholesky and N² gathers.
    """

    @staticmethod
    def forward(ctx, kvec, idx, *rhs):
        K = kvec[idx]
        L = torch.linalg.cholesky(K)
        logdet = 2 * torch.log(torch.diagonal(L)).sum()
        sols = tuple(torch.cholesky_solve(r, L) for r in rhs)
        ctx.save_for_backward(L, idx, *sols)
        return (logdet, *sols)

    @staticmethod
    def backward(ctx, g_logdet, *g_sols):
        L, idx, *sols = ctx.saved_tensors
        Kinv = torch.cholesky_inverse(L)
        G = g_logdet * Kinv if g_logdet is not None else torch.zeros_like(Kinv)
        grads_rhs = []
        for A, gA in zip(sols, g_sols, strict=False):
            if gA is None:
                grads_rhs.append(None)
                continue
            beta = Kinv @ gA
            G = G - beta @ A.T
            grads_rhs.append(beta)
        gk = torch.bincount(idx.reshape(-1), weights=G.reshape(-1), minlength=idx.shape[0])
        return (gk.to(L.dtype), None, *grads_rhs)


def gram_solve(kvec: torch.Tensor, idx: torch.Tensor, *rhs: torch.Tensor):
    return _GramSolve.apply(kvec, idx, *rhs)


class _ToeplitzMM(torch.autograd.Function):
    """T @ A with T[i, j] = s_ij · k[|i − j|] (s = sign(i − j) for odd derivatives, else 1)."""

    @staticmethod
    def forward(ctx, kvec, idx, sign, A):
        T = kvec[idx] if sign is None else sign * kvec[idx]
        ctx.save_for_backward(T, idx, A)
        ctx.has_sign = sign is not None
        if ctx.has_sign:
            ctx.sign = sign
        return T @ A

    @staticmethod
    def backward(ctx, gY):
        T, idx, A = ctx.saved_tensors
        gA = T.T @ gY
        G = gY @ A.T
        if ctx.has_sign:
            G = G * ctx.sign
        gk = torch.bincount(idx.reshape(-1), weights=G.reshape(-1), minlength=idx.shape[0])
        return gk.to(T.dtype), None, None, gA


def toeplitz_mm(kvec: torch.Tensor, idx: torch.Tensor, sign: torch.Tensor | None, A: torch.Tensor):
    return _ToeplitzMM.apply(kvec, idx, sign, A)


@torch.no_grad()
def kernel_values(kind: str, a: torch.Tensor, log_w, freq, log_ls) -> torch.Tensor:
    """k(a) only, accumulated one component at a time (cache-friendly for large lag arrays)."""
    w = torch.exp(log_w)
    ls = torch.exp(log_ls)
    out = torch.zeros_like(a)
    for q in range(w.shape[0]):
        if kind in ("stm", "matern"):
            r = SQRT5 * ls[q] * a
            m = (1 + r + r * r / 3) * torch.exp(-r)
        else:
            m = torch.exp(-ls[q] * a * a)
        if kind in ("stm", "gm"):
            m = m * torch.cos((2 * math.pi * freq[q]) * a)
        out += w[q] * m
    return out
