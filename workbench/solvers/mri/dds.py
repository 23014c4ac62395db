"""Decomposed Diffusion Sampler (Chung, Lee & Ye, ICLR 2024): DDIM with Krylov data consistency.

For each pair (t, s) of the DDIM grid (:func:`.diffusion.time_pairs`, one network evaluation per
pair, from x_T ~ N(0, I)):

1. ε̂ = ε_θ(x_t, t);
2. Tweedie: x̂₀ = (x_t − √(1 − ᾱ_t) ε̂)/√ᾱ_t;
3. M conjugate-gradient steps on the data-consistency normal equations **started at x̂₀**:
   noiseless ``A^H A x = A^H y`` or noisy ``(I + γA^H A) x = x̂₀ + γA^H y``. The update stays in
   x̂₀ + K_M(A^H A, r₀), a subspace the paper argues stays on the clean-data manifold, so no
   gradient through the network is needed (the speed-up over DPS);
4. re-noise: x_s = √ᾱ_s x̂₀′ + √(1 − ᾱ_s)(η z + √(1 − η²) ε̂), z ~ N(0, I).

Where the coil maps vanish (ESPIRiT maps off the object) the model has no data and CG never
moves x, so x̂₀ is set to 0 there before step 3 (:func:`.diffusion.support_mask`), as the wavelet
and TV solvers do. The last pair is (0, −1) with ᾱ_{−1} = 1, so the sample is the last x̂₀′. The data are the
problem's measured (noisy) k-space scaled by s = max|A^H y|, which puts the image in the prior's
training range (max|x| ≈ 1). Several samples (``n_samples``, independent seeds) give the posterior
mean (the output) and the pixel-wise standard deviation of the magnitude (``extras["std"]``, an
uncertainty map). Progress is reported once per NFE with the current estimate as a preview; a run
cancelled at step k returns what ``max_iter = k`` returns (the x̂₀′ of step k).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.registry import SolverSpec, param
from workbench.solvers.mri import diffusion as D


@dataclass(frozen=True)
class Params:
    checkpoint: str = param(
        "diffusion_prior",
        "ε-U-Net prior: the shipped one or a .pt with a .json manifest beside it",
        files="workbench.solvers.mri.diffusion:checkpoint_options",
    )
    nfe: int = param(50, "sampling steps = network evaluations (NFE)", min=2, max=1000)
    cg_iter: int = param(5, "CG steps per NFE (few iterations regularise)", min=0, max=50)
    eta: float = param(0.85, "share of fresh noise when re-noising (0: DDIM)", min=0.0, max=1.0)
    dc: str = param(
        "noiseless",
        "data consistency: noiseless A^H A x = A^H y, or noisy (I + γA^H A) x = x̂₀ + γA^H y",
        choices=("noiseless", "noisy"),
    )
    gamma: float = param(10.0, "γ of the noisy form (data weight)", min=0.0, max=1e4, label="γ")
    n_samples: int = param(
        1, "posterior samples (≥ 2 gives an uncertainty map: the pixel-wise std)", min=1, max=64
    )
    max_iter: int = param(
        1000, "stop after this many NFE (≥ nfe runs the whole schedule)", min=1, max=1000
    )
    seed: int = param(0, "seed of the initial noise and the re-noising")
    device: str = param("auto", "compute device (auto, cpu, cuda)", advanced=True)


def batched_operator(A, n_samples: int):
    """A SENSE operator on ``n_samples`` stacked copies of the problem's slices."""
    from workbench.physics.mri.operators import SenseOperator

    if n_samples == 1:
        return A
    maps = A.maps.repeat(n_samples, 1, 1, 1)
    mask = A.mask.repeat(n_samples, 1, 1, 1) if A.mask.shape[0] > 1 else A.mask
    return SenseOperator(maps, mask)


def sample(
    net,
    A,
    y: torch.Tensor,
    *,
    nfe: int,
    cg_iter: int,
    eta: float,
    gamma: float | None,
    seeds: list[int],
    max_iter: int | None = None,
    on_step=None,
) -> tuple[torch.Tensor, int]:
    """Run DDS for ``len(seeds)`` samples of every slice of ``y`` (already scaled).

    Parameters
    ----------
    net : callable
        ε-predictor ``(B, 2, H, W), (B,) → (B, 2, H, W)``.
    A : SenseOperator
        The operator of the N slices of ``y``.
    y : Tensor (N, C, H, W)
        Masked, scaled k-space.
    gamma : float or None
        None for the noiseless form.
    on_step : callable, optional
        ``on_step(k, x0c)`` after step k with the current estimates ``(S·N, H, W)``; returning
        True stops.

    Returns
    -------
    (x, steps) : the complex estimates ``(S·N, H, W)`` (sample-major) and the steps taken.
    """
    from workbench.nets.mri_diffusion import N_TRAIN_STEPS, alpha_bar, c2r, r2c

    n = y.shape[0]
    S = len(seeds)
    Ab = batched_operator(A, S)
    aty = A.adjoint(y).repeat(S, 1, 1)
    ab = alpha_bar(N_TRAIN_STEPS)
    pairs = D.time_pairs(nfe, N_TRAIN_STEPS)
    steps = len(pairs) if max_iter is None else min(len(pairs), max_iter)
    h, w = y.shape[-2:]
    dev = y.device
    x = D.noise((2, h, w), seeds, n, 0).to(dev)
    x0c = r2c(x)
    sup = D.support_mask(A, S)
    k = 0
    with torch.no_grad():
        for k, (t, s) in enumerate(pairs[:steps], start=1):
            a_t, a_s = D.abar(ab, t), D.abar(ab, s)
            eps = net(x, torch.full((x.shape[0],), t, device=dev, dtype=torch.long))
            x0 = r2c(D.tweedie(x, eps, a_t)).to(y.dtype)
            if sup is not None:  # no data outside the maps' support: x = 0 there
                x0 = x0 * sup
            x0c = D.data_consistency(Ab, x0, aty, cg_iter, gamma)
            z = D.noise((2, h, w), seeds, n, k).to(dev) if s >= 0 else torch.zeros_like(x)
            x = D.renoise(c2r(x0c).to(x.dtype), eps, a_s, eta, z)
            if on_step is not None and on_step(k, x0c):
                break
    return x0c, k


def solve(problem, params: Params | None = None, progress=None):
    params = params or Params()

    def draw(net, st, seeds, on_step):
        return sample(
            net,
            st.A,
            st.y,
            nfe=params.nfe,
            cg_iter=params.cg_iter,
            eta=params.eta,
            gamma=None if params.dc == "noiseless" else params.gamma,
            seeds=seeds,
            max_iter=params.max_iter,
            on_step=on_step,
        )

    return D.run(problem, params, progress, draw)


SPEC = SolverSpec(
    name="dds",
    domain="mri",
    title="Decomposed Diffusion Sampler",
    Params=Params,
    solve=solve,
    description=(
        "Diffusion sampling (DDIM) with a learned ε-U-Net prior; after each network evaluation the Tweedie "
        "estimate is made data-consistent by a few conjugate-gradient steps started at it (a Krylov subspace), "
        "then re-noised. Several samples give the posterior mean and a pixel-wise standard deviation "
        "(uncertainty map). The shipped prior is a small validation model trained on a template and phantoms "
        "(workbench/weights/mri/diffusion_prior.json)."
    ),
    reference="Chung, Lee & Ye, ICLR 2024, arXiv:2303.05754",
    paper=True,
    train="workbench.train.mri_diffusion:main",
    train_name="diffusion_prior",
)
