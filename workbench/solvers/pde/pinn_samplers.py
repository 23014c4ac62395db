"""One sampler interface for PINN collocation (spec pde.md §4.2): stages k = 1..K, the network
trains n_θ steps on S, then the sampler updates S.

| sampler | update between stages |
|---|---|
| ``grid`` | the problem's equispaced nodes, fixed |
| ``uniform`` | N pseudo-random uniform points, fixed |
| ``resample`` | N fresh pseudo-random uniform points every stage (never a repeated QMC set) |
| ``rar`` | greedy RAR (Lu et al., SIAM Rev. 2021): |r| on M uniform candidates, the top m added |
| ``rad`` | RAD (Wu et al., CMAME 2023): all N redrawn from M candidates with probability ∝ |r|^k / E|r|^k + c |
| ``aas`` | adversarial adaptive sampling (Tang et al., ICLR 2024): a normalising flow p_α on the box is trained to maximise E_p[r²] under a Sobolev penalty, then N fresh samples are drawn from it (a fraction ζ uniform) |

A sampler sees the problem only through :class:`Context`: the box, the seeded generators and a
callable that returns the squared residual at given points with the current network.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Context:
    """What a sampler may use: the box, seeded randomness and the current residual."""

    box: tuple
    rng: np.random.Generator
    gen: torch.Generator
    residual2: Callable[[np.ndarray], np.ndarray]  # r²(x) at (n, d) points, current network
    dtype: torch.dtype = torch.float32
    device: str = "cpu"
    info: dict = field(default_factory=dict)  # per-stage diagnostics the sampler reports

    @property
    def dim(self) -> int:
        return len(self.box)

    def uniform(self, n: int) -> np.ndarray:
        lo = np.array([b[0] for b in self.box], float)
        hi = np.array([b[1] for b in self.box], float)
        return lo + (hi - lo) * self.rng.random((n, self.dim))


class Sampler:
    """Base: fixed points. ``init`` gives S before stage 1, ``update`` after each stage."""

    name = "uniform"
    adaptive = False

    def __init__(self, n: int) -> None:
        self.n = int(n)

    def init(self, ctx: Context) -> np.ndarray:
        return ctx.uniform(self.n)

    def update(self, ctx: Context, stage: int, X: np.ndarray) -> np.ndarray:
        return X


class GridSampler(Sampler):
    name = "grid"

    def __init__(self, points: np.ndarray) -> None:
        super().__init__(len(points))
        self.points = points

    def init(self, ctx: Context) -> np.ndarray:
        return self.points


class ResampleSampler(Sampler):
    name = "resample"

    def update(self, ctx: Context, stage: int, X: np.ndarray) -> np.ndarray:
        return ctx.uniform(self.n)


class RARSampler(Sampler):
    """Greedy residual-based adaptive refinement: S ← S ∪ top-m of |r| over M candidates."""

    name = "rar"
    adaptive = True

    def __init__(self, n: int, n_candidates: int, n_add: int) -> None:
        super().__init__(n)
        self.m_cand, self.n_add = int(n_candidates), int(n_add)

    def update(self, ctx: Context, stage: int, X: np.ndarray) -> np.ndarray:
        cand = ctx.uniform(self.m_cand)
        r2 = ctx.residual2(cand)
        top = np.argsort(-r2, kind="stable")[: self.n_add]
        ctx.info["rar_max_r2"] = float(r2[top[0]])
        return np.concatenate([X, cand[top]])


class RADSampler(Sampler):
    """Residual-based adaptive distribution: p(x) ∝ |r|^k / E|r|^k + c over M candidates."""

    name = "rad"
    adaptive = True

    def __init__(self, n: int, n_candidates: int, k: float, c: float) -> None:
        super().__init__(n)
        self.m_cand, self.k, self.c = int(n_candidates), float(k), float(c)

    def update(self, ctx: Context, stage: int, X: np.ndarray) -> np.ndarray:
        cand = ctx.uniform(self.m_cand)
        a = np.abs(ctx.residual2(cand)) ** (self.k / 2)
        p = a / max(a.mean(), 1e-300) + self.c
        p /= p.sum()
        idx = ctx.rng.choice(len(cand), size=min(self.n, len(cand)), replace=False, p=p)
        return cand[idx]


class AASSampler(Sampler):
    """Adversarial adaptive sampling with a normalising flow on the box.

    Max step (n_α Adam steps on the flow parameters α, samples detached):

        ĝ = E_{x~p_α}[(r²(x)/E_p r² − 1) ∇_α log p_α(x)]                        (score function,
                                                                                 baseline E_p r²)
            − β ∇_α |Ω| mean_{u~U(Ω)}[p_α(u)² |∇_u log p_α(u)|²]                 (Sobolev ∫|∇p|²)

    then S ← N fresh samples of p_α, of which a fraction ζ are uniform. The expectations over
    p_α are estimated by defensive importance sampling from q = ½p_α + ½U (self-normalised
    weights p_α/q), so that a residual peak the flow has not reached yet still pulls it; the
    Sobolev term as E_q[p²|∇log p|²/q] on the same batch.

    Two residual peaks. E_p[r²] is linear in p, so for two equal peaks every split of the mass
    between them scores the same and only the penalty prefers the even split (it halves
    ∫|∇p|²). The couplings move mass by a smooth transport of one Gaussian, which has no force
    across the empty region between the peaks: trained alone against a fixed two-bump r², a
    one-Gaussian flow put 21–31 % of its samples near one bump and 0.1–3 % near the other after
    5 stages, at every β tried. Hence (``n_base``) a Gaussian-mixture base, whose weights move
    mass between far-apart regions directly, and a continuation in β within each stage
    (β_start → β, geometric). The penalty also sets how tight p is: for a bump much narrower
    than p, maximising log E_p[r²] − β∫|∇p|² over Gaussian blobs gives a blob std
    s ≈ (β/4π)^¼, so β = 1e-3 (s ≈ 0.09) caps the share of the samples within 0.1 of each of two
    bumps at ~15 % with ζ = 0.25, and β = 3e-4 (s ≈ 0.07) at ~24 %. Defaults (β = 3e-4,
    β_start = 1e-2, 16 components, lr 5e-3) chosen on two validation two-bump densities
    (centres (−0.3, 0.6), (0.6, −0.2), width 0.04; (0.7, 0.7), (−0.7, 0), width 0.025), never
    on the benchmark problems.
    """

    name = "aas"
    adaptive = True

    def __init__(
        self,
        n: int,
        n_alpha: int = 200,
        lr_alpha: float = 5e-3,
        beta: float = 3e-4,
        zeta: float = 0.25,
        batch: int = 1000,
        n_layers: int = 6,
        width: int = 32,
        beta_start: float | None = 1e-2,
        n_base: int = 16,
        keep: float = 0.0,
        average: bool = False,
    ) -> None:
        super().__init__(n)
        self.keep = float(keep)
        self.average = bool(average)
        self.past: list = []  # the flow after each stage (``average``)
        self.n_alpha, self.lr_alpha, self.beta, self.zeta = n_alpha, lr_alpha, beta, zeta
        self.beta_start = beta if beta_start is None else float(beta_start)
        self.n_base = int(n_base)
        self.batch, self.n_layers, self.width = batch, n_layers, width
        self.flow = None
        self.opt = None

    def _ensure(self, ctx: Context) -> None:
        if self.flow is None:
            from workbench.nets.pde_flow import BoxFlow

            self.flow = BoxFlow(
                ctx.box, self.n_layers, self.width, ctx.gen, dtype=torch.float32, n_base=self.n_base
            )
            self.opt = torch.optim.Adam(self.flow.parameters(), lr=self.lr_alpha)
            vol = float(np.prod([hi - lo for lo, hi in ctx.box]))
            self.volume = vol

    def train_flow(self, ctx: Context) -> dict[str, float]:
        """n_α max steps of the flow against the current residual."""
        self._ensure(ctx)
        flow, opt = self.flow, self.opt
        t0 = time.perf_counter()
        obj = pen = 0.0
        log_u = -np.log(self.volume)
        for it in range(self.n_alpha):
            # continuation in β: each stage starts smooth (β_start) and ends at β, geometric in
            # between, so that mass spread over every high-residual region is then pulled into
            # each of them (a flow trained at the final β from a one-blob state stays there)
            frac = it / max(1, self.n_alpha - 1)
            beta = self.beta_start * (self.beta / self.beta_start) ** frac if self.beta > 0 else 0.0
            # defensive importance sampling: half the batch from p_α, half uniform, so that a
            # residual peak the flow has not found yet still enters the gradient (a pure
            # score-function batch from a collapsed p_α never sees it)
            nb = self.batch // 2
            x = torch.cat(
                [
                    flow.sample(self.batch - nb, ctx.gen),
                    torch.as_tensor(ctx.uniform(nb), dtype=torch.float32),
                ]
            )
            r2 = torch.as_tensor(ctx.residual2(x.double().numpy()), dtype=torch.float32)
            x.requires_grad_(True)
            logp = flow.log_prob(x)
            with torch.no_grad():  # w_i = p/q with q = ½p + ½U, self-normalised
                lq = torch.logaddexp(logp, torch.full_like(logp, log_u)) - np.log(2.0)
                w = torch.exp(logp - lq)
                w = w / w.sum()
                mean_r2 = (w * r2).sum().clamp_min(1e-30)
                adv = w * (r2 / mean_r2 - 1.0)  # baseline E_p[r²]: variance reduction
                inv_q = torch.exp(-lq)
            # ∫|∇p|² = E_q[p²|∇log p|² / q] on the same batch (integrand/q ≤ 2p|∇log p|²): the
            # former estimate over a separate uniform batch almost never landed in a concentrated
            # p (a disk of radius 0.05 holds ~1 of 500 uniform points), so its gradient was
            # mostly zero and sometimes huge; this one also saves that batch's flow pass
            gl = torch.autograd.grad(logp.sum(), x, create_graph=True)[0]
            sob = (torch.exp(2 * logp) * (gl * gl).sum(1) * inv_q).mean()
            loss = -(adv * logp).sum() + beta * sob
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            obj, pen = float(mean_r2), float(sob.detach())
        return {"flow_s": time.perf_counter() - t0, "flow_mean_r2": obj, "flow_sobolev": pen}

    def density(self, axes: list[np.ndarray]) -> np.ndarray:
        """The density the flow samples come from on the tensor grid of ``axes`` (for the
        views): p_α, or with ``average`` the mean of the stages' flows."""
        mesh = torch.as_tensor(
            np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes)),
            dtype=torch.float32,
        )
        flows = self.past if self.average and self.past else [self.flow]
        with torch.no_grad():
            p = sum(np.exp(f.log_prob(mesh).double().numpy()) for f in flows) / len(flows)
        return p.reshape([len(a) for a in axes])

    def _flow_samples(self, ctx: Context, n: int) -> np.ndarray:
        if not self.average:
            return self.flow.sample(n, ctx.gen).double().numpy()
        # fictitious play: n fresh samples of the mixture of every stage's flow, equal weights
        # (as many from each, the remainder from the newest)
        self.past.append(copy.deepcopy(self.flow))
        k = len(self.past)
        counts = [n // k] * k
        counts[-1] += n - sum(counts)
        with torch.no_grad():
            return np.concatenate(
                [
                    f.sample(c, ctx.gen).double().numpy()
                    for f, c in zip(self.past, counts, strict=True)
                    if c
                ]
            )

    def update(self, ctx: Context, stage: int, X: np.ndarray) -> np.ndarray:
        ctx.info.update(self.train_flow(ctx))
        n_u = int(round(self.zeta * self.n))
        # a fraction ``keep`` of the previous set survives (a random subset; the spec's
        # "accumulate" option at a fixed size N): a region the flow leaves once the network
        # has fitted it keeps points for a few stages (the share decays as keep^stages)
        n_k = min(len(X), int(round(self.keep * self.n)))
        parts = [self._flow_samples(ctx, self.n - n_u - n_k)]
        if n_u:
            parts.append(ctx.uniform(n_u))
        if n_k:
            parts.append(X[ctx.rng.choice(len(X), size=n_k, replace=False)])
        return np.concatenate(parts)
