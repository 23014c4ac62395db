"""Physics-informed neural network, balanced so that a numerical analyst would accept it as a
baseline (issue 15): exact boundary conditions, scaled inputs and outputs, a normalised residual,
Adam then a Levenberg–Marquardt (or L-BFGS) finish, and a *suspect* flag on runs that did not converge.

Model and loss
--------------
With ``bc="exact"`` (the default) the network N_θ enters through a lift and a distance function
(:class:`workbench.physics.pde.constraints.DirichletLift`),

    u_θ(x) = G(x) + D(x)·s_u·N_θ((x − c)/h),        J(θ) = mean_{x∈S} r(x; θ)² / ⟨f²⟩,

so the Dirichlet data hold to round-off and there is no boundary weight to tune. Inputs are
mapped onto [−1, 1]^d, and s_u, the expected size of u, scales the output (from the boundary data
and the source's spectrum: ‖f‖ / k̄^order for an operator of that order). Dividing the residual
by ⟨f²⟩, the mean square of the source, makes J ≈ 1 at the start on every problem; the old
γ = 100 against an unnormalised residual of ~5e7 was why the boundary was ignored.

``bc="penalty"`` minimises mean r²/⟨f²⟩ + γ·mean (u − g)²/s_u²; ``bc="adaptive"`` updates γ
every 50 steps by learning-rate annealing (Wang, Teng & Perdikaris, SIAM J. Sci. Comput. 43
(2021) A3055): γ ← 0.9γ + 0.1·max|∇_θ J_r| / mean|∇_θ J_b|.

Optimisation: steps 1..``adam_iter`` are Adam (in ``dtype``, float32 by default), the rest up to
``max_iter`` the ``finish``: Levenberg–Marquardt (:func:`levenberg_marquardt`) or scipy's
L-BFGS-B, both in ``lbfgs_dtype`` (float64 by default: in float32 the line search stops on
rounding noise). ``finish="auto"`` (the default) takes LM up to 1024 residuals or weights (1-D
problems) and L-BFGS above, where LM's O(m²·P) iterations cost seconds. ``max_iter`` counts
both phases, so cancelling at step k equals ``max_iter = k``. The default network is 4×64 with
sin activations and inputs mapped to [−1, 1]: tanh networks stalled on poisson1d_sin10 (rel L2
≈ 10, loss flat). A ``params.lr_decay`` (the staged solvers', :mod:`.pinn_staged`) lowers
Adam's rate exponentially to lr·lr_decay by the end of the Adam phase; ``pinn`` keeps it
constant.

Why the finish is Levenberg–Marquardt. The residual loss is ill-conditioned for the error's
smooth part: with exact boundary data the error e = u_θ − u of a Poisson problem solves
e'' = r, e = 0 on ∂Ω, so a residual component of wavenumber κ leaves an error r̂/κ², and
relative to u = sin(kx) (‖u‖ = ‖f‖/k²)

    ‖e‖/‖u‖  ≤  (k / κ_min)² · ‖r‖/‖f‖,      κ_min = π/L,

a factor 400 on poisson1d_sin10 (k = 10, L = 2π). The loss weights the smoothest error mode
(k/κ_min)⁴ = 1.6e5 times less than the solution's own frequency, and a first-order or
quasi-Newton method sees that spread as the conditioning of its problem: the previous default
(2000 Adam + 8000 L-BFGS-B iterations, all 8000 used, none stopped early) lowered the loss
only to ~5e-8 and ended at rel L2 1.4e-3–2.0e-2 over seeds 0–2 of poisson1d_sin10, one seed in
three above 1e-2 (BENCHMARKS.md before 2026-12-07 06:00). Gauss–Newton is Newton's method on
the loss in function space, projected onto the network's tangent space, so that spread does
not slow it: from where Adam stops, 100 LM iterations reached rel L2 5e-5–2.5e-4 and 500
reached 4e-7–6e-6, loss 1e-11–1e-12, on the validation problems u = sin 7x, sin 13x,
sin 7x + x/2 + 1 and sin 13x − 0.3x + 2 on [0, 2π] (one seed each; on sin 13x Adam had ended
at rel L2 0.93 and LM still converged). The default length, 2000 Adam + 500 LM, was chosen
there; poisson1d_sin10 chose nothing.

Derivatives. u, ∇u and the diagonal of the Hessian are propagated forward through the MLP
(:meth:`workbench.nets.pde_mlp.MLP.taylor`) in one pass, with the weight-free lift G and
distance D and their derivatives computed once per collocation set; the loss gradient is then
one backward pass. Nested reverse-mode ``autograd.grad`` calls gave the same values to
round-off at 2.2× the cost per step (4×64 tanh, 500 points in 2-D: 41 → 18 ms on this
machine; 1-D sin, 128 points: 6.9 → 3.2 ms), and residuals of candidates and check grids need
no graph at all.

Collocation and samplers (:mod:`workbench.solvers.pde.pinn_samplers`): every ``stage_steps``
Adam steps the sampler may replace or extend S; the L-BFGS phase keeps the last S.

Diagnostics: a run is marked ``suspect`` (metric 1.0, a reason in ``extras``) when its residual
on a fixed check grid (1000 points, 100² in 2-D) fell by less than 100× from the initial
network's, when that residual is above 5 % of the source's size, or when a soft boundary
condition is missed by more than 1 % of the solution's size; a small
collocation residual with a large error between the points (aliasing) is shown by the page.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from workbench.device import resolve_device, versions
from workbench.errors import InputError
from workbench.nets.pde_mlp import MLP
from workbench.physics.pde.compiled import boundary_mask, compile_problem, validate
from workbench.physics.pde.metrics import rel_l2, truth_on_test
from workbench.physics.pde.operators import NEEDS, apply_operator
from workbench.problems import PDEProblem
from workbench.progress import Progress, append_history, ensure
from workbench.registry import SolverSpec, param
from workbench.result import Result

ORDER = {
    "poisson": 2,
    "allen_cahn": 2,
    "drift_poisson": 2,
    "nl_poisson": 2,
    "advection": 1,
    "burgers": 1,
}
SUSPECT_LOSS_DROP = 1e-2  # a check-grid residual that fell by less than 100×
SUSPECT_RESIDUAL = 5e-2  # rms residual on the check grid above 5 % of rms f
LM_AUTO_MAX = 1024  # finish="auto" uses Levenberg–Marquardt up to this many residuals


@dataclass(frozen=True)
class Params:
    width: int = param(64, "hidden units per layer", min=4, max=1024)
    depth: int = param(4, "hidden layers", min=1, max=12)
    activation: str = param(
        "sin",
        "activation: sin (default: tanh networks stalled on poisson1d_sin10) or tanh",
        choices=("tanh", "sin"),
    )
    max_iter: int = param(
        2500,
        "optimisation steps in all: Adam, then the finish (LM or L-BFGS iterations) after "
        "adam_iter",
        min=1,
        max=10_000_000,
    )
    adam_iter: int = param(
        2000, "Adam steps before the finish (LM or L-BFGS)", min=0, max=10_000_000
    )
    lr: float = param(1e-3, "Adam learning rate", min=1e-6, max=1.0, log=True)
    finish: str = param(
        "auto",
        "optimiser after Adam: lm (Levenberg–Marquardt; min(points, weights) <= 6000), lbfgs "
        "(scipy L-BFGS-B) or auto (lm up to 1024 points, as in 1-D; lbfgs above)",
        choices=("auto", "lbfgs", "lm"),
    )
    bc: str = param(
        "exact",
        "boundary conditions: exact (lift + distance function), adaptive (annealed weight) or penalty (fixed γ)",
        choices=("exact", "adaptive", "penalty"),
    )
    gamma: float = param(
        100.0, "boundary weight γ (penalty; start value for adaptive)", min=0.0, log=True
    )
    sampler: str = param(
        "grid",
        "collocation: grid (the problem's nodes), uniform (pseudo-random, fixed) or resample (fresh uniform every stage)",
        choices=("grid", "uniform", "resample"),
    )
    n_col: int = param(
        0,
        "collocation points per dimension (0 = the problem's, at least 128 in 1-D and 64² in 2-D)",
        min=0,
        max=4096,
    )
    stage_steps: int = param(
        1000, "Adam steps per sampling stage (resample)", min=1, max=1_000_000, advanced=True
    )
    input_scale: float = param(
        1.0,
        "inputs mapped to [−s, s]: 1 = the box to [−1, 1]; 0 = auto, s = max(1, k·L/2π) from the source's spectrum",
        min=0.0,
        max=1000.0,
        advanced=True,
    )
    lbfgs_dtype: str = param(
        "float64",
        "precision of the L-BFGS phase (float32's 7 digits stop its line search early)",
        choices=("float32", "float64"),
        advanced=True,
    )
    dtype: str = param(
        "float32", "network precision", choices=("float32", "float64"), advanced=True
    )
    n_checkpoints: int = param(
        50, "test-grid evaluations during training", min=1, max=10_000, advanced=True
    )
    seed: int = param(0, "initialisation and sampling seed")
    device: str = param("auto", "auto, cpu or cuda", advanced=True)


@dataclass(frozen=True)
class FourierParams(Params):
    activation: str = param(
        "tanh", "activation after the Fourier features", choices=("tanh", "sin")
    )
    n_features: int = param(64, "random Fourier features (cos and sin of each)", min=1, max=4096)
    sigma: float = param(
        0.0,
        "std of the feature frequencies B ~ N(0, σ²), cycles per unit (0 = the problem's freq_scale if "
        "given, else the source term's frequency bound)",
        min=0.0,
    )


def _derivs(model, X: torch.Tensor, need: set[str], create_graph: bool = True):
    """u and the derivatives named in ``need`` ("x", "xx", "y", "yy").

    A :class:`_Model` over an :class:`~workbench.nets.pde_mlp.MLP` propagates them forward
    (:meth:`_Model.derivs`, one pass, no nested autograd); any other module falls back to
    reverse-mode autograd (one ``grad`` for ∇u, one more per second derivative). Both return
    every first derivative and the second derivatives in ``need``.
    """
    if isinstance(model, _Model) and hasattr(model.net, "taylor"):
        if create_graph:
            return model.derivs(X, need)
        with torch.no_grad():  # values only (candidates, diagnostics): no graph at all
            return model.derivs(X, need)
    X = X.detach().requires_grad_(True)
    u = model(X)
    d: dict[str, torch.Tensor] = {}
    if not need:
        return u, d
    g = torch.autograd.grad(u.sum(), X, create_graph=True)[0]
    names = ("x", "y")
    for j in range(X.shape[1]):
        d[names[j]] = g[:, j]
        if names[j] * 2 in need:
            d[names[j] * 2] = torch.autograd.grad(
                g[:, j].sum(), X, create_graph=create_graph, retain_graph=True
            )[0][:, j]
    return u, d


def _field_derivs(fn, X: torch.Tensor, second: list[bool]):
    """fn(X), ∂fn/∂x_j and ∂²fn/∂x_j² (where ``second[j]``) by autograd, detached.

    For the lift G and the distance D of exact boundary conditions: they do not depend on the
    network's weights, so their derivatives are constants of the loss.
    """
    with torch.enable_grad():
        Xg = X.detach().requires_grad_(True)
        v = fn(Xg)
        g = None
        if v.requires_grad:  # a field that does not depend on x has no graph
            g = torch.autograd.grad(v.sum(), Xg, create_graph=any(second), allow_unused=True)[0]
        g = torch.zeros_like(Xg) if g is None else g
        g2 = torch.zeros_like(g)
        for j, sec in enumerate(second):
            if sec and g.requires_grad:  # else ∂_j fn is constant (G is linear in 1-D)
                h = torch.autograd.grad(g[:, j].sum(), Xg, retain_graph=True, allow_unused=True)[0]
                if h is not None:
                    g2[:, j] = h[:, j]
    return v.detach(), g.detach(), g2.detach()


def solution_scale(problem: PDEProblem, comp=None, norm: str = "rms") -> tuple[float, float, float]:
    """(s_u, s_f, k_u): the expected size of u, the rms of the source f and u's wavenumber.

    s_f is the rms of f on a 256-per-dimension grid. For an operator of order q, a source with
    power spectrum |f̂(k)|² has a solution of size about ‖f‖ / k̄^q with k̄^q the spectrum's
    power-weighted mean of |k|^q (exact for a single Fourier mode); s_u is the larger of that
    and the size of the boundary data. Used to scale the network's output and the loss.

    ``norm`` is the size measured: ``"rms"`` (‖·‖ the rms over the box) or ``"sup"`` (the
    maximum modulus, s_u = max(max|g|, max|f| / k̄^q)). The two agree up to √2 for a Fourier
    mode, but for a localised solution the rms is the peak times the square root of the
    fraction of the box it covers: on peak2d_single (u = exp(−1000|x − x₀|²), 3e-3 of the box)
    the rms estimate is 0.0093 for a peak of 1, so the network had to output ~200 through
    Xavier-sized weights, and Adam at lr 1e-3 moves each weight ~1e-3 per step.
    k_u = Σ |f̂|²|k|^(1−2q) / Σ |f̂|²|k|^(−2q) is the power-weighted mean wavenumber of the
    solution û = f̂/|k|^q (rad per unit length; 0 when f = 0), used for the input scale.
    """
    comp = comp or compile_problem(problem)
    n = 256 if problem.dim == 1 else 128
    axes = [np.linspace(lo, hi, n) for lo, hi in problem.box]
    f = comp.f_on(axes)
    s_f = float(np.sqrt(np.mean(f**2)))
    mesh = comp.mesh(axes)
    mask = boundary_mask(f.shape, problem.bc)
    s_g = float(np.sqrt(np.mean(comp.boundary(*[m[mask] for m in mesh]) ** 2)))
    s_fu = 0.0
    if s_f > 0:
        F = np.abs(np.fft.rfftn(f)) ** 2
        ks = [2 * np.pi * np.fft.fftfreq(n, d=(hi - lo) / (n - 1)) for lo, hi in problem.box]
        ks[-1] = (
            2 * np.pi * np.fft.rfftfreq(n, d=(problem.box[-1][1] - problem.box[-1][0]) / (n - 1))
        )
        K = np.sqrt(sum(k**2 for k in np.meshgrid(*ks, indexing="ij")))
        # the lowest mode of the box stands in for k = 0 (a constant source still has a scale)
        kmin = np.pi / max(hi - lo for lo, hi in problem.box)
        q = ORDER.get(problem.operator, 2)
        Kc = np.maximum(K, kmin)
        kq = float((F * Kc**q).sum() / F.sum())
        s_fu = s_f / kq
        Fu = F / Kc ** (2 * q)
        k_u = float((Fu * Kc).sum() / Fu.sum())
    else:
        k_u = 0.0
    if norm == "sup":
        s_g = float(np.max(np.abs(comp.boundary(*[m[mask] for m in mesh]))))
        s_fu = float(np.max(np.abs(f))) / kq if s_f > 0 else 0.0
    s_u = max(s_g, s_fu)
    if not np.isfinite(s_u) or s_u <= 0:
        s_u = 1.0
    if s_f <= 0 or not np.isfinite(s_f):
        # f = 0 (e.g. advection of the boundary data): measure the residual against s_u / L^q
        L = min(hi - lo for lo, hi in problem.box)
        s_f = s_u / L ** ORDER.get(problem.operator, 2)
    return s_u, s_f, k_u


class _Model(torch.nn.Module):
    """u = G + D·N (exact) or u = N (penalty), on the network's scaled input and output."""

    def __init__(self, net: torch.nn.Module, lift=None) -> None:
        super().__init__()
        self.net = net
        self.lift = lift
        self._pinned: tuple | None = None  # (X, lift terms) of the current collocation set

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if self.lift is None:
            return self.net(X)
        return self.lift.lift(X) + self.lift.distance(X) * self.net(X)

    def pin(self, X: torch.Tensor, need: set[str]) -> None:
        """Precompute G, D and their derivatives on the collocation set X (reused every step)."""
        self._pinned = None
        if self.lift is not None:
            self._pinned = (X, self._lift_terms(X, need))

    def _lift_terms(self, X: torch.Tensor, need: set[str]):
        if self._pinned is not None and self._pinned[0] is X:
            return self._pinned[1]
        second = [("x", "y")[j] * 2 in need for j in range(X.shape[1])]
        return (
            _field_derivs(self.lift.lift, X, second),
            _field_derivs(self.lift.distance, X, second),
        )

    def derivs(self, X: torch.Tensor, need: set[str], terms=None):
        """u, ∂u/∂x_j (every j) and ∂²u/∂x_j² (those in ``need``) by forward propagation.

        With exact boundary conditions u = G + D·N and, by the product rule,

            ∂_j u = ∂_j G + ∂_j D·N + D·∂_j N,
            ∂_jj u = ∂_jj G + ∂_jj D·N + 2 ∂_j D·∂_j N + D·∂_jj N,

        where G, D and their derivatives (no weights in them) come from autograd once per
        collocation set (:meth:`pin`; or ``terms``, as returned by ``_lift_terms``) and N's
        from :meth:`MLP.taylor`.
        """
        names = ("x", "y")
        dim = X.shape[1]
        second = any(names[j] * 2 in need for j in range(dim))
        n, dn, d2n = self.net.taylor(X, second)
        if self.lift is None:
            u, du, d2u = n, dn, d2n
        else:
            (G, Gd, Gdd), (D, Dd, Ddd) = terms or self._lift_terms(X, need)
            u = G + D * n
            du = Gd + Dd * n[:, None] + D[:, None] * dn
            if second:
                d2u = Gdd + Ddd * n[:, None] + 2 * Dd * dn + D[:, None] * d2n
        d: dict[str, torch.Tensor] = {}
        for j in range(dim):
            d[names[j]] = du[:, j]
            if names[j] * 2 in need:
                d[names[j] * 2] = d2u[:, j]
        return u, d


def _gram(A: torch.Tensor, wide: bool) -> torch.Tensor:
    """AAᵀ (``wide``) or AᵀA, symmetric.

    On the CPU in float64 by BLAS ``dsyrk``, which forms one triangle only: half the flops of a
    general product (0.27 s against 0.52 s for a 1000 × 12 737 Jacobian on one core), the LM
    iteration's main cost. Elsewhere (GPU, float32) a plain matrix product.
    """
    if A.device.type != "cpu" or A.dtype != torch.float64:
        return A @ A.T if wide else A.T @ A
    from scipy.linalg.blas import dsyrk

    # a C-ordered (m, P) array is the Fortran-ordered (P, m) Aᵀ: dsyrk then needs no copy;
    # trans=1 gives aᵀa for a = Aᵀ (AAᵀ), trans=0 gives aaᵀ = AᵀA
    a = np.ascontiguousarray(A.numpy()).T
    up = dsyrk(1.0, a, trans=1 if wide else 0, lower=0)
    G = torch.from_numpy(np.triu(up))
    return G + torch.triu(G, 1).T


def levenberg_marquardt(
    model: _Model,
    X: torch.Tensor,
    f: torch.Tensor,
    need: set[str],
    operator: str,
    coeffs: dict,
    s_f: float,
    n_iter: int,
    boundary: tuple | None = None,
    on_iter=None,
    reuse_gram: bool = True,
) -> tuple[int, str]:
    """Levenberg–Marquardt on the PINN's least-squares loss, in place on ``model``'s weights.

    The loss is J(θ) = ‖R(θ)‖² with R = r(X; θ) / (s_f √m) (plus √γ (u − g) / (s_u √m_b) at the
    boundary points for soft boundary conditions, ``boundary = (Xb, gb, s_u, γ)``). With the
    Jacobian A = ∂R/∂θ (m × P, one row per point, by ``vmap`` of per-point gradients) the step

        δ = −(AᵀA + μI)⁻¹ AᵀR = −Aᵀ(AAᵀ + μI)⁻¹ R            (m ≤ P: an m × m solve)

    is a Gauss–Newton step damped by μ = λ·mean diag(AAᵀ); λ shrinks 3× after a step that lowers
    J and grows 2× (step rejected, A reused) after one that does not. Gauss–Newton is the
    function-space Newton method of the residual loss projected onto the network's tangent
    space, so unlike L-BFGS it does not see the (k/κ_min)⁴ ill-conditioning between the
    error's smooth and oscillatory parts (Müller & Zeinhofer, ICML 2023, "energy natural
    gradient"). Needs min(m, P) ≤ 6000.

    A rejected step keeps A, so its Gram matrix (the iteration's main cost, 2m²P flops) is kept
    too and only the shift μ changes; ``reuse_gram=False`` forms it every iteration (same
    iterates to round-off; kept for the test that checks this).

    ``on_iter(k, loss) -> bool`` is called after each iteration; True stops (cancel).
    Returns (iterations done, reason it stopped early or "").
    """
    from torch.func import functional_call, grad, vmap

    class _Call(torch.nn.Module):  # functional_call swaps the weights of a module's forward
        def __init__(self, inner, fn) -> None:
            super().__init__()
            self.inner, self.fn = inner, fn

        def forward(self, *a):
            return self.fn(self.inner, *a)

    derivs_call = _Call(model, lambda mdl, Xp, tr: mdl.derivs(Xp, need, tr))
    value_call = _Call(model, lambda mdl, Xp: mdl(Xp))

    names = [n for n, _ in model.named_parameters()]
    ps = [p for _, p in model.named_parameters()]
    sizes = [p.numel() for p in ps]
    m, dim = X.shape
    P = sum(sizes)
    mb = 0 if boundary is None else len(boundary[0])
    if min(m + mb, P) > 6000:
        raise InputError(
            f"Levenberg–Marquardt needs min(points, weights) <= 6000, not {min(m + mb, P)}"
        )
    sc = 1.0 / (s_f * np.sqrt(m))
    terms = model._lift_terms(X, need) if model.lift is not None else None
    flat_terms = [t for pair in terms for t in pair] if terms is not None else []

    def point_residual(params, x, fx, *tt):
        Xp = x[None]
        tr = None
        if tt:
            tr = tuple(tuple(t[None] for t in tt[i : i + 3]) for i in (0, 3))
        u, d = functional_call(derivs_call, params, (Xp, tr))
        r = apply_operator(operator, u, d, coeffs, [Xp[:, j] for j in range(dim)]) - fx
        return r[0] * sc

    def point_boundary(params, x, gx):
        u = functional_call(value_call, params, (x[None],))[0]
        return (u - gx) * boundary_scale

    if boundary is not None:
        Xb, gb, s_u, gamma = boundary
        boundary_scale = float(np.sqrt(gamma) / (s_u * np.sqrt(mb)))
    jac_r = vmap(grad(point_residual), in_dims=(None, 0, 0) + (0,) * len(flat_terms))
    res_r = vmap(point_residual, in_dims=(None, 0, 0) + (0,) * len(flat_terms))
    jac_b = vmap(grad(point_boundary), in_dims=(None, 0, 0))
    res_b = vmap(point_boundary, in_dims=(None, 0, 0))

    def params_of(theta):
        return {
            "inner." + n: t.reshape(p.shape)
            for n, p, t in zip(names, ps, torch.split(theta, sizes), strict=True)
        }

    def R_of(theta):
        pr = params_of(theta)
        R = res_r(pr, X, f, *flat_terms)
        if boundary is not None:
            R = torch.cat([R, res_b(pr, Xb, gb)])
        return R

    def A_of(theta):
        pr = params_of(theta)
        g = jac_r(pr, X, f, *flat_terms)
        A = torch.cat([g["inner." + n].reshape(m, -1) for n in names], 1)
        if boundary is not None:
            gbd = jac_b(pr, Xb, gb)
            A = torch.cat([A, torch.cat([gbd["inner." + n].reshape(mb, -1) for n in names], 1)])
        return A

    with torch.no_grad():
        theta = torch.cat([p.detach().reshape(-1) for p in ps])
        R = R_of(theta)
        A = A_of(theta)
        loss = float(R @ R)
        lam, reason, k = 1e-3, "", 0
        wide = A.shape[0] <= A.shape[1]
        gram = None  # AAᵀ (or AᵀA) of the current A: a rejected step keeps A, so it is reused
        for k in range(1, n_iter + 1):
            # the smaller of the two Gram matrices (residuals vs weights), shifted by λ mean(diag);
            # the product is the iteration's main cost (2m²P flops), so it is formed once per A
            if gram is None or not reuse_gram:
                gram = _gram(A, wide)
                gram_mean = float(gram.diagonal().mean())
            K = gram.clone()
            K.diagonal().add_(lam * gram_mean)
            L, info = torch.linalg.cholesky_ex(K)
            if int(info) != 0:
                lam *= 10
                continue
            if wide:
                delta = -A.T @ torch.cholesky_solve(R[:, None], L)[:, 0]
            else:
                delta = -torch.cholesky_solve((A.T @ R)[:, None], L)[:, 0]
            R_new = R_of(theta + delta)
            new = float(R_new @ R_new)
            if np.isfinite(new) and new < loss:
                theta = theta + delta
                R, loss = R_new, new
                A = A_of(theta)
                gram = None
                lam = max(lam / 3, 1e-12)
            else:
                lam *= 2
            if lam > 1e12:
                reason = (
                    f"Levenberg–Marquardt stopped after {k} iterations: no step lowers the loss"
                )
                break
            if on_iter is not None:
                for p, t in zip(ps, torch.split(theta, sizes), strict=True):
                    p.copy_(t.reshape(p.shape))
                if on_iter(k, loss):
                    reason = "cancelled"
                    break
        for p, t in zip(ps, torch.split(theta, sizes), strict=True):
            p.copy_(t.reshape(p.shape))
    return k, reason


def _boundary_points(problem: PDEProblem, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points on the faces that carry data (uniform per face, both ends in 1-D)."""
    box = problem.box
    if problem.dim == 1:
        return np.array([[box[0][0]], [box[0][1]]], float)
    (a, b), (c, d) = box
    faces = [(0, a), (0, b), (1, c)] + ([] if problem.bc == "initial_boundary" else [(1, d)])
    per = max(1, n // len(faces))
    out = []
    for axis, val in faces:
        P = np.empty((per, 2))
        other = 1 - axis
        lo, hi = box[other]
        P[:, other] = lo + (hi - lo) * rng.random(per)
        P[:, axis] = val
        out.append(P)
    return np.concatenate(out)


def train(
    problem: PDEProblem,
    params,
    progress: Progress | None,
    sampler=None,
    fourier: bool = False,
) -> Result:
    """Train a PINN on ``problem``; ``sampler`` (:mod:`.pinn_samplers`) updates S between stages.

    Returns a :class:`~workbench.result.Result` whose ``output`` is u on the problem's grid,
    with ``x`` (and ``y``), ``u_test`` (300 per dimension), ``residual_grid``, per-stage
    collocation points ``stage_points`` (K, N_max, d; NaN-padded) and per-stage diagnostics.
    """
    from workbench.physics.pde.uniformity import residual_uniformity
    from workbench.solvers.pde import pinn_samplers as PS

    progress = ensure(progress)
    t0 = time.perf_counter()
    validate(problem)
    comp = compile_problem(problem)
    dev = resolve_device(params.device)
    dt = torch.float64 if params.dtype == "float64" else torch.float32
    dim = problem.dim
    gen = torch.Generator(device="cpu").manual_seed(int(params.seed))
    rng = np.random.default_rng(params.seed)
    bc_mode = getattr(params, "bc", "exact")
    if bc_mode == "exact" and problem.bc not in ("dirichlet", "initial_boundary"):
        raise InputError(f"exact boundary conditions need Dirichlet data, not {problem.bc!r}")
    n_col = getattr(params, "n_col", 0)
    # auto: the problem's grid, but never fewer than 128 points (1-D) or 64² (2-D): a preset's
    # grid sized for GP-HM can be too coarse for a network to see the source between nodes
    ns = [n_col] * dim if n_col else [max(int(n), 128 if dim == 1 else 64) for n in problem.n_col]
    axes = [np.linspace(lo, hi, n) for (lo, hi), n in zip(problem.box, ns, strict=False)]
    mesh = comp.mesh(axes)
    if sampler is None:
        kind = getattr(params, "sampler", "grid")
        m = int(np.prod(ns))
        if kind == "grid":
            sampler = PS.GridSampler(np.stack([g.ravel() for g in mesh], -1))
        elif kind == "resample":
            sampler = PS.ResampleSampler(m)
        else:
            sampler = PS.Sampler(m)
    need = {n for n in NEEDS[problem.operator] if dim == 2 or "y" not in n}
    s_u, s_f, k_u = solution_scale(problem, comp, getattr(params, "output_norm", "rms"))
    in_scale = float(getattr(params, "input_scale", 1.0))
    if in_scale == 0.0:
        # one unit of network input per radian of the solution's dominant oscillation, never
        # less than the box's [−1, 1]
        half = max(hi - lo for lo, hi in problem.box) / 2
        in_scale = max(1.0, k_u * half / np.pi)
    B = None
    if fourier:
        # σ from the data (issue 20): the user's freq_scale if given, else the frequency bound
        # of the source on the collocation grid (boundary data when it vanishes), never the
        # exact solution's frequency
        sigma = params.sigma or problem.freq_scale
        if not sigma:
            from workbench.physics.pde.frequency import data_frequency_bound

            sigma = data_frequency_bound(comp, problem.box, ns)[0]
        B = torch.randn(params.n_features, dim, generator=gen, dtype=torch.float64) * sigma
    net = MLP(
        problem.box,
        params.width,
        params.depth,
        params.activation,
        gen,
        dt,
        B,
        s_u,
        in_scale,
        zero_last=bool(getattr(params, "zero_output_init", False)),
    )
    lift = None
    if bc_mode == "exact":
        from workbench.physics.pde.constraints import DirichletLift

        lift = DirichletLift(problem)
    model = _Model(net, lift).to(dev)
    coeffs = comp.coeffs
    Xb = _boundary_points(problem, 400, rng)
    gb = comp.boundary(*Xb.T)
    true = truth_on_test(problem)
    Xt_np = np.stack([g.ravel() for g in comp.mesh(comp.test_axes())], -1)
    # tensors that follow the network's precision (float32 Adam, float64 L-BFGS by default)
    T: dict = {}

    def place(new_dt: torch.dtype) -> None:
        T["dt"] = new_dt
        T["Xb"] = torch.tensor(Xb, dtype=new_dt, device=dev)
        T["gb"] = torch.tensor(gb, dtype=new_dt, device=dev)
        T["Xt"] = torch.tensor(Xt_np, dtype=new_dt, device=dev)

    place(dt)
    # the check grid for residual diagnostics: 1000 points in 1-D, 100² in 2-D
    c_axes = [np.linspace(lo, hi, 1000 if dim == 1 else 100) for lo, hi in problem.box]
    Xchk = np.stack([g.ravel() for g in comp.mesh(c_axes)], -1)
    inv_f2 = 1.0 / s_f**2
    inv_u2 = 1.0 / s_u**2

    def residual(X: torch.Tensor, f: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
        u, d = _derivs(model, X, need, create_graph)
        return apply_operator(problem.operator, u, d, coeffs, [X[:, j] for j in range(dim)]) - f

    def residual2_np(P: np.ndarray) -> np.ndarray:
        """r² / s_f² at points P with the current network (chunked, no parameter graph)."""
        out = []
        fP = comp.source(*np.asarray(P, float).T)
        for i in range(0, len(P), 8192):
            X = torch.tensor(P[i : i + 8192], dtype=T["dt"], device=dev)
            f = torch.tensor(fP[i : i + 8192], dtype=T["dt"], device=dev)
            with torch.enable_grad():
                r = residual(X, f, create_graph=False)
            out.append((r.detach().double().cpu().numpy()) ** 2 * inv_f2)
        return np.concatenate(out)

    ctx = PS.Context(problem.box, rng, gen, residual2_np, dt, dev)
    X_np = sampler.init(ctx)
    state = {"X": None, "f": None, "gamma": float(getattr(params, "gamma", 100.0))}

    def set_points(P: np.ndarray) -> None:
        state["X"] = torch.tensor(P, dtype=T["dt"], device=dev)
        state["f"] = torch.tensor(comp.source(*P.T), dtype=T["dt"], device=dev)
        model.pin(state["X"], need)

    set_points(X_np)
    res_chk0 = float(np.sqrt(np.mean(residual2_np(Xchk))))

    def losses():
        r = residual(state["X"], state["f"])
        lr_ = (r * r).mean() * inv_f2
        if lift is None:
            lb = ((model(T["Xb"]) - T["gb"]) ** 2).mean() * inv_u2
        else:
            lb = torch.zeros((), dtype=T["dt"], device=dev)
        return lr_ + state["gamma"] * lb, lr_, lb

    def predict(X):
        with torch.no_grad():
            return (
                torch.cat([model(X[i : i + 20000]) for i in range(0, len(X), 20000)])
                .double()
                .cpu()
                .numpy()
            )

    total = int(params.max_iter)
    n_adam = min(int(getattr(params, "adam_iter", total)), total)
    stage_steps = max(1, int(getattr(params, "stage_steps", n_adam or 1)))
    every = max(1, total // max(1, params.n_checkpoints))
    hist: dict[str, list[float]] = {
        k: [] for k in ("step", "loss", "loss_residual", "loss_boundary", "gamma", "rel_l2", "time")
    }
    best = (float("inf"), 0)
    status, message = "max_iter", ""
    stage_pts: list[np.ndarray] = [X_np.copy()]
    stage_rows: list[dict] = []
    densities: list[np.ndarray] = []
    d_axes = [np.linspace(lo, hi, 64) for lo, hi in problem.box]

    def log(step, loss, lr_, lb):
        nonlocal best
        err = rel_l2(predict(T["Xt"]).reshape(true.shape), true)
        if err < best[0]:
            best = (err, step)
        append_history(
            hist,
            step=step,
            loss=loss,
            loss_residual=lr_,
            loss_boundary=lb,
            gamma=state["gamma"],
            rel_l2=err,
            time=time.perf_counter() - t0,
        )
        return err

    def stage_diagnostics(k: int, t_stage: float, extra: dict) -> None:
        r2 = residual2_np(Xchk).reshape([len(a) for a in c_axes])
        uni = residual_uniformity(r2, problem.box)
        err = rel_l2(predict(T["Xt"]).reshape(true.shape), true)
        stage_rows.append(
            {
                "stage": k,
                "rel_l2": err,
                "cv": uni["cv"],
                "w1": uni["w1"],
                "n_points": len(stage_pts[-1]),
                "time": t_stage,
                **{k2: float(v) for k2, v in extra.items()},
            }
        )

    def anneal_gamma() -> None:
        """γ̂ = max|∇J_r| / mean|∇J_b| (learning-rate annealing), smoothed."""
        _, lr_, lb = losses()
        ps = [p for p in model.parameters() if p.requires_grad]
        gr = torch.autograd.grad(lr_, ps, retain_graph=True, allow_unused=True)
        gb = torch.autograd.grad(lb, ps, allow_unused=True)
        mr = max(float(g.abs().max()) for g in gr if g is not None)
        mb = float(torch.cat([g.abs().ravel() for g in gb if g is not None]).mean())
        if mb > 0 and np.isfinite(mr / mb):
            state["gamma"] = 0.9 * state["gamma"] + 0.1 * mr / mb

    opt = torch.optim.Adam(model.parameters(), lr=params.lr)
    # exponential decay lr·ρ^(step/adam_iter) to lr·ρ at the end of the planned Adam phase
    # (ρ = lr_decay; 1 = constant): a constant rate keeps moving the smooth, barely penalised
    # part of u. The horizon is the planned adam_iter, not the max_iter cap, so a run capped
    # (or cancelled) at step k is the first k steps of the planned run.
    decay = float(getattr(params, "lr_decay", 1.0))
    horizon = int(getattr(params, "adam_iter", n_adam))
    sched = None
    if decay != 1.0 and horizon > 1:
        g = decay ** (1.0 / horizon)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: g**k)
    n_stage_lm = int(getattr(params, "stage_lm", 0) or 0)
    if n_stage_lm > 0 and getattr(params, "finish", "lbfgs") not in ("lm", "auto"):
        raise InputError("stage_lm needs the Levenberg–Marquardt finish (finish = lm)")

    # the finish (and the stage ends) run Levenberg-Marquardt in float64 unless asked otherwise
    lm_hi = getattr(params, "lbfgs_dtype", "float64") == "float64" and T["dt"] != torch.float64

    def to_lm_precision() -> None:
        if lm_hi:
            model.double()
            place(torch.float64)
            set_points(X_np)

    def run_lm(n_it: int, on_iter) -> tuple[int, str]:
        """n_it LM iterations on the current set (boundary term only without the exact lift)."""
        bnd = None if lift is not None else (T["Xb"], T["gb"], s_u, state["gamma"])
        return levenberg_marquardt(
            model,
            state["X"],
            state["f"],
            need,
            problem.operator,
            coeffs,
            s_f,
            n_it,
            boundary=bnd,
            on_iter=on_iter,
        )

    def stage_lm(n_it: int) -> bool:
        """n_it LM iterations on the current set before the sampler acts; True if cancelled.

        In float64 (the finish's precision); the network returns to the Adam precision after,
        with Adam's moments kept (a fresh Adam would take lr-sized sign steps at once)."""
        to_lm_precision()
        _, why = run_lm(n_it, lambda k, val: bool(progress.cancelled))
        if lm_hi:
            model.to(dt)
            place(dt)
            set_points(X_np)
        return why == "cancelled"

    step = 0
    first_loss = None
    cancelled = False
    t_stage = time.perf_counter()
    for step in range(1, n_adam + 1):
        if bc_mode == "adaptive" and (step - 1) % 50 == 0:
            anneal_gamma()
        opt.zero_grad(set_to_none=True)
        loss, lr_, lb = losses()
        if not torch.isfinite(loss):
            status, message = "failed", f"loss became non-finite at step {step}"
            break
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        vals = (float(loss.detach()), float(lr_.detach()), float(lb.detach()))
        first_loss = vals[0] if first_loss is None else first_loss
        if step % every == 0 or step == 1 or step == total:
            err = log(step, *vals)
            progress(step, total, loss=vals[0], rel_l2=err)
        else:
            progress(step, total, loss=vals[0])
        if progress.cancelled:
            status, message, cancelled = "cancelled", f"cancelled at step {step}", True
            break
        if step % stage_steps == 0 and step < n_adam:
            if n_stage_lm > 0 and stage_lm(n_stage_lm):
                status, message, cancelled = "cancelled", f"cancelled at step {step}", True
                break
            ctx.info = {}
            stage_diagnostics(len(stage_rows) + 1, time.perf_counter() - t_stage, {})
            t_s = time.perf_counter()
            X_np = sampler.update(ctx, step // stage_steps, X_np)
            set_points(X_np)
            stage_pts.append(X_np.copy())
            stage_rows[-1].update({k: float(v) for k, v in ctx.info.items()})
            stage_rows[-1]["sampler_s"] = time.perf_counter() - t_s
            if hasattr(sampler, "density") and getattr(sampler, "flow", None) is not None:
                densities.append(sampler.density(d_axes))
            t_stage = time.perf_counter()
    lbfgs_note = ""
    finish = getattr(params, "finish", "lbfgs")
    if finish == "auto":
        # LM costs O(m²·P) per iteration (the m × m system AAᵀ): cheap for 1-D point sets,
        # seconds per iteration for a 64² grid, where L-BFGS's O(P) steps win
        n_w = sum(p.numel() for p in model.parameters())
        n_res = len(X_np) + (0 if lift is not None else len(Xb))
        finish = "lm" if min(n_res, n_w) <= LM_AUTO_MAX else "lbfgs"
    if total > n_adam and not cancelled and status != "failed" and finish == "lm":
        to_lm_precision()
        n_lm = total - n_adam

        def on_iter(k: int, val: float) -> bool:
            cur = n_adam + k
            if cur % every == 0 or cur == total:
                with torch.enable_grad():
                    _, lr_, lb = losses()
                err = log(cur, val, float(lr_.detach()), float(lb.detach()))
                progress(cur, total, loss=val, rel_l2=err)
            else:
                progress(cur, total, loss=val)
            return bool(progress.cancelled)

        k_lm, why = run_lm(n_lm, on_iter)
        step = n_adam + k_lm
        if why == "cancelled":
            status, message = "cancelled", f"cancelled at step {step}"
        elif why:
            lbfgs_note = why
    elif total > n_adam and not cancelled and status != "failed":
        # scipy's L-BFGS-B (Byrd, Lu, Nocedal & Zhu; the optimiser of Raissi et al.'s PINN code)
        # in float64 over the flattened parameters: torch's LBFGS returned step 0 from its
        # strong-Wolfe search on these losses and then repeated the same failed direction
        from scipy.optimize import minimize

        if getattr(params, "lbfgs_dtype", "float32") == "float64" and T["dt"] != torch.float64:
            model.double()
            place(torch.float64)
            set_points(X_np)
        ps = list(model.parameters())
        sizes = [p.numel() for p in ps]

        def assign(theta: np.ndarray) -> None:
            with torch.no_grad():
                for p, chunk in zip(ps, np.split(theta, np.cumsum(sizes)[:-1]), strict=True):
                    p.copy_(torch.as_tensor(chunk.reshape(p.shape), dtype=p.dtype))

        def fun(theta: np.ndarray):
            assign(theta)
            for p in ps:
                p.grad = None
            with torch.enable_grad():
                loss, _, _ = losses()
                loss.backward()
            g = torch.cat([p.grad.reshape(-1) for p in ps]).double().cpu().numpy()
            return float(loss.detach()), g

        n_lb = total - n_adam
        count = {"k": 0, "stop": ""}

        def callback(intermediate_result):
            count["k"] += 1
            k = count["k"]
            cur = n_adam + k
            val = float(intermediate_result.fun)
            if not np.isfinite(val):
                count["stop"] = "failed"
                raise StopIteration
            if cur % every == 0 or cur == total:
                assign(intermediate_result.x)
                with torch.enable_grad():
                    _, lr_, lb = losses()
                err = log(cur, val, float(lr_.detach()), float(lb.detach()))
                progress(cur, total, loss=val, rel_l2=err)
            else:
                progress(cur, total, loss=val)
            if progress.cancelled:
                count["stop"] = "cancelled"
                raise StopIteration

        theta0 = torch.cat([p.detach().reshape(-1) for p in ps]).double().cpu().numpy()
        res = minimize(
            fun,
            theta0,
            jac=True,
            method="L-BFGS-B",
            callback=callback,
            options={
                "maxiter": n_lb,
                "maxfun": 20 * n_lb + 20,
                "maxcor": 50,
                "ftol": 1e-15,
                "gtol": 1e-12,
                "maxls": 50,
            },
        )
        assign(res.x)
        step = n_adam + count["k"]
        first_loss = float(res.fun) if first_loss is None else first_loss
        if count["stop"] == "cancelled":
            status, message = "cancelled", f"cancelled at step {step}"
        elif count["stop"] == "failed" or not np.isfinite(res.fun):
            status, message = "failed", f"L-BFGS diverged at iteration {count['k']}"
        elif count["k"] < n_lb:
            lbfgs_note = (
                f"L-BFGS stopped early after {count['k']} of {n_lb} iterations: {res.message}"
            )
    stage_diagnostics(len(stage_rows) + 1, time.perf_counter() - t_stage, {})
    u_test = predict(T["Xt"]).reshape(true.shape)
    Xg = torch.tensor(np.stack([g.ravel() for g in mesh], -1), dtype=T["dt"], device=dev)
    u_grid = predict(Xg).reshape(tuple(ns))
    fg = torch.tensor(comp.source(*[g.ravel() for g in mesh]), dtype=T["dt"], device=dev)
    with torch.enable_grad():
        res = residual(Xg, fg, create_graph=False)
    res_grid = res.detach().double().cpu().numpy().reshape(tuple(ns))
    final = rel_l2(u_test, true)
    if final < best[0]:
        best = (final, step)
    with torch.enable_grad():
        lf = float(losses()[0].detach())
    r2_chk = residual2_np(Xchk)
    res_chk = float(np.sqrt(np.mean(r2_chk)))
    b_mis = float(np.sqrt(np.mean((predict(T["Xb"]) - gb) ** 2))) / s_u
    reasons = []
    if res_chk > SUSPECT_LOSS_DROP * res_chk0:
        # measured on the fixed check grid, so a sampler that moves S cannot hide or fake it
        reasons.append(
            f"the residual on the check grid fell only {res_chk0 / max(res_chk, 1e-300):.3g}× "
            f"({res_chk0:.3g} → {res_chk:.3g} of the source's size)"
        )
    if res_chk > SUSPECT_RESIDUAL:
        reasons.append(f"the rms residual on the check grid is {res_chk:.3g} of the source's size")
    if b_mis > 1e-2:
        reasons.append(f"the boundary misfit is {b_mis:.3g} of the solution's size")
    wall = time.perf_counter() - t0
    K = len(stage_pts)
    n_max = max(len(p) for p in stage_pts)
    pts = np.full((K, n_max, dim), np.nan)
    for i, p in enumerate(stage_pts):
        pts[i, : len(p)] = p
    extras = {
        "x": axes[0],
        "u_test": u_test,
        "residual_grid": res_grid,
        "n_col": [int(n) for n in ns],
        "stage_points": pts,
        "stage_rel_l2": np.array([r["rel_l2"] for r in stage_rows]),
        "stage_cv": np.array([r["cv"] for r in stage_rows]),
        "stage_w1": np.array([r["w1"] for r in stage_rows]),
        "stage_time": np.array([r["time"] + r.get("sampler_s", 0.0) for r in stage_rows]),
        "sampler": sampler.name,
        "bc_mode": bc_mode,
        "finish": finish if total > n_adam else "none",
        "scales": {"u": s_u, "f": s_f},
        "residual_check": r2_chk.reshape([len(a) for a in c_axes]),
        "check_x": c_axes[0],
    }
    if densities:
        extras["stage_density"] = np.stack(densities)
        extras["density_x"] = d_axes[0]
        if dim == 2:
            extras["density_y"] = d_axes[1]
    if dim == 2:
        extras["y"] = axes[1]
        extras["check_y"] = c_axes[1]
    if lbfgs_note:
        extras["lbfgs_note"] = lbfgs_note
    if reasons:
        extras["suspect_reasons"] = "; ".join(reasons)
    if B is not None:
        extras["fourier_sigma"] = float(sigma)
    metrics = {
        "rel_l2_final": final,
        "rel_l2_best": float(best[0]),
        "rel_l2_best_step": float(best[1]),
        "residual_rms_rel": float(np.sqrt(np.mean(res_grid**2)) / s_f),
        "residual_check_rel": res_chk,
        "boundary_misfit_rel": b_mis,
        "loss_final": lf,
        "residual_cv": stage_rows[-1]["cv"],
        "residual_w1": stage_rows[-1]["w1"],
        "n_points": float(len(stage_pts[-1])),
        "suspect": 1.0 if reasons else 0.0,
        "wall_s": wall,
        "s_per_step": wall / max(1, step),
    }
    if bc_mode == "adaptive":
        metrics["gamma_final"] = state["gamma"]
    msg = message or lbfgs_note or f"{step} optimisation steps"
    if reasons:
        msg = "SUSPECT: " + "; ".join(reasons) + ". " + msg
    return Result(
        output=u_grid,
        kind="field",
        status=status,
        iterations=int(step),
        metrics=metrics,
        history=hist,
        extras=extras,
        meta={"seed": params.seed, "device": dev, "wall_s": wall, "versions": versions()},
        message=msg,
    )


def solve_pinn(
    problem: PDEProblem, params: Params, progress: Progress | None, fourier: bool
) -> Result:
    """Backwards-compatible entry point of ``pinn`` and ``pinn_fourier``."""
    return train(problem, params, progress, None, fourier)


def solve(problem: PDEProblem, params: Params, progress: Progress | None = None) -> Result:
    """Train a balanced MLP PINN on the problem's collocation points; see :func:`train`."""
    if isinstance(params, FourierParams):
        raise InputError("use the pinn_fourier solver for Fourier features")
    return train(problem, params, progress, None, fourier=False)


SPEC = SolverSpec(
    name="pinn",
    domain="pde",
    title="PINN (MLP, balanced)",
    Params=Params,
    solve=solve,
    planned_stop=True,  # the run verdict: reaching max_iter is the plan
    description="Physics-informed neural network: an MLP (tanh or sin) with exact Dirichlet conditions "
    "(lift + distance function; or an adaptive or fixed boundary weight), inputs scaled to [−1, 1], "
    "output scaled to the solution's size, residual normalised by the source's size, Adam then Levenberg–Marquardt (up to 1024 points) or L-BFGS. "
    "Runs whose loss stalls or whose residual stays large are marked suspect.",
    reference="M. Raissi, P. Perdikaris, G. E. Karniadakis, J. Comput. Phys. 378 (2019) 686–707; "
    "N. Sukumar, A. Srivastava, CMAME 389 (2022) 114333 (exact BCs); S. Wang, Y. Teng, P. Perdikaris, "
    "SIAM J. Sci. Comput. 43 (2021) A3055 (adaptive weight).",
)
