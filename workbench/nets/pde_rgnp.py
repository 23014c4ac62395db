"""Random-grid neural processes (RGNP) for parametric 1-D PDEs: the forward Gaussian-field network,
the grid-invariant inverse network (GICNet), the low-rank Gaussian densities, the ELBO and the
training loop with checkpoints.

Method: A. Vadeboncoeur, I. Kazlauskaite, Y. Papandreou, F. Cirak, M. Girolami, Ö. D. Akyildiz,
"Random Grid Neural Processes for Parametric Partial Differential Equations", ICML 2023
(arXiv 2301.11040). Our own implementation of spec pde.md §5; nothing is copied.

The PDE is 𝒩_z^w[u](x) = f_w(x) on Ω = [lo, hi] with Dirichlet data g_w at both ends; z are the
unknown parameters (uniform prior), w the known inputs (uniform prior during training).

* Forward net α: x ↦ (μ(x), log σ²(x), c(x) ∈ ℝᵏ) given (z, w); on points x₁..xₙ the latent field
  is û ~ N(μ, diag σ² + C Cᵀ). Hard boundary conditions: u = B(x) + D(x) û(x), with B the linear
  interpolant of the boundary values and D(x) = sin(π (x − lo) / (hi − lo)), zero at both ends.
* Inverse net β (GICNet): scattered (xⱼ, uⱼ) and w ↦ q_β(z | u, w) = N(m, diag s² + L Lᵀ).
* ELBO per draw (z, w, grid x ~ U(Ω)ⁿ, û ~ q_α reparameterised):

      ELBO = log N(r | 0, ε_r² I) + log q_β(z | u, w, x) − log q_α(û | z, w, x),

  with r = 𝒩_z^w[u](xᵢ) − f_w(xᵢ) by autograd (second order) through the sample. Optional data
  term for observations y at arbitrary points: Σ log N(y | B + D μ, D² σ² + σ_y²).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.physics.pde.operators import NEEDS, apply_operator

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights" / "pde"
LOG2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------------------------
# the parametric family


@dataclass(frozen=True)
class Family:
    """A 1-D parametric PDE family: what the networks are trained on.

    Attributes
    ----------
    operator : str
        Operator name of :mod:`workbench.physics.pde.operators` (1-D).
    box : tuple
        ``((lo, hi),)``.
    source, boundary : str
        Expressions of f and g in x and the parameter names (parsed safely, never eval'd).
    z_names, w_names : tuple of str
        Unknown parameters and known inputs, in network order.
    priors : dict
        ``name -> [lo, hi]`` uniform priors of every name in ``z_names + w_names``.
    fixed : dict
        Other coefficients held constant.
    """

    operator: str
    box: tuple
    source: str
    boundary: str
    z_names: tuple = ()
    w_names: tuple = ()
    priors: dict = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)

    @property
    def names(self) -> tuple:
        return tuple(self.z_names) + tuple(self.w_names)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.array([self.priors[n][0] for n in self.names], float)
        hi = np.array([self.priors[n][1] for n in self.names], float)
        return lo, hi

    def to_json(self) -> dict:
        d = asdict(self)
        d["box"] = [list(b) for b in self.box]
        d["z_names"], d["w_names"] = list(self.z_names), list(self.w_names)
        return d

    @classmethod
    def from_json(cls, d: dict) -> Family:
        return cls(
            operator=d["operator"],
            box=tuple(tuple(float(v) for v in b) for b in d["box"]),
            source=d["source"],
            boundary=d["boundary"],
            z_names=tuple(d["z_names"]),
            w_names=tuple(d["w_names"]),
            priors={k: [float(v[0]), float(v[1])] for k, v in d["priors"].items()},
            fixed={k: float(v) for k, v in d["fixed"].items()},
        )

    def matches(self, other: Family) -> bool:
        """Same equation, box, data and parameter layout (priors may differ)."""
        return (
            self.operator == other.operator
            and np.allclose(np.ravel(self.box), np.ravel(other.box))
            and self.source.replace(" ", "") == other.source.replace(" ", "")
            and self.boundary.replace(" ", "") == other.boundary.replace(" ", "")
            and tuple(self.z_names) == tuple(other.z_names)
            and tuple(self.w_names) == tuple(other.w_names)
        )


def family_of(problem: Any) -> Family:
    """The family of a 1-D :class:`~workbench.problems.PDEProblem`.

    Coefficients with a prior are parameters; those named ``w*`` are known inputs, the others
    unknowns. Without priors the family has no parameters (a single PDE).
    """
    from workbench.errors import InputError
    from workbench.physics.pde.compiled import compile_problem

    if problem.dim != 1:
        raise InputError(
            "rgnp is implemented for 1-D problems (e.g. nlpoisson1d_param); 2-D (burgers_param) is not yet supported"
        )
    comp = compile_problem(problem)
    priors = {str(k): [float(v[0]), float(v[1])] for k, v in (problem.priors or {}).items()}
    for k, v in priors.items():
        if not v[1] > v[0]:
            raise InputError(f"prior of {k!r} must be an interval [lo, hi] with lo < hi")
    w_names = tuple(sorted(k for k in priors if k.startswith("w")))
    z_names = tuple(sorted(k for k in priors if k not in w_names))
    fixed = {k: float(v) for k, v in problem.coefficients.items() if k not in priors}
    return Family(
        operator=problem.operator,
        box=tuple(tuple(b) for b in problem.box),
        source=comp.source_expr if problem.source is None else str(problem.source),
        boundary=comp.boundary_expr if problem.boundary is None else str(problem.boundary),
        z_names=z_names,
        w_names=w_names,
        priors=priors,
        fixed=fixed,
    )


class FamilyFunctions:
    """Numeric f(x; params) and g(x; params) of a family, from its parsed expressions."""

    def __init__(self, fam: Family) -> None:
        import sympy as sp

        from workbench.physics.pde import expr as E

        names = tuple(fam.names) + tuple(fam.fixed)
        subs = {E.sym(k): float(v) for k, v in fam.fixed.items()}
        args = [E.sym("x")] + [E.sym(n) for n in fam.names]
        f = E.parse(fam.source, ("x",), names).subs(subs)
        g = E.parse(fam.boundary, ("x",), names).subs(subs)
        self._f = sp.lambdify(args, f, modules="numpy")
        self._g = sp.lambdify(args, g, modules="numpy")

    @staticmethod
    def _call(fn: Callable, x: np.ndarray, P: np.ndarray) -> np.ndarray:
        cols = [P[:, j : j + 1] for j in range(P.shape[1])]
        with np.errstate(all="ignore"):
            out = np.asarray(fn(x, *cols), float)
        return np.broadcast_to(out, np.broadcast_shapes(x.shape, (len(P), 1))).copy()

    def source(self, x: np.ndarray, P: np.ndarray) -> np.ndarray:
        """f at x of shape (B, n) for the parameter rows P of shape (B, p)."""
        return self._call(self._f, x, P)

    def boundary(self, x: np.ndarray, P: np.ndarray) -> np.ndarray:
        return self._call(self._g, x, P)


# --------------------------------------------------------------------------------------------
# low-rank Gaussians


def lowrank_logpdf(
    v: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, C: torch.Tensor
) -> torch.Tensor:
    """log N(v | mean, diag(exp logvar) + C Cᵀ), batched, in O(n k²).

    Woodbury and the matrix determinant lemma with D = diag σ², M = I_k + Cᵀ D⁻¹ C:

        log det Σ = Σᵢ log σᵢ² + log det M,
        eᵀ Σ⁻¹ e = eᵀ D⁻¹ e − bᵀ M⁻¹ b,   b = Cᵀ D⁻¹ e,   e = v − mean.

    Parameters
    ----------
    v, mean, logvar : tensor (..., n)
    C : tensor (..., n, k)

    Returns
    -------
    tensor (...,)
    """
    e = v - mean
    dinv = torch.exp(-logvar)
    n, k = e.shape[-1], C.shape[-1]
    quad = (e * e * dinv).sum(-1)
    logdet = logvar.sum(-1)
    if k:
        Ct = C.transpose(-1, -2)
        M = torch.eye(k, dtype=C.dtype, device=C.device) + Ct @ (dinv.unsqueeze(-1) * C)
        Lm = torch.linalg.cholesky(M)
        b = (Ct @ (dinv * e).unsqueeze(-1)).squeeze(-1)
        y = torch.linalg.solve_triangular(Lm, b.unsqueeze(-1), upper=False).squeeze(-1)
        quad = quad - (y * y).sum(-1)
        logdet = logdet + 2 * torch.log(torch.diagonal(Lm, dim1=-2, dim2=-1)).sum(-1)
    return -0.5 * (quad + logdet + n * LOG2PI)


def lowrank_std(logvar: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """Marginal standard deviations √(σᵢ² + ‖cᵢ‖²)."""
    return torch.sqrt(torch.exp(logvar) + (C * C).sum(-1))


# --------------------------------------------------------------------------------------------
# networks


def _linear(a: int, b: int, gen: torch.Generator) -> nn.Linear:
    # skip_init: no draw from the global RNG (the contract checks it is untouched)
    lin = torch.nn.utils.skip_init(nn.Linear, a, b)
    bound = math.sqrt(6.0 / (a + b))  # Xavier uniform, from an explicit generator
    with torch.no_grad():
        lin.weight.uniform_(-bound, bound, generator=gen)
        lin.bias.zero_()
    return lin


class MLP(nn.Module):
    """Dense layers with swish (SiLU) activations between them."""

    def __init__(self, sizes: list[int], gen: torch.Generator) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            _linear(a, b, gen) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for i, lin in enumerate(self.layers):
            h = lin(h)
            if i < len(self.layers) - 1:
                h = torch.nn.functional.silu(h)
        return h


class ForwardNet(nn.Module):
    """α: (s, p) ↦ (μ, log σ², c) per point, s ∈ [−1, 1] the scaled coordinate, p ∈ [−1, 1]ᴾ.

    Input: s, the Fourier features sin(2π fⱼ s), cos(2π fⱼ s) with fⱼ geometric in
    [f_min, f_max] (cycles per unit of s), and p. The features are the network's only input
    transformation; ``trainable_freqs`` lets them move.
    """

    def __init__(
        self,
        n_params: int,
        *,
        width: int = 64,
        depth: int = 4,
        n_features: int = 32,
        f_min: float = 0.01,
        f_max: float = 2.0,
        rank: int = 2,
        gen: torch.Generator,
    ) -> None:
        super().__init__()
        self.rank = rank
        freqs = torch.tensor(np.geomspace(f_min, f_max, n_features), dtype=torch.float32)
        self.log_freqs = nn.Parameter(torch.log(freqs), requires_grad=False)
        self.mlp = MLP([1 + 2 * n_features + n_params] + [width] * depth + [2 + rank], gen)
        with torch.no_grad():
            last = self.mlp.layers[-1]
            last.bias[1] = -6.0  # start with a small σ: the residual term dominates early
            last.weight[2:] *= 0.1

    def forward(self, s: torch.Tensor, p: torch.Tensor):
        """s (B, n), p (B, P) → μ (B, n), log σ² (B, n), C (B, n, k)."""
        ang = 2 * math.pi * s.unsqueeze(-1) * torch.exp(self.log_freqs)
        pe = p.unsqueeze(1).expand(-1, s.shape[1], -1)
        h = torch.cat([s.unsqueeze(-1), torch.sin(ang), torch.cos(ang), pe], -1)
        o = self.mlp(h)
        return o[..., 0], o[..., 1].clamp(-20.0, 6.0), o[..., 2:]


class GICNet(nn.Module):
    """β: grid-invariant convolutional network, (s_j, u_j)_{j≤m} and w ↦ q(z) = N(m, diag s² + LLᵀ).

    1. lift each value uⱼ with an MLP to P channels, h_cj;
    2. Nadaraya–Watson interpolation per channel onto a fixed latent grid s*_g:
       ŷ_c(s*) = Σⱼ k_c(s*, sⱼ) h_cj / (Σⱼ k_c(s*, sⱼ) + 1e−6), k_c EQ with a trainable length-scale
       ℓ_c (initialised geometric in [1e−3, 1]); sums over points make the map invariant to their
       order, and the normalisation makes it (nearly) invariant to their number and density;
    3. concatenate s*, six 1-D convolutions (kernel 3), flatten, Dense, Dense;
    4. multiply (DeepONet-style) with an MLP embedding of w, then a linear head.
    """

    def __init__(
        self,
        n_z: int,
        n_w: int,
        *,
        channels: int = 24,
        latent: int = 20,
        conv: int = 32,
        dense: int = 256,
        embed: int = 100,
        rank: int = 2,
        u_scale: float = 1.0,
        gen: torch.Generator,
    ) -> None:
        super().__init__()
        self.n_z, self.n_w, self.rank = n_z, n_w, rank
        self.u_scale = float(u_scale)
        self.lift = MLP([1, 32, 32, 32, channels], gen)
        self.log_ls = nn.Parameter(
            torch.log(torch.tensor(np.geomspace(1e-3, 1.0, channels))).float()
        )
        self.register_buffer("grid", torch.linspace(-1, 1, latent))
        convs = []
        cin = channels + 1
        for _ in range(6):
            c = torch.nn.utils.skip_init(nn.Conv1d, cin, conv, 3, padding=1)
            b = math.sqrt(6.0 / (3 * (cin + conv)))
            with torch.no_grad():
                c.weight.uniform_(-b, b, generator=gen)
                c.bias.zero_()
            convs.append(c)
            cin = conv
        self.convs = nn.ModuleList(convs)
        self.dense = MLP([conv * latent, dense, embed], gen)
        self.wnet = MLP([max(n_w, 1), 64, 64, embed], gen) if n_w else None
        self.head = _linear(embed, n_z * (2 + rank), gen)
        with torch.no_grad():
            self.head.bias.view(n_z, 2 + rank)[:, 1] = -2.0

    def interpolate(self, s: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """s (B, m), h (B, m, C) → (B, C, G) on the latent grid."""
        a = -0.5 * torch.exp(-2 * self.log_ls)  # −1 / (2 ℓ_c²), (C,)
        d2 = (self.grid.view(1, -1, 1) - s.unsqueeze(1)) ** 2  # (B, G, m)
        k = torch.exp(d2.unsqueeze(1) * a.view(1, -1, 1, 1))  # (B, C, G, m)
        num = (k @ h.permute(0, 2, 1).unsqueeze(-1)).squeeze(-1)  # Σⱼ k h, as one matmul
        return num / (k.sum(-1) + 1e-6)

    def forward(self, s: torch.Tensor, u: torch.Tensor, w: torch.Tensor):
        """s, u (B, m); w (B, n_w) in [−1, 1] → mean (B, n_z), logvar (B, n_z), L (B, n_z, k)."""
        h = self.lift((u / self.u_scale).unsqueeze(-1))
        y = self.interpolate(s, h)
        y = torch.cat([y, self.grid.view(1, 1, -1).expand(len(s), 1, -1)], 1)
        for c in self.convs:
            y = torch.nn.functional.silu(c(y))
        e = self.dense(y.flatten(1))
        if self.wnet is not None:
            e = e * self.wnet(w)
        o = self.head(torch.nn.functional.silu(e)).view(-1, self.n_z, 2 + self.rank)
        return o[..., 0], o[..., 1].clamp(-16.0, 4.0), o[..., 2:]


# --------------------------------------------------------------------------------------------
# the model: family + both networks


@dataclass
class Config:
    """Hyperparameters of an RGNP model (stored in the checkpoint)."""

    width: int = 64
    depth: int = 4
    n_features: int = 32
    f_max: float = 2.0
    rank: int = 2
    channels: int = 24
    latent: int = 20
    conv: int = 32
    dense: int = 256
    eps_r: float = 1e-2
    u_scale: float = 1.0
    grid: str = "random"  # random: fresh U(Ω) points each step; fixed: equispaced interior;
    # stratified: fresh points, one uniform in each of n equal cells (a random grid whose residual
    # sum has the Monte Carlo variance of a jittered Riemann sum instead of plain Monte Carlo)
    n_points: int = 30
    noise_max: float = 0.1  # σ of the noise added to β's input, drawn U[0, noise_max] per draw
    eps_r_trainable: bool = False  # learn log ε_r with the networks (init: eps_r)


class RGNP(nn.Module):
    """Forward net α and inverse net β of one family, with the maps between x and s, p and z."""

    def __init__(self, fam: Family, cfg: Config, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(int(seed))
        self.fam, self.cfg = fam, cfg
        self.lo, self.hi = float(fam.box[0][0]), float(fam.box[0][1])
        plo, phi = fam.bounds() if fam.names else (np.zeros(0), np.zeros(0))
        self.register_buffer("p_lo", torch.tensor(plo, dtype=torch.float32))
        self.register_buffer("p_hi", torch.tensor(phi, dtype=torch.float32))
        self.alpha = ForwardNet(
            len(fam.names),
            width=cfg.width,
            depth=cfg.depth,
            n_features=cfg.n_features,
            f_max=cfg.f_max,
            rank=cfg.rank,
            gen=gen,
        )
        self.nz, self.nw = len(fam.z_names), len(fam.w_names)
        self.beta = (
            GICNet(
                self.nz,
                self.nw,
                channels=cfg.channels,
                latent=cfg.latent,
                conv=cfg.conv,
                dense=cfg.dense,
                rank=cfg.rank,
                u_scale=cfg.u_scale,
                gen=gen,
            )
            if self.nz
            else None
        )
        self.fns = FamilyFunctions(fam)
        if cfg.eps_r_trainable:
            # the ELBO's maximiser over ε_r is the residual's RMS over the batch, so a learnt ε_r
            # follows the residual the mean reaches instead of a guess fixed before training
            self.log_eps_r = nn.Parameter(torch.tensor(math.log(cfg.eps_r)))
        # post-hoc temperature of the forward std and of the posterior covariance of z, fitted
        # on validation draws by the training command (1.0 = the networks' own variances)
        self.std_scale_u = 1.0
        self.std_scale_z = 1.0

    # coordinates and parameters -----------------------------------------------------------
    def to_s(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * (x - self.lo) / (self.hi - self.lo) - 1

    def to_p(self, P: torch.Tensor) -> torch.Tensor:
        return 2 * (P - self.p_lo) / (self.p_hi - self.p_lo) - 1

    def from_p(self, p: torch.Tensor, which: slice = slice(None)) -> torch.Tensor:
        lo, hi = self.p_lo[which], self.p_hi[which]
        return lo + 0.5 * (p + 1) * (hi - lo)

    def boundary_values(self, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        g0 = self.fns.boundary(np.full((len(P), 1), self.lo), P)[:, 0]
        g1 = self.fns.boundary(np.full((len(P), 1), self.hi), P)[:, 0]
        return g0, g1

    def hard_bc(self, x: torch.Tensor, g0: torch.Tensor, g1: torch.Tensor):
        """B(x) (linear in x between the boundary values) and D(x) = sin(π (x − lo)/(hi − lo))."""
        t = (x - self.lo) / (self.hi - self.lo)
        # sin(π min(t, 1 − t)) = sin(π t), written so that D is exactly 0.0 at both ends
        D = torch.sin(math.pi * torch.minimum(t, 1 - t))
        return g0.unsqueeze(-1) * (1 - t) + g1.unsqueeze(-1) * t, D

    # forward map ---------------------------------------------------------------------------
    def field(self, x: torch.Tensor, P: torch.Tensor):
        """Mean and marginal std of u at points x (B, n) for physical parameters P (B, p)."""
        g0, g1 = (torch.as_tensor(v, dtype=x.dtype) for v in self.boundary_values(P.numpy()))
        mu, logvar, C = self.alpha(self.to_s(x), self.to_p(P))
        Bx, Dx = self.hard_bc(x, g0, g1)
        std = self.std_scale_u * Dx.abs() * lowrank_std(logvar, C)
        return Bx + Dx * mu, std, (mu, logvar, C, Bx, Dx)

    # inverse map ---------------------------------------------------------------------------
    def posterior(self, x: torch.Tensor, u: torch.Tensor, W: torch.Tensor):
        """q(z | u, w) in the scaled coordinates p_z ∈ [−1, 1]: mean, logvar, L."""
        w = self.to_p(torch.cat([torch.zeros(len(W), self.nz), W], 1))[:, self.nz :]
        return self.beta(self.to_s(x), u, w)

    def posterior_physical(self, x: torch.Tensor, u: torch.Tensor, W: torch.Tensor):
        """Mean (n_z,) and covariance (n_z, n_z) of q(z | u, w) in physical units (B = 1)."""
        m, lv, L = self.posterior(x, u, W)
        scale = 0.5 * (self.p_hi[: self.nz] - self.p_lo[: self.nz])
        cov_p = torch.diag_embed(torch.exp(lv)) + L @ L.transpose(-1, -2)
        mean = self.from_p(m, slice(0, self.nz))
        cov = self.std_scale_z**2 * scale.view(1, -1, 1) * cov_p * scale.view(1, 1, -1)
        return mean, cov

    # training ------------------------------------------------------------------------------
    def sample_points(self, B: int, n: int, gen: torch.Generator) -> torch.Tensor:
        if self.cfg.grid == "fixed":
            x = torch.linspace(self.lo, self.hi, n + 2)[1:-1]
            return x.expand(B, n).clone()
        if self.cfg.grid == "stratified":
            k = torch.arange(n, dtype=torch.float32)
            t = (k + torch.rand(B, n, generator=gen)) / n
            return self.lo + (self.hi - self.lo) * t
        return self.lo + (self.hi - self.lo) * torch.rand(B, n, generator=gen)

    def eps_r_log(self) -> torch.Tensor:
        """log ε_r: the learnt value when ``cfg.eps_r_trainable``, else log ``cfg.eps_r``."""
        if self.cfg.eps_r_trainable:
            return self.log_eps_r
        return torch.tensor(math.log(self.cfg.eps_r))

    @property
    def eps_r(self) -> float:
        """The residual scale ε_r in use (learnt or fixed)."""
        return float(torch.exp(self.eps_r_log().detach()))

    def sample_params(self, B: int, gen: torch.Generator) -> torch.Tensor:
        u = torch.rand(B, len(self.fam.names), generator=gen)
        return self.p_lo + u * (self.p_hi - self.p_lo)

    def elbo(
        self,
        P: torch.Tensor,
        x: torch.Tensor,
        gen: torch.Generator,
        data: tuple[torch.Tensor, torch.Tensor, float] | None = None,
        n_data_scale: float = 1.0,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Per-draw ELBO (B,) of the spec's objective and its terms (means, for logging).

        ``data = (x_obs (B, m), y_obs (B, m), σ_y)`` adds Σ log N(y | B + D μ, D² σ² + σ_y²)
        times ``n_data_scale``.
        """
        B, n = x.shape
        x = x.detach().requires_grad_(True)
        Pn = P.detach().numpy().astype(float)
        g0, g1 = (torch.as_tensor(v, dtype=x.dtype) for v in self.boundary_values(Pn))
        mu, logvar, C = self.alpha(self.to_s(x), self.to_p(P))
        eps1 = torch.randn(B, n, generator=gen)
        eps2 = torch.randn(B, C.shape[-1], 1, generator=gen)
        uh = mu + torch.exp(0.5 * logvar) * eps1 + (C @ eps2).squeeze(-1)
        Bx, Dx = self.hard_bc(x, g0, g1)
        u = Bx + Dx * uh
        # residual by autograd through the sample: points are independent given (ε₁, ε₂), so
        # the gradient of the sum is the pointwise derivative
        ux = torch.autograd.grad(u.sum(), x, create_graph=True)[0]
        d = {"x": ux}
        if "xx" in NEEDS[self.fam.operator]:
            d["xx"] = torch.autograd.grad(ux.sum(), x, create_graph=True)[0]
        coeffs = {k: torch.tensor(v) for k, v in self.fam.fixed.items()}
        coeffs.update({k: P[:, j : j + 1] for j, k in enumerate(self.fam.names)})
        f = torch.as_tensor(self.fns.source(x.detach().numpy(), Pn), dtype=x.dtype)
        r = apply_operator(self.fam.operator, u, d, coeffs, [x.detach()]) - f
        log_eps = self.eps_r_log()
        log_r = -0.5 * (r * r).sum(-1) * torch.exp(-2 * log_eps) - n * (log_eps + 0.5 * LOG2PI)
        log_qa = lowrank_logpdf(uh, mu, logvar, C)
        elbo = log_r - log_qa
        terms = {"log_r": float(log_r.detach().mean()), "entropy": float(-log_qa.detach().mean())}
        if self.beta is not None:
            sig = self.cfg.noise_max * torch.rand(B, 1, generator=gen)
            u_in = u + sig * torch.randn(B, n, generator=gen)
            m, lv, L = self.posterior(x.detach(), u_in, P[:, self.nz :])
            log_qb = lowrank_logpdf(self.to_p(P)[:, : self.nz], m, lv, L)
            elbo = elbo + log_qb
            terms["log_qb"] = float(log_qb.detach().mean())
        if data is not None:
            xo, yo, sy = data
            mo, lvo, Co = self.alpha(self.to_s(xo), self.to_p(P))
            Bo, Do = self.hard_bc(xo, g0, g1)
            var = Do**2 * (torch.exp(lvo) + (Co * Co).sum(-1)) + sy**2
            ll = -0.5 * (((yo - Bo - Do * mo) ** 2) / var + torch.log(var) + LOG2PI).sum(-1)
            elbo = elbo + n_data_scale * ll
            terms["log_data"] = float(ll.detach().mean())
        terms["residual_rms"] = float(torch.sqrt((r.detach() ** 2).mean()))
        return elbo, terms


# --------------------------------------------------------------------------------------------
# training loop and checkpoints


def train(
    model: RGNP,
    *,
    steps: int,
    batch: int = 50,
    lr: float = 1e-3,
    seed: int = 0,
    start: int = 0,
    opt_state: dict | None = None,
    gen_state: torch.Tensor | None = None,
    data: Callable[[torch.Tensor, torch.Generator], tuple] | None = None,
    fixed_params: torch.Tensor | None = None,
    progress: Any = None,
    checkpoint: Callable[[int, dict, torch.Tensor], None] | None = None,
    checkpoint_every: int = 0,
    time_limit: float = 0.0,
    lr_final: float | None = None,
    lr_warmup: int = 0,
    lr_origin: tuple[int, float] | None = None,
) -> dict[str, Any]:
    """Maximise the mean ELBO with Adam on fresh grids every step.

    The learning rate is constant (``lr_final=None``) or decays geometrically,
    lr(φ) = lr · (lr_final / lr)^φ, with φ ∈ [0, 1] the fraction of the run done: the larger of
    the step fraction and, under ``time_limit``, the wall-time fraction, so that the decay ends
    at ``lr_final`` whichever budget runs out first. ``lr_warmup`` > 0 ramps it up linearly over
    that many first steps: a fresh Adam's first updates have size ≈ lr in every weight whatever
    the gradient's scale, which knocks a trained network far off when training continues from
    its weights with a new optimiser. ``lr_origin = (step0, seconds)`` says where the schedule
    began when a run is resumed: the step it started at and the training seconds it has already
    used, so a resume continues the decay and the warm-up instead of restarting them (default:
    this call's ``start``, no seconds used).

    ``fixed_params`` (1, p) trains on one parameter value (a single PDE); ``data(P, gen)`` returns
    the data term's (x_obs, y_obs, σ_y, scale). ``progress(step, total, **metrics)`` is called once
    per step and its ``cancelled`` flag stops the loop. Resumes from ``start`` with the saved
    optimiser and generator states. Returns the history and the last step.
    """
    gen = torch.Generator().manual_seed(int(seed))
    if gen_state is not None:
        gen.set_state(gen_state)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    hist: dict[str, list[float]] = {"step": [], "loss": [], "residual_rms": [], "time": []}
    t0 = time.perf_counter()
    step = start
    status = "max_iter"
    n = model.cfg.n_points
    step0, used = (start, 0.0) if lr_origin is None else (int(lr_origin[0]), float(lr_origin[1]))
    for step in range(start + 1, steps + 1):
        if lr_final is not None or lr_warmup:
            phi = (step - 1 - step0) / max(1, steps - step0)
            if time_limit:
                phi = max(phi, (used + time.perf_counter() - t0) / (used + time_limit))
            lr_now = lr if lr_final is None else lr * (lr_final / lr) ** min(1.0, phi)
            if step - step0 <= lr_warmup:
                lr_now *= (step - step0) / (lr_warmup + 1)
            for g in opt.param_groups:
                g["lr"] = lr_now
        P = fixed_params.expand(batch, -1) if fixed_params is not None else None
        if P is None:
            P = model.sample_params(batch, gen)
        x = model.sample_points(batch, n, gen)
        dterm = None
        scale = 1.0
        if data is not None:
            xo, yo, sy, scale = data(P, gen)
            dterm = (xo, yo, sy)
        elbo, terms = model.elbo(P, x, gen, dterm, scale)
        loss = -elbo.mean() / n
        if not torch.isfinite(loss):
            status = "failed"
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lv = float(loss.detach())
        if step % 10 == 0 or step == steps or step == start + 1:
            hist["step"].append(step)
            hist["loss"].append(lv)
            hist["residual_rms"].append(terms["residual_rms"])
            hist["time"].append(time.perf_counter() - t0)
        if progress is not None:
            progress(step, steps, loss=lv, residual_rms=terms["residual_rms"])
        if checkpoint is not None and checkpoint_every and step % checkpoint_every == 0:
            checkpoint(step, opt.state_dict(), gen.get_state())
        if progress is not None and getattr(progress, "cancelled", False):
            status = "cancelled"
            break
        if time_limit and time.perf_counter() - t0 >= time_limit:
            status = "time_limit"
            break
    return {
        "history": hist,
        "step": step,
        "status": status,
        "opt_state": opt.state_dict(),
        "gen_state": gen.get_state(),
        "wall_s": time.perf_counter() - t0,
    }


def save(path: Path, model: RGNP, extra: dict | None = None) -> str:
    """Write the weights (tensors only, ``weights_only`` loadable) and return their sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "family": json.dumps(model.fam.to_json()),
        "config": json.dumps(asdict(model.cfg)),
        "calibration": json.dumps({"u": model.std_scale_u, "z": model.std_scale_z}),
        **(extra or {}),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(path: Path) -> tuple[RGNP, dict]:
    """Read a checkpoint written by :func:`save` (never unpickles: ``weights_only=True``)."""
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    fam = Family.from_json(json.loads(blob["family"]))
    cfg = Config(**json.loads(blob["config"]))
    model = RGNP(fam, cfg, seed=0)
    model.load_state_dict(blob["state"])
    cal = json.loads(blob.get("calibration", "{}"))
    model.std_scale_u, model.std_scale_z = float(cal.get("u", 1.0)), float(cal.get("z", 1.0))
    model.eval()
    return model, blob


# --------------------------------------------------------------------------------------------
# evaluation helpers shared by the solvers, the training command and the benchmark


def kernel_to_grid(xo: np.ndarray, yo: np.ndarray, xg: np.ndarray, ls: float) -> np.ndarray:
    """Nadaraya–Watson (EQ kernel, length-scale ls) of scattered values onto grid points."""
    k = np.exp(-0.5 * (xg[:, None] - xo[None, :]) ** 2 / ls**2)
    return (k @ yo) / (k.sum(1) + 1e-12)


def inverse_query(
    model: RGNP, x_obs: np.ndarray, y_obs: np.ndarray, W: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """q(z | observations, w): posterior mean (n_z,) and covariance (n_z, n_z), physical units.

    A fixed-grid model (``cfg.grid == "fixed"``) sees the observations kernel-interpolated onto
    its own grid first, as the spec's PDDLVM baseline does.
    """
    xo = np.asarray(x_obs, float).ravel()
    yo = np.asarray(y_obs, float).ravel()
    if model.cfg.grid == "fixed":
        n = model.cfg.n_points
        xg = np.linspace(model.lo, model.hi, n + 2)[1:-1]
        yo = kernel_to_grid(xo, yo, xg, (model.hi - model.lo) / (n + 1))
        xo = xg
    with torch.no_grad():
        m, c = model.posterior_physical(
            torch.tensor(xo, dtype=torch.float32)[None],
            torch.tensor(yo, dtype=torch.float32)[None],
            torch.tensor(np.atleast_1d(W), dtype=torch.float32).reshape(1, -1),
        )
    return m[0].double().numpy(), c[0].double().numpy()


def reference_fields(fam: Family, P: np.ndarray, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Reference solutions on n + 1 nodes for each parameter row (the spec's 201-node FD)."""
    from workbench.physics.pde.reference import solve_reference
    from workbench.problems import PDEProblem

    out = []
    for row in P:
        coeffs = {**fam.fixed, **{k: float(v) for k, v in zip(fam.names, row, strict=True)}}
        prob = PDEProblem(
            name="rgnp reference",
            operator=fam.operator,
            box=fam.box,
            variables=("x",),
            coefficients=coeffs,
            source=fam.source,
            boundary=fam.boundary,
            n_col=(n + 1,),
        )
        ref = solve_reference(prob, n=n)
        out.append(ref.u)
    x = np.linspace(fam.box[0][0], fam.box[0][1], n + 1)
    return x, np.asarray(out)


def forward_metrics(model: RGNP, P: np.ndarray, x: np.ndarray, U: np.ndarray) -> dict[str, Any]:
    """NSE_u = ‖μ − u‖² / ‖u‖² per draw, and the ±2σ coverage, on the reference grid."""
    with torch.no_grad():
        X = torch.tensor(np.broadcast_to(x, U.shape).copy(), dtype=torch.float32)
        mean, std, _ = model.field(X, torch.tensor(P, dtype=torch.float32))
    mean, std = mean.double().numpy(), std.double().numpy()
    nse = ((mean - U) ** 2).sum(1) / (U**2).sum(1)
    inside = np.abs(mean - U)[:, 1:-1] <= 2 * std[:, 1:-1]  # the ends are exact by construction
    return {"nse_u": nse, "coverage_u": float(inside.mean()), "mean": mean, "std": std}


def inverse_metrics(
    model: RGNP,
    P: np.ndarray,
    x: np.ndarray,
    U: np.ndarray,
    rng,
    n_obs: int = 30,
    sigma_y: float = 0.05,
) -> dict[str, Any]:
    """NSE_z = ‖m − z‖² / ‖z‖² per draw and |m − z| / sd from n_obs random points with noise σ_y."""
    nz = model.nz
    nse, ratio = [], []
    for row, u in zip(P, U, strict=True):
        xo = rng.uniform(x[0], x[-1], n_obs)
        yo = np.interp(xo, x, u) + sigma_y * rng.standard_normal(n_obs)
        m, c = inverse_query(model, xo, yo, row[nz:])
        z = row[:nz]
        nse.append(float(((m - z) ** 2).sum() / (z**2).sum()))
        ratio.append(np.abs(m - z) / np.sqrt(np.diag(c)))
    return {"nse_z": np.array(nse), "ratio_z": np.array(ratio)}


def calibrate(model: RGNP, P: np.ndarray, x: np.ndarray, U: np.ndarray, rng) -> dict[str, float]:
    """Temperature scaling on validation draws: the factors s_u, s_z that make ±2 s σ cover 95 %
    of the validation errors (interior nodes for u; 30 noisy random points for z). Sets them on
    the model and returns them with the raw (s = 1) coverages."""
    model.std_scale_u = model.std_scale_z = 1.0
    fm = forward_metrics(model, P, x, U)
    r_u = np.abs(fm["mean"] - U)[:, 1:-1] / fm["std"][:, 1:-1]  # the ends are exact
    im = inverse_metrics(model, P, x, U, rng)
    s_u = float(np.quantile(r_u, 0.95) / 2)
    s_z = float(np.quantile(im["ratio_z"], 0.95) / 2)
    model.std_scale_u, model.std_scale_z = s_u, s_z
    return {
        "std_scale_u": s_u,
        "std_scale_z": s_z,
        "raw_coverage_u": float(np.mean(r_u <= 2)),
        "raw_coverage_z": float(np.mean(im["ratio_z"] <= 2)),
        "nse_z_median_noisy": float(np.median(im["nse_z"])),
    }
