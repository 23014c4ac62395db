"""GP solver with a single Matérn-5/2 kernel per dimension (GP-HM's GP-Matérn baseline).

Same parameters and machinery as :mod:`workbench.solvers.pde.gp_se`; only the kernel differs.
"""

from __future__ import annotations

from workbench.problems import PDEProblem
from workbench.progress import Progress
from workbench.registry import SolverSpec
from workbench.result import Result
from workbench.solvers.pde.gp_se import Params, solve_single_kernel

KIND = "matern"


def solve(problem: PDEProblem, params: Params, progress: Progress | None = None) -> Result:
    return solve_single_kernel(KIND, problem, params, progress)


SPEC = SolverSpec(
    name="gp_matern",
    domain="pde",
    title="GP with a Matérn-5/2 kernel",
    Params=Params,
    solve=solve,
    description="The GP-HM machinery with one Matérn-5/2 kernel (learned scale and length-scale) per dimension: the baseline that a spectral mixture improves on.",
    reference="Fang et al., ICLR 2024 (GP-Matérn baseline); Chen, Hosseini, Owhadi, Stuart, J. Comput. Phys. 2021.",
)
