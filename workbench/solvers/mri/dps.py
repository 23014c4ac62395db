"""Diffusion Posterior Sampling (Chung, Kim, McCann, Klasky & Ye, ICLR 2023): the baseline of DDS.

Same prior, time grid and re-noising as :mod:`.dds`, but data consistency by a gradient step
**through the network**. For each pair (t, s), with x_t tracked by autograd:

1. ε̂ = ε_θ(x_t, t), x̂₀ = (x_t − √(1 − ᾱ_t) ε̂)/√ᾱ_t;
2. the data misfit of the Tweedie estimate, r = ‖A x̂₀(x_t) − y‖ (per sample);
3. x_s = √ᾱ_s x̂₀ + √(1 − ᾱ_s)(η z + √(1 − η²) ε̂) − ζ ∇_{x_t} r.

The step uses the gradient of the norm (not its square), as the reference implementation does, so
the step size adapts to the misfit (ζ_i = ζ/‖y − A x̂₀‖ on the squared norm in the paper's
notation). Each step costs a backward pass through the U-Net, which is what DDS avoids. The
estimate after step k is x̂₀ − ζ∇r (at the last pair, (0, −1), this is x_{−1} itself).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.registry import SolverSpec, param
from workbench.solvers.mri import diffusion as D
from workbench.solvers.mri.dds import batched_operator


@dataclass(frozen=True)
class Params:
    checkpoint: str = param(
        "diffusion_prior",
        "ε-U-Net prior: the shipped one or a .pt with a .json manifest beside it",
        files="workbench.solvers.mri.diffusion:checkpoint_options",
    )
    nfe: int = param(50, "sampling steps = network evaluations (NFE)", min=2, max=1000)
    zeta: float = param(
        1.0, "step size ζ on ∇‖A x̂₀ − y‖ (data are scaled to max|A^H y| = 1)", min=0.0, max=1e3
    )
    eta: float = param(0.85, "share of fresh noise when re-noising (0: DDIM)", min=0.0, max=1.0)
    n_samples: int = param(
        1, "posterior samples (≥ 2 gives an uncertainty map: the pixel-wise std)", min=1, max=64
    )
    max_iter: int = param(
        1000, "stop after this many NFE (≥ nfe runs the whole schedule)", min=1, max=1000
    )
    seed: int = param(0, "seed of the initial noise and the re-noising")
    device: str = param("auto", "compute device (auto, cpu, cuda)", advanced=True)


def sample(
    net,
    A,
    y: torch.Tensor,
    *,
    nfe: int,
    zeta: float,
    eta: float,
    seeds: list[int],
    max_iter: int | None = None,
    on_step=None,
) -> tuple[torch.Tensor, int]:
    """Run DPS for ``len(seeds)`` samples of every slice of ``y`` (already scaled); see
    :func:`workbench.solvers.mri.dds.sample` for the arguments and the return value."""
    from workbench.nets.mri_diffusion import N_TRAIN_STEPS, alpha_bar, r2c

    n = y.shape[0]
    S = len(seeds)
    Ab = batched_operator(A, S)
    yb = y.repeat(S, 1, 1, 1)
    ab = alpha_bar(N_TRAIN_STEPS)
    pairs = D.time_pairs(nfe, N_TRAIN_STEPS)
    steps = len(pairs) if max_iter is None else min(len(pairs), max_iter)
    h, w = y.shape[-2:]
    dev = y.device
    x = D.noise((2, h, w), seeds, n, 0).to(dev)
    est = r2c(x)
    sup = D.support_mask(A, S)
    sup2 = None if sup is None else sup[:, None].to(x.dtype)
    k = 0
    for k, (t, s) in enumerate(pairs[:steps], start=1):
        a_t, a_s = D.abar(ab, t), D.abar(ab, s)
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            eps = net(x, torch.full((x.shape[0],), t, device=dev, dtype=torch.long))
            x0 = D.tweedie(x, eps, a_t)
            misfit = torch.linalg.vector_norm(
                (Ab.forward(r2c(x0).to(y.dtype)) - yb).flatten(1), dim=1
            )
            (grad,) = torch.autograd.grad(misfit.sum(), x)
        with torch.no_grad():
            z = D.noise((2, h, w), seeds, n, k).to(dev) if s >= 0 else torch.zeros_like(x)
            if sup2 is not None:  # no data outside the maps' support: x = 0 there (as DDS)
                x0 = x0 * sup2
            est = r2c(x0 - zeta * grad).to(y.dtype)
            if sup is not None:
                est = est * sup
            x = D.renoise(x0, eps, a_s, eta, z) - zeta * grad
        if on_step is not None and on_step(k, est):
            break
    return est.detach(), k


def solve(problem, params: Params | None = None, progress=None):
    params = params or Params()

    def draw(net, st, seeds, on_step):
        return sample(
            net,
            st.A,
            st.y,
            nfe=params.nfe,
            zeta=params.zeta,
            eta=params.eta,
            seeds=seeds,
            max_iter=params.max_iter,
            on_step=on_step,
        )

    return D.run(problem, params, progress, draw)


SPEC = SolverSpec(
    name="dps",
    domain="mri",
    title="Diffusion Posterior Sampling",
    Params=Params,
    solve=solve,
    description=(
        "Diffusion sampling with the same ε-U-Net prior as DDS, data consistency by a gradient step on "
        "‖A x̂₀(x_t) − y‖ taken through the network (a backward pass per step): the baseline DDS is measured "
        "against."
    ),
    reference="Chung, Kim, McCann, Klasky & Ye, ICLR 2023, arXiv:2209.14687",
    paper=True,
)
