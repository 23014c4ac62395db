"""Exact minimisation of the GP-HM loss over the grid values U at fixed kernel and precisions.

For fixed hyperparameters θ (kernel weights, frequencies, length-scales) and precisions τ_b, v,
the GP-HM negative log joint depends on U only through

    L(U) = ½ vec(U)ᵀ K⁻¹ vec(U) + ½ λ_b τ_b ‖U_∂ − g‖² + ½ v ‖𝒩[U] − f‖² (+ ½ p_o ‖u(x_o) − y_o‖²)

(the log-determinant and log-precision terms are constant in U). With factors
K_d = L_d L_dᵀ (from the eigendecomposition of K_d) and the whitened unknowns Z, U = L₁ Z L₂ᵀ (1-D: U = L z), the prior becomes ½‖Z‖²
and every derivative of the conditional mean is a product of small per-dimension matrices:

    U_xx = K₁″ K₁⁻¹ U = A₁ Z L₂ᵀ,   U_yy = U K₂⁻¹ K₂″ᵀ = L₁ Z A₂ᵀ,   A_d = K_d″ L_d⁻ᵀ,
    U_x  = B₁ Z L₂ᵀ,                U_y  = L₁ Z B₂ᵀ,                  B_d = K_d′ L_d⁻ᵀ,

so L(U) = ½‖R(Z)‖² with the stacked residual R = [Z; √(λ_b τ_b)(U_∂ − g); √v (𝒩[U] − f); ...].
For a linear operator R is affine in Z and one least-squares solve gives the exact minimiser;
for a nonlinear one (Allen–Cahn, nonlinear Poisson, Burgers) Gauss–Newton steps on the same R
with a backtracking line search on L decrease it monotonically. The whitening keeps the
regulariser the identity, so the least-squares problem is well posed in float64 even though K
itself has a condition number of ~1/jitter.

1-D: the Jacobian of R (about 2N × N) is formed densely and each step is an SVD-based
least-squares solve. 2-D: R and its Jacobian products are applied matrix-free with mode
products (nothing larger than N₁ × N₂ is formed) and each Gauss–Newton system is solved by
preconditioned conjugate gradients on the normal equations; for Poisson the preconditioner is
the fast-diagonalisation inverse of the equation term (see :func:`fast_diag_factors`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Whitened:
    """Per-dimension factors of K_d = L_d L_dᵀ with L_d = E_d Σ_d^½ (symmetric eigenbasis).

    ``Linv`` = Σ_d^-½ E_dᵀ, ``A`` = K_d″ L_d⁻ᵀ, ``B`` = K_d′ L_d⁻ᵀ (or None) and
    ``S`` = L_d⁻¹ K_d″ L_d⁻ᵀ (symmetric), so that D_d = K_d″ K_d⁻¹ = L_d S_d L_d⁻¹. The eigenbasis
    (rather than a Cholesky factor) is used because K_d and K_d″ of a stationary kernel on a
    uniform grid nearly commute: S_d is then nearly diagonal and LᵀL = Σ exactly diagonal, which
    is what makes the fast-diagonalisation preconditioner of :func:`minimise_2d` accurate.
    """

    L: list[torch.Tensor]
    Linv: list[torch.Tensor]
    A: list[torch.Tensor]
    B: list[torch.Tensor | None]
    S: list[torch.Tensor]


def whiten(
    K: list[torch.Tensor], K1: list[torch.Tensor | None], K2: list[torch.Tensor]
) -> Whitened:
    """Factors of :class:`Whitened` from the per-dimension kernel matrices (jitter included in K)."""
    Ls, Lis, As, Bs, Ss = [], [], [], [], []
    for Kd, K1d, K2d in zip(K, K1, K2, strict=True):
        sig, E = torch.linalg.eigh(Kd)
        # K = K₀ + jitter·I with K₀ ⪰ 0: eigenvalues below the jitter are round-off
        sig = sig.clamp_min(float(sig.max()) * 1e-15)
        r = sig.sqrt()
        L = E * r
        Li = (E / r).T.contiguous()
        A = K2d @ Li.T
        B = None if K1d is None else (K1d @ Li.T).contiguous()
        S = Li @ A
        Ls.append(L.contiguous())
        Lis.append(Li)
        As.append(A.contiguous())
        Bs.append(B)
        Ss.append((0.5 * (S + S.T)).contiguous())
    return Whitened(Ls, Lis, As, Bs, Ss)


def kinv_rows(w: Whitened, d: int, C: torch.Tensor) -> torch.Tensor:
    """C K_d⁻¹ for a matrix C of cross-covariance rows."""
    return (C @ w.Linv[d].T) @ w.Linv[d]


def fields(w: Whitened, Z: torch.Tensor, need: set[str]) -> tuple[torch.Tensor, dict]:
    """U and its conditional-mean derivatives in ``need`` from whitened Z (1-D: a vector)."""
    if Z.dim() == 1:
        L, A, B = w.L[0], w.A[0], w.B[0]
        d = {}
        if "xx" in need:
            d["xx"] = A @ Z
        if "x" in need:
            d["x"] = B @ Z
        return L @ Z, d
    L1, L2 = w.L
    ZL2 = Z @ L2.T
    d = {}
    if "xx" in need:
        d["xx"] = w.A[0] @ ZL2
    if "x" in need:
        d["x"] = w.B[0] @ ZL2
    L1Z = L1 @ Z
    if "yy" in need:
        d["yy"] = L1Z @ w.A[1].T
    if "y" in need:
        d["y"] = L1Z @ w.B[1].T
    return L1Z @ L2.T, d


@dataclass
class LossU:
    """The U-dependent part of the GP-HM loss as ½‖R(Z)‖² (weights are square roots)."""

    w: Whitened
    residual: Callable[[torch.Tensor, dict], torch.Tensor]  # (U, derivs) -> 𝒩[U] − f
    need: set[str]
    mask: torch.Tensor
    g: torch.Tensor
    sqrt_b: float  # √(λ_b τ_b)
    sqrt_v: float  # √v
    obs: Callable[[torch.Tensor], torch.Tensor] | None = None  # U-space linear map to obs values
    obs_y: torch.Tensor | None = None
    sqrt_o: float = 0.0

    def R(self, Z: torch.Tensor) -> torch.Tensor:
        U, d = fields(self.w, Z, self.need)
        parts = [
            Z.reshape(-1),
            self.sqrt_b * (U[self.mask] - self.g),
            self.sqrt_v * self.residual(U, d).reshape(-1),
        ]
        if self.obs is not None:
            parts.append(self.sqrt_o * (self.obs(U) - self.obs_y))
        return torch.cat(parts)

    def value(self, Z: torch.Tensor) -> float:
        r = self.R(Z)
        return 0.5 * float(r @ r)


def to_whitened(w: Whitened, U: torch.Tensor) -> torch.Tensor:
    """Z with U = L₁ Z L₂ᵀ (1-D: z = L⁻¹ U)."""
    if U.dim() == 1:
        return w.Linv[0] @ U
    return w.Linv[0] @ U @ w.Linv[1].T


@dataclass
class FastDiag2D:
    """Fast-diagonalisation inverse of the whitened Poisson equation term S₁ ⊕ S₂.

    D_d = K_d″ K_d⁻¹ = L_d S_d L_d⁻¹ with S_d = L_d⁻¹ K_d″ L_d⁻ᵀ symmetric, so with S_d = Q_d Λ_d Q_dᵀ

        D₁ ⊗ I + I ⊗ D₂ = (L₁Q₁ ⊗ L₂Q₂) (Λ₁ ⊕ Λ₂) (L₁Q₁ ⊗ L₂Q₂)⁻¹,

    and in the whitened variables the Laplacian U_xx + U_yy = L₁ (S₁ Z + Z S₂) L₂ᵀ is inverted
    by two orthogonal transforms per dimension and a diagonal division.
    """

    Q: list[torch.Tensor]
    lam: torch.Tensor  # λ_i + μ_j, shape (N₁, N₂)
    metric: torch.Tensor  # diag of (L₁Q₁ ⊗ L₂Q₂)ᵀ(L₁Q₁ ⊗ L₂Q₂), shape (N₁, N₂)

    @classmethod
    def build(cls, w: Whitened) -> FastDiag2D:
        e1, Q1 = torch.linalg.eigh(w.S[0])
        e2, Q2 = torch.linalg.eigh(w.S[1])
        c1 = ((w.L[0] @ Q1) ** 2).sum(0)
        c2 = ((w.L[1] @ Q2) ** 2).sum(0)
        return cls([Q1, Q2], e1[:, None] + e2[None, :], c1[:, None] * c2[None, :])

    def apply_sum(self, Z: torch.Tensor) -> torch.Tensor:
        """(S₁ ⊕ S₂) Z."""
        Q1, Q2 = self.Q
        return Q1 @ ((Q1.T @ Z @ Q2) * self.lam) @ Q2.T

    def boundary_rows(self, w: Whitened, mask: torch.Tensor) -> torch.Tensor:
        """Rows of the boundary map H ↦ U_∂ in the preconditioner's coordinates, (N_b, N₁N₂).

        With Z = Q₁ H Q₂ᵀ and U = L₁ Z L₂ᵀ = V₁ H V₂ᵀ (V_d = L_d Q_d), the value at boundary
        node (i, j) is Σ V₁[i, a] V₂[j, c] H[a, c]: row (i, j) is V₁[i, :] ⊗ V₂[j, :].
        """
        V1 = w.L[0] @ self.Q[0]
        V2 = w.L[1] @ self.Q[1]
        ii, jj = mask.nonzero(as_tuple=True)
        return (V1[ii][:, :, None] * V2[jj][:, None, :]).reshape(len(ii), -1)

    def solve_sum(self, R: torch.Tensor, shift: torch.Tensor | float = 0.0) -> torch.Tensor:
        """(S₁ ⊕ S₂ + shift)⁻¹ R (shift broadcast against the eigenvalue grid)."""
        Q1, Q2 = self.Q
        return Q1 @ ((Q1.T @ R @ Q2) / (self.lam + shift)) @ Q2.T


def fast_diag_poisson(
    D1: torch.Tensor, D2: torch.Tensor, F: torch.Tensor
) -> torch.Tensor:  # pragma: no cover - thin helper used in tests
    """Solve D₁ U + U D₂ᵀ = F for square D_d by eigendecomposition (general, non-symmetric)."""
    l1, V1 = torch.linalg.eig(D1)
    l2, V2 = torch.linalg.eig(D2)
    Fc = F.to(V1.dtype)
    H = torch.linalg.solve(V1, Fc)
    H = torch.linalg.solve(V2, H.T).T
    H = H / (l1[:, None] + l2[None, :])
    return (V1 @ H @ V2.T).real


DENSE_MAX = 2500


def _backtrack(loss, z: torch.Tensor, delta: torch.Tensor, f0: float):
    """Halve the step along ``delta`` until the loss does not rise; ``(None, f0)`` if it always does."""
    step = 1.0
    while step > 1e-4:
        cand = z + step * delta
        f1 = loss.value(cand)
        if f1 <= f0:
            return cand, f1
        step *= 0.5
    return None, f0


def minimise_dense(
    loss: LossU,
    z0: torch.Tensor,
    max_gn: int = 20,
    rtol: float = 1e-13,
    report: CGReport | None = None,
) -> tuple[torch.Tensor, int]:
    """Gauss–Newton with backtracking on ½‖R(z)‖²; one step is exact for linear operators.

    The Jacobian of R is formed densely (≈ 2N × N for N unknowns; used in 1-D and on 2-D grids
    of at most ``DENSE_MAX`` nodes) and each step solves the linear least-squares problem
    min ‖J δ + R‖ by an SVD-based solver (gelsd), stable for the ill-conditioned equation block.

    ``report`` (optional) receives ``converged`` — the loop stopped because the loss no longer
    decreased (relative change ≤ ``rtol``, or no step along the Gauss–Newton direction lowers
    it: stationary to round-off), not because it ran out of ``max_gn`` steps — and
    ``grad_rel`` = ‖JᵀR‖ at the end over its value at the start (the optimality residual).
    """
    shape = z0.shape
    loss = _Flat(loss, shape)
    z = z0.reshape(-1).clone()
    f0 = loss.value(z)
    it = 0
    stalled = False
    g0 = None
    for it in range(1, max_gn + 1):  # noqa: B007 (returned)
        J = torch.func.jacfwd(loss.R)(z)
        r = loss.R(z)
        if g0 is None:
            g0 = float((J.T @ r).norm()) or 1.0
        delta = torch.linalg.lstsq(J, -r[:, None], driver="gelsd").solution[:, 0]
        cand, f1 = _backtrack(loss, z, delta, f0)
        if cand is None:
            stalled = True
            break
        z = cand
        done = f0 - f1 <= rtol * max(1.0, abs(f0))
        f0 = f1
        if done:
            stalled = True
            break
    if report is not None:
        J = torch.func.jacfwd(loss.R)(z)
        report.grad_rel = float((J.T @ loss.R(z)).norm()) / (g0 or 1.0)
        report.converged &= stalled
        report.gn_steps += it
    return z.reshape(shape), it


@dataclass
class _Flat:
    """A LossU seen as a function of the flattened unknowns."""

    inner: LossU
    shape: torch.Size

    def R(self, z: torch.Tensor) -> torch.Tensor:
        return self.inner.R(z.reshape(self.shape))

    def value(self, z: torch.Tensor) -> float:
        return self.inner.value(z.reshape(self.shape))


# explicit boundary block of the preconditioner up to this many entries (N_b · N₁N₂; 4e7 doubles
# = 320 MB, reached near 220²); above it the boundary term enters through its diagonal only
BOUNDARY_WOODBURY_MAX = 40_000_000


class _Precond:
    """M⁻¹ ≈ (I + v JₑᵀJₑ + b BᵀB)⁻¹ for the whitened 2-D Poisson normal equations.

    In the coordinates H = Q₁ᵀ Z Q₂ the prior-plus-equation part is the diagonal
    D = 1 + v Λ² diag(VᵀV) (exact when K_d and K_d″ commute). The boundary part b BᵀB, with
    b = λ_b τ_b reaching 10⁶–10²⁰ after the precision sweep, is of rank N_b = 2N₁ + 2N₂ − 4 and
    dominates the Hessian: left out of M it leaves CG with a condition number of order b and
    every solve ran into its iteration cap. It is added exactly by the Woodbury identity,

        (D + b BᵀB)⁻¹ = D⁻¹ − D⁻¹Bᵀ (I/b + B D⁻¹ Bᵀ)⁻¹ B D⁻¹,

    with one Cholesky factorisation of the N_b × N_b capacitance matrix per Gauss–Newton step;
    on grids too large for the explicit B (``BOUNDARY_WOODBURY_MAX``), by its diagonal
    b Σ_{(i,j)∈∂} V₁[i, a]² V₂[j, c]² instead.
    """

    def __init__(self, fd: FastDiag2D, w: Whitened, mask: torch.Tensor, v: float, b: float):
        self.fd = fd
        self.D = 1.0 + v * fd.lam**2 * fd.metric
        self.B = self.chol = None
        n_b = int(mask.sum())
        if b <= 0:
            return
        if n_b * fd.lam.numel() <= BOUNDARY_WOODBURY_MAX:
            self.B = fd.boundary_rows(w, mask)
            Dinv = (1.0 / self.D).reshape(-1)
            S = (self.B * Dinv) @ self.B.T
            S.diagonal().add_(1.0 / b)
            # a relative jitter keeps the factorisation defined when B D⁻¹ Bᵀ is numerically
            # singular (two boundary nodes nearly indistinguishable in the kernel's basis)
            S.diagonal().add_(1e-12 * float(S.diagonal().max()))
            self.chol = torch.linalg.cholesky(S)
        else:
            V1 = w.L[0] @ fd.Q[0]
            V2 = w.L[1] @ fd.Q[1]
            e1 = V1[[0, -1]].pow(2).sum(0)  # Σ over the two boundary rows
            e2 = V2[[0, -1]].pow(2).sum(0)
            m1, m2 = V1.pow(2).sum(0), V2.pow(2).sum(0)
            self.D = self.D + b * (
                e1[:, None] * m2[None, :] + m1[:, None] * e2[None, :] - e1[:, None] * e2[None, :]
            )

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        Q1, Q2 = self.fd.Q
        H = (Q1.T @ X @ Q2) / self.D
        if self.chol is not None:
            t = self.B @ H.reshape(-1)
            t = torch.cholesky_solve(t[:, None], self.chol)[:, 0]
            H = H - (self.B.T @ t).reshape(H.shape) / self.D
        return Q1 @ H @ Q2.T


@dataclass
class CGReport:
    """What the 2-D finish did: Gauss–Newton steps, CG iterations and whether every solve met
    its tolerance (``converged``; False when a CG solve stopped at its cap), the worst final
    CG residual ‖JᵀJ δ + JᵀR‖ relative to the starting gradient ‖JᵀR₀‖, and the final
    relative gradient ‖JᵀR‖ / ‖JᵀR₀‖ (the optimality residual of the finish)."""

    gn_steps: int = 0
    cg_iter: int = 0
    converged: bool = True
    cg_rel_residual: float = 0.0
    grad_rel: float = float("nan")


def minimise_2d(
    loss: LossU,
    Z0: torch.Tensor,
    precond: FastDiag2D | None,
    max_gn: int = 5,
    cg_iter: int = 400,
    cg_tol: float = 1e-9,
    rtol: float = 1e-10,
    report: CGReport | None = None,
) -> tuple[torch.Tensor, int, int]:
    """Gauss–Newton on ½‖R(Z)‖² with matrix-free preconditioned CG on JᵀJ δ = −Jᵀ R.

    J-products come from forward-mode (jvp) and reverse-mode (vjp) differentiation of R, so the
    cost per CG iteration is a few N₁N₂(N₁ + N₂) mode products. With the Poisson preconditioner
    (:class:`_Precond`: the prior and equation terms diagonal in the fast-diagonalisation basis,
    the boundary rows added by Woodbury) CG needs tens of iterations; a solve that reaches
    ``cg_iter`` without ``cg_tol`` is recorded in ``report`` (``converged`` False) rather than
    passed over. Returns Z, the Gauss–Newton steps and the total CG iterations.
    """
    report = report if report is not None else CGReport()
    Z = Z0.clone()
    f0 = loss.value(Z)
    shape = Z.shape
    n_cg = 0
    it = 0
    v = loss.sqrt_v**2
    minv = _Precond(precond, loss.w, loss.mask, v, loss.sqrt_b**2) if precond is not None else None
    g0 = None
    for it in range(1, max_gn + 1):  # noqa: B007 (returned)
        r, vjp_fn = torch.func.vjp(loss.R, Z)
        rhs = -vjp_fn(r)[0]
        gnorm = float(rhs.norm())
        g0 = gnorm if g0 is None else g0
        report.grad_rel = gnorm / (g0 or 1.0)

        def normal(P: torch.Tensor, Z=Z, vjp_fn=vjp_fn) -> torch.Tensor:
            _, jp = torch.func.jvp(loss.R, (Z,), (P,))
            return vjp_fn(jp)[0]

        # preconditioned CG on the normal equations
        x = torch.zeros(shape, dtype=Z.dtype, device=Z.device)
        res = rhs.clone()
        zr = minv(res) if minv is not None else res
        p = zr.clone()
        rz = float((res * zr).sum())
        # the tolerance is relative to the gradient at the start of the whole solve, not to
        # this step's: after the first Gauss–Newton step the gradient is already ~1e-8 of its
        # start, and 1e-9 of that would ask CG for round-off (every later solve "failed")
        bnorm = g0 or 1.0
        met = False
        for _ in range(cg_iter):
            Ap = normal(p)
            alpha = rz / float((p * Ap).sum())
            x = x + alpha * p
            res = res - alpha * Ap
            n_cg += 1
            if float(res.norm()) <= cg_tol * bnorm:
                met = True
                break
            zr = minv(res) if minv is not None else res
            rz_new = float((res * zr).sum())
            p = zr + (rz_new / rz) * p
            rz = rz_new
        report.converged &= met
        report.cg_rel_residual = max(report.cg_rel_residual, float(res.norm()) / bnorm)
        cand, f1 = _backtrack(loss, Z, x, f0)
        if cand is None:
            break
        Z = cand
        done = f0 - f1 <= rtol * max(1.0, abs(f0))
        f0 = f1
        if done:
            break
    r, vjp_fn = torch.func.vjp(loss.R, Z)
    report.grad_rel = float(vjp_fn(r)[0].norm()) / (g0 or 1.0)
    report.gn_steps += it
    report.cg_iter += n_cg
    return Z, it, n_cg
