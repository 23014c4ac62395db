"""GP solver with a single squared-exponential kernel per dimension (GP-HM's GP-SE baseline)."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.problems import PDEProblem
from workbench.progress import Progress
from workbench.registry import SolverSpec, param
from workbench.result import Result
from workbench.solvers.pde.gp import Config, solve_gp
from workbench.solvers.pde.gp_hm import default_llk

KIND = "se"


@dataclass(frozen=True)
class Params:
    max_iter: int = param(5000, "Adam steps", min=1, max=10_000_000)
    lr: float = param(1e-2, "Adam learning rate", min=1e-6, max=1.0, log=True)
    adam_beta2: float = param(
        0.99, "Adam's second-moment decay β₂ (as gp_hm)", min=0.0, max=0.99999, advanced=True
    )
    exact_u: bool = param(
        True, "finish with the exact minimiser of the same loss in U (as gp_hm)", advanced=True
    )
    jitter: float = param(1e-6, "diagonal jitter", min=0.0, max=1.0, log=True, advanced=True)
    llk_weight: float = param(
        0.0, "boundary likelihood weight (0 = the problem's)", min=0.0, advanced=True
    )
    n_col: int = param(0, "collocation points per dimension (0 = the problem's)", min=0, max=4096)
    n_checkpoints: int = param(
        50, "test-grid evaluations during the run", min=1, max=10_000, advanced=True
    )
    tol: float = param(
        0.0, "stop on relative loss change below tol (0 = never)", min=0.0, advanced=True
    )
    seed: int = param(0, "recorded only: deterministic initialisation", advanced=True)
    device: str = param("auto", "auto, cpu or cuda", advanced=True)


def solve_single_kernel(
    kind: str, problem: PDEProblem, params: Params, progress: Progress | None = None
) -> Result:
    """The GP-HM machinery with one ``kind`` kernel per dimension (q = 1, no frequency)."""
    cfg = Config(
        kind=kind,
        q=1,
        max_iter=params.max_iter,
        lr=params.lr,
        adam_beta2=params.adam_beta2,
        exact_u=params.exact_u,
        jitter=params.jitter,
        llk_weight=params.llk_weight or default_llk(problem),
        freq_scale=0.0,
        n_col=params.n_col,
        n_checkpoints=params.n_checkpoints,
        tol=params.tol,
        device=params.device,
        seed=params.seed,
    )
    return solve_gp(problem, cfg, progress)


def solve(problem: PDEProblem, params: Params, progress: Progress | None = None) -> Result:
    return solve_single_kernel(KIND, problem, params, progress)


SPEC = SolverSpec(
    name="gp_se",
    domain="pde",
    title="GP with a squared-exponential kernel",
    Params=Params,
    solve=solve,
    description="The GP-HM machinery with one SE kernel (learned scale and length-scale) per dimension: the baseline that a spectral mixture improves on.",
    reference="Fang et al., ICLR 2024 (GP-SE baseline); Chen, Hosseini, Owhadi, Stuart, J. Comput. Phys. 2021.",
)
