"""Shared parameters of the staged PINN solvers ``pinn_uniform``, ``pinn_rar``, ``pinn_rad`` and
``pinn_aas``: one network, optimiser and budget, only the sampler differs (spec pde.md §4.2)."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.registry import param


@dataclass(frozen=True)
class StagedParams:
    width: int = param(64, "hidden units per layer", min=4, max=1024)
    depth: int = param(4, "hidden layers", min=1, max=12)
    activation: str = param("tanh", "activation", choices=("tanh", "sin"))
    n_points: int = param(1000, "interior collocation points N", min=4, max=1_000_000)
    stage_steps: int = param(
        500, "Adam steps per stage n_θ (the sampler acts between stages)", min=1, max=1_000_000
    )
    max_iter: int = param(
        5500,
        "optimisation steps in all: Adam, then the finish (LM or L-BFGS) after adam_iter",
        min=1,
        max=10_000_000,
    )
    adam_iter: int = param(
        5000,
        "Adam steps (stages = adam_iter / stage_steps); the finish on the last set follows",
        min=0,
        max=10_000_000,
    )
    lr: float = param(1e-3, "Adam learning rate", min=1e-6, max=1.0, log=True)
    bc: str = param(
        "exact",
        "boundary conditions: exact (lift + distance function), adaptive (annealed weight) or penalty (fixed γ)",
        choices=("exact", "adaptive", "penalty"),
    )
    gamma: float = param(
        100.0, "boundary weight γ (penalty; start value for adaptive)", min=0.0, log=True
    )
    finish: str = param(
        "lm",
        "optimiser on the last set after the Adam stages: lm (Levenberg–Marquardt; min(points, "
        "weights) <= 6000), lbfgs (scipy L-BFGS-B) or auto (lm up to 1024 points)",
        choices=("auto", "lbfgs", "lm"),
    )
    output_norm: str = param(
        "sup",
        "size of u that scales the network's output: sup (max|f| / k̄^q; right for localised "
        "solutions) or rms (‖f‖ / k̄^q, the `pinn` default)",
        choices=("sup", "rms"),
        advanced=True,
    )
    zero_output_init: bool = param(
        True,
        "start the network's output layer at zero (u = the boundary lift at step 0) instead of "
        "Xavier: with the sup output scale a random start is an O(peak) field everywhere",
        advanced=True,
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


def default_candidates(dim: int, n: int) -> int:
    """M uniform candidates for RAR/RAD: 10k in 1-D, 100k in 2-D (spec §4.2) unless given."""
    return n if n else (10_000 if dim == 1 else 100_000)
