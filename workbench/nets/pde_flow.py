"""A normalising flow on a box for adaptive collocation (AAS; Tang, Zhai, Wan & Yang, ICLR 2024).

z ~ N(0, I_d)  →  y = T_L ∘ … ∘ T_1(z)  (affine coupling layers, RealNVP, Dinh et al. 2017)
               →  x = lo + (hi − lo)·σ(y)   (elementwise logistic map onto the box)

so every sample lies in Ω = [lo, hi] and the density integrates to one on Ω:

    log p(x) = log N(z; 0, I) − Σ_l log|det ∂T_l/∂z_l| − Σ_j log[(hi_j − lo_j) σ′(y_j)].

One coupling layer with a binary mask m keeps z_m and maps the other coordinates by
z ↦ z·exp(s(z_m)) + t(z_m), with s = tanh-bounded; its log-determinant is Σ s. In 1-D there is
nothing to condition on, so the flow there is a K-component Gaussian mixture in the logit
variable y (same logistic map, same interface, exact sampling and density).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _mlp(n_in: int, width: int, n_out: int, gen: torch.Generator, dtype) -> nn.Sequential:
    layers = []
    sizes = [n_in, width, width, n_out]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        lin = nn.Linear(a, b, dtype=dtype)
        bound = math.sqrt(6.0 / (a + b))
        with torch.no_grad():
            lin.weight.uniform_(-bound, bound, generator=gen)
            lin.bias.zero_()
            if i == len(sizes) - 2:  # start at the identity map: the flow starts near uniform-ish
                lin.weight.mul_(1e-2)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class BoxFlow(nn.Module):
    """Density p_α on a box with exact sampling and log-density.

    Parameters
    ----------
    box : sequence of (lo, hi)
        The domain Ω; samples never leave it.
    n_layers, width : int
        Affine coupling layers (alternating masks) and the width of their conditioners.
    generator : torch.Generator
        Initialisation randomness (the global RNG is never used).
    n_mix : int
        Components of the 1-D mixture (used only when the box is 1-D).
    """

    def __init__(
        self,
        box,
        n_layers: int = 6,
        width: int = 32,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        n_mix: int = 8,
        n_base: int = 0,
    ) -> None:
        super().__init__()
        gen = generator or torch.Generator().manual_seed(0)
        self.n_base = int(n_base) if len(box) > 1 else 0
        self.d = len(box)
        self.register_buffer("lo", torch.tensor([b[0] for b in box], dtype=dtype))
        self.register_buffer("hi", torch.tensor([b[1] for b in box], dtype=dtype))
        # the logistic map of N(0, 1.6²) is close to uniform on the box: start from there
        self.y_scale = 1.6
        if self.d == 1:
            self.mix_logit = nn.Parameter(torch.zeros(n_mix, dtype=dtype))
            self.mix_mu = nn.Parameter(torch.linspace(-2.0, 2.0, n_mix, dtype=dtype))
            self.mix_logsig = nn.Parameter(torch.full((n_mix,), math.log(0.8), dtype=dtype))
            self.nets = nn.ModuleList()
            self.masks: list[torch.Tensor] = []
        else:
            self.nets = nn.ModuleList(
                _mlp(self.d, width, 2 * self.d, gen, dtype) for _ in range(n_layers)
            )
            masks = []
            for i in range(n_layers):
                m = torch.zeros(self.d, dtype=dtype)
                m[i % self.d :: 2] = 1.0  # alternate which half conditions the other
                masks.append(m)
            self.register_buffer(
                "mask", torch.stack(masks) if masks else torch.zeros(0, self.d, dtype=dtype)
            )
            if self.n_base:
                # a mixture base: its weights move mass between far-apart regions directly,
                # which the couplings (a smooth transport of one Gaussian) cannot do: trained
                # on r², a one-Gaussian flow that reaches one of two equal bumps stays there
                K = self.n_base
                self.base_logit = nn.Parameter(torch.zeros(K, dtype=dtype))
                mu = torch.randn(K, self.d, generator=gen, dtype=torch.float64).to(dtype)
                self.base_mu = nn.Parameter(mu)
                self.base_logsig = nn.Parameter(torch.full((K, self.d), math.log(0.6), dtype=dtype))

    # --- the coupling stack on R^d -------------------------------------------------------
    def _coupling(
        self, i: int, z: torch.Tensor, inverse: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.mask[i]
        st = self.nets[i](z * m)
        s = torch.tanh(st[:, : self.d]) * (1 - m)
        t = st[:, self.d :] * (1 - m)
        if inverse:
            return (z - t) * torch.exp(-s), -s.sum(1)
        return z * torch.exp(s) + t, s.sum(1)

    def _to_box(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x = lo + (hi − lo)σ(y) and log|det ∂x/∂y|."""
        x = self.lo + (self.hi - self.lo) * torch.sigmoid(y)
        logdet = (
            torch.log(self.hi - self.lo)
            + nn.functional.logsigmoid(y)
            + nn.functional.logsigmoid(-y)
        ).sum(1)
        return x, logdet

    def _from_box(self, x: torch.Tensor) -> torch.Tensor:
        u = ((x - self.lo) / (self.hi - self.lo)).clamp(1e-7, 1 - 1e-7)
        return torch.log(u) - torch.log1p(-u)

    def forward_map(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x = T(z) and log|det ∂x/∂z| (coupling flows only, d ≥ 2)."""
        y = z * self.y_scale
        logdet = torch.full(
            (len(z),), self.d * math.log(self.y_scale), dtype=z.dtype, device=z.device
        )
        for i in range(len(self.nets)):
            y, ld = self._coupling(i, y, inverse=False)
            logdet = logdet + ld
        x, ld = self._to_box(y)
        return x, logdet + ld

    def inverse_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z = T⁻¹(x) and log|det ∂z/∂x| (coupling flows only, d ≥ 2)."""
        y = self._from_box(x)
        _, ld_box = self._to_box(y)
        logdet = -ld_box
        for i in reversed(range(len(self.nets))):
            y, ld = self._coupling(i, y, inverse=True)
            logdet = logdet + ld
        return y / self.y_scale, logdet - self.d * math.log(self.y_scale)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p_α(x) for x inside the box, shape (n,)."""
        if self.d == 1:
            y = self._from_box(x)
            _, ld_box = self._to_box(y)
            logw = torch.log_softmax(self.mix_logit, 0)
            sig = torch.exp(self.mix_logsig)
            comp = (
                -0.5 * ((y - self.mix_mu) / sig) ** 2
                - self.mix_logsig
                - 0.5 * math.log(2 * math.pi)
            )
            return torch.logsumexp(logw + comp, 1) - ld_box
        z, logdet = self.inverse_map(x)
        return self.base_log_prob(z) + logdet

    def base_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log of the base density at z: N(0, I), or Σ_k π_k N(μ_k, diag σ_k²) (``n_base``)."""
        if not self.n_base:
            return -0.5 * (z * z).sum(1) - 0.5 * self.d * math.log(2 * math.pi)
        e = (z[:, None, :] - self.base_mu) * torch.exp(-self.base_logsig)  # (n, K, d)
        comp = (
            -0.5 * (e * e).sum(2) - self.base_logsig.sum(1) - 0.5 * self.d * math.log(2 * math.pi)
        )
        return torch.logsumexp(torch.log_softmax(self.base_logit, 0) + comp, 1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n exact samples, detached (the score-function gradient needs no path through them)."""
        dt, dev = self.lo.dtype, self.lo.device
        if self.d == 1:
            w = torch.softmax(self.mix_logit, 0).cpu().double()
            k = torch.multinomial(w, n, replacement=True, generator=generator)
            eps = torch.randn(n, generator=generator, dtype=torch.float64).to(dt)
            y = self.mix_mu.detach().cpu()[k] + torch.exp(self.mix_logsig.detach().cpu())[k] * eps
            return self._to_box(y[:, None].to(dev))[0]
        if self.n_base:
            w = torch.softmax(self.base_logit.detach(), 0).cpu().double()
            k = torch.multinomial(w, n, replacement=True, generator=generator)
            eps = torch.randn(n, self.d, generator=generator, dtype=torch.float64).to(dt)
            mu, ls = self.base_mu.detach().cpu(), self.base_logsig.detach().cpu()
            z = (mu[k] + torch.exp(ls[k]) * eps).to(dev)
            return self.forward_map(z)[0]
        z = torch.randn(n, self.d, generator=generator, dtype=torch.float64).to(dt).to(dev)
        return self.forward_map(z)[0]
