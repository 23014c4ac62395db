"""What the diffusion samplers (DDS, DPS) share: the prior checkpoint, the DDIM time grid, the
re-noising step, data consistency by conjugate gradients, and the posterior summary.

Notation (``specs/mri.md`` §6): the VP schedule ᾱ_t (t = 0..999, ᾱ_{−1} := 1), an ε-predictor
ε_θ on 2-channel images, measurements ``y = A x + n`` scaled by s = max|A^H y| so that the image
has about the training range max|x| ≈ 1.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache

import numpy as np
import torch

from workbench.errors import InputError
from workbench.physics.mri.operators import cg_batch

WEIGHTS_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "weights", "mri"
)
SHIPPED = ("diffusion_prior",)


def checkpoint_options() -> list[str]:
    """The shipped prior and .pt files under WORKBENCH_HOME/mri/checkpoints."""
    from workbench.store import default_home

    own = sorted((default_home() / "mri" / "checkpoints").glob("*.pt"))
    return [*SHIPPED, *(str(p) for p in own)]


def checkpoint_path(name: str) -> str:
    return os.path.join(WEIGHTS_DIR, name + ".pt") if name in SHIPPED else name


@lru_cache(maxsize=4)
def load_prior(path: str, device: str = "cpu"):
    """The ε-U-Net of ``path`` (config from the ``.json`` beside it), float32, eval mode.

    Loaded with ``torch.load(weights_only=True)``; fp16-stored weights are cast to float32.
    """
    from workbench.nets.mri_diffusion import EpsUNet

    man_path = os.path.splitext(path)[0] + ".json"
    if not os.path.exists(path):
        raise InputError(
            f"diffusion prior not found: {path} (train one with `workbench train diffusion_prior`)"
        )
    if not os.path.exists(man_path):
        raise InputError(f"no manifest beside the checkpoint: {man_path} (it holds the config)")
    with open(man_path) as f:
        manifest = json.load(f)
    cfg = dict(manifest["config"])
    cfg["mult"] = tuple(cfg["mult"])
    net = EpsUNet(**cfg)
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        net.load_state_dict({k: v.float() for k, v in state.items()})
    except (RuntimeError, AttributeError) as e:
        raise InputError(
            f"checkpoint does not match its config: {str(e).splitlines()[0]}"
        ) from None
    net.eval().to(device)
    for p in net.parameters():
        p.requires_grad_(False)
    return net, manifest


def time_pairs(nfe: int, n_train: int = 1000) -> list[tuple[int, int]]:
    """The (t, s) pairs of the sampling loop, from noisy to clean.

    ``skip = n_train // nfe``; τ = (0, skip, …, (nfe−1)·skip) and τ_next = (−1, τ₀, …); the
    pairs are visited in reverse, so the last one is (0, −1), where ᾱ_{−1} = 1 collapses the
    re-noising and the step returns the data-consistent estimate itself. One NFE per pair.
    """
    skip = n_train // nfe
    tau = [i * skip for i in range(nfe)]
    nxt = [-1, *tau[:-1]]
    return list(zip(reversed(tau), reversed(nxt), strict=True))


def abar(ab: torch.Tensor, t: int) -> float:
    return 1.0 if t < 0 else float(ab[t])


def tweedie(x_t: torch.Tensor, eps: torch.Tensor, a_t: float) -> torch.Tensor:
    """x̂₀ = (x_t − √(1 − ᾱ_t) ε̂)/√ᾱ_t, the posterior mean E[x₀ | x_t] under the prior."""
    return (x_t - (1 - a_t) ** 0.5 * eps) / a_t**0.5


def renoise(
    x0: torch.Tensor, eps: torch.Tensor, a_s: float, eta: float, z: torch.Tensor
) -> torch.Tensor:
    """x_s = √ᾱ_s x̂₀′ + √(1 − ᾱ_s) (η z + √(1 − η²) ε̂).

    η is the share of fresh noise (η = 0: deterministic DDIM), as in the DDS reference code; it is
    not the η of the DDIM paper.
    """
    return a_s**0.5 * x0 + (1 - a_s) ** 0.5 * (eta * z + (1 - eta**2) ** 0.5 * eps)


def data_consistency(
    A, x0: torch.Tensor, aty: torch.Tensor, n_iter: int, gamma: float | None = None
) -> torch.Tensor:
    """M conjugate-gradient steps started at the Tweedie estimate x̂₀ (complex, ``(N, H, W)``).

    ``gamma=None`` (noiseless form): ``A^H A x = A^H y``; the few iterations from x̂₀ are the
    regulariser (the iterate stays in x̂₀ + a Krylov subspace). Otherwise (noisy form)
    ``(I + γ A^H A) x = x̂₀ + γ A^H y``, the minimiser of ½‖x − x̂₀‖² + (γ/2)‖A x − y‖². x̂₀ is
    complex before it enters the right-hand side (the reference code adds a 2-channel real x̂₀ to
    a complex A^H y, which gives x̂₀ + (1 + i)γA^H y). CG is per item of the batch.
    """
    if n_iter <= 0:
        return x0
    if gamma is None:
        return cg_batch(A.normal, aty, x0, n_iter)
    g = float(gamma)
    return cg_batch(lambda v: v + g * A.normal(v), x0 + g * aty, x0, n_iter)


def support_mask(A, n_samples: int = 1) -> torch.Tensor | None:
    """Pixels some coil sees (Σ_c |S_c|² > 0) for ``n_samples`` stacked copies, ``(S·N, H, W)``
    bool, or None when the maps cover every pixel.

    Outside it the SENSE model carries no data (ESPIRiT maps vanish off the object): CG never
    moves x there, so the prior's own guess would stay in the output (measured: 0.1–0.3 RMS error
    outside the support on the 4× corpus test slices, 12.6–20.0 dB PSNR at 20 NFE). The samplers keep x = 0
    there, as the wavelet and TV solvers do (:meth:`workbench.solvers.mri.common.Setup.support`);
    the training images have a zero background too.
    """
    sup = (A.maps.abs() ** 2).sum(-3) > 0
    return None if bool(sup.all()) else sup.repeat(n_samples, 1, 1)


def noise(shape, seeds: list[int], n_per: int, step: int, dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise for a batch of ``len(seeds)·n_per`` items: item block j from its own
    generator seeded by ``(seeds[j], step)``, so a sample's noise does not depend on how many
    other samples run beside it. Drawn on the CPU (the same numbers on every device)."""
    out = []
    for s in seeds:
        g = torch.Generator().manual_seed(
            int(np.random.SeedSequence([s, step]).generate_state(1)[0])
        )
        out.append(torch.randn((n_per, *shape), generator=g, dtype=dtype))
    return torch.cat(out, 0)


def summary(mags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and pixel-wise standard deviation of magnitude samples ``(S, N, h, w)``
    (ddof 1 when there are several samples; zeros for one)."""
    mean = mags.mean(0)
    std = mags.std(0, ddof=1) if len(mags) > 1 else np.zeros_like(mean)
    return mean.astype(np.float32), std.astype(np.float32)


def run(problem, params, progress, draw):
    """The solve both samplers share: load the prior, sample ``n_samples`` seeded chains through
    ``draw(net, setup, seeds, on_step) -> (complex estimates (S·N, H, W), steps)``, report every
    step (residual ‖A x − y‖, PSNR when the truth is known, the current mean as a preview), and
    return the posterior mean with the pixel-wise std in ``extras["std"]``."""
    import time

    from workbench.progress import ensure
    from workbench.solvers.mri.common import Setup

    progress = ensure(progress)
    st = Setup(problem, params.device)
    net, manifest = load_prior(checkpoint_path(params.checkpoint), st.device)
    S, n = int(params.n_samples), st.y.shape[0]
    seeds = [int(params.seed) + j for j in range(S)]
    hist = {"step": [], "psnr": [], "residual": [], "time": []}
    t0 = time.perf_counter()
    total = min(params.nfe, params.max_iter)

    def magnitudes(est: torch.Tensor) -> np.ndarray:
        return np.stack([st.magnitude(est[j * n : (j + 1) * n]) for j in range(S)])

    def on_step(k: int, est: torch.Tensor) -> bool:
        mean = magnitudes(est).mean(0)
        p = st.psnr(mean)
        with torch.no_grad():
            res = float(torch.linalg.vector_norm(st.A.forward(est[:n]) - st.y)) * st.scale
        hist["step"].append(k)
        hist["psnr"].append(float("nan") if p is None else p)
        hist["residual"].append(res)
        hist["time"].append(time.perf_counter() - t0)
        progress(k, total, residual=res, preview=mean[0], **({} if p is None else {"psnr": p}))
        return progress.cancelled

    est, done = draw(net, st, seeds, on_step)
    mean, std = summary(magnitudes(est))
    if done < total:
        status = "cancelled"
    else:
        status = "max_iter" if params.max_iter < params.nfe else "converged"
    extras = {
        "std": std,
        "n_samples": S,
        "nfe_run": done,
        "checkpoint": manifest.get("file", params.checkpoint),
        "data_residual": hist["residual"][-1] if hist["residual"] else float("nan"),
    }
    # the posterior-mean complex image: the domain's evaluate computes the data residual from it
    estimate = est.reshape(S, -1, *est.shape[1:]).mean(0)
    return st.result(
        mean,
        status=status,
        iterations=done,
        history=hist,
        params=params,
        extras=extras,
        estimate=estimate,
    )
