"""PINN on uniform collocation: a fixed pseudo-random set, or a fresh one every stage."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.problems import PDEProblem
from workbench.progress import Progress
from workbench.registry import SolverSpec, param
from workbench.result import Result
from workbench.solvers.pde.pinn import train
from workbench.solvers.pde.pinn_samplers import ResampleSampler, Sampler
from workbench.solvers.pde.pinn_staged import StagedParams


@dataclass(frozen=True)
class Params(StagedParams):
    resample: bool = param(
        False, "draw N fresh pseudo-random points every stage instead of keeping the first set"
    )


def solve(problem: PDEProblem, params: Params, progress: Progress | None = None) -> Result:
    """Train the balanced PINN (:func:`workbench.solvers.pde.pinn.train`) on uniform points."""
    s = ResampleSampler(params.n_points) if params.resample else Sampler(params.n_points)
    return train(problem, params, progress, s)


SPEC = SolverSpec(
    name="pinn_uniform",
    domain="pde",
    title="PINN, uniform collocation",
    Params=Params,
    solve=solve,
    planned_stop=True,  # the run verdict: reaching max_iter is the plan
    description="The balanced PINN on N pseudo-random uniform points, fixed or redrawn every stage: the baseline of the adaptive samplers (same network, optimiser and budget).",
    reference="M. Raissi et al., J. Comput. Phys. 378 (2019); C. Wu et al., CMAME 403 (2023) 115671.",
)
