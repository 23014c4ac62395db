"""Adjoint SENSE: ``|A^H y| = |Σ_c conj(S_c) F⁻¹(M y_c)|``."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.progress import ensure
from workbench.registry import SolverSpec, param
from workbench.solvers.mri.common import Setup


@dataclass(frozen=True)
class Params:
    device: str = param("auto", "compute device (auto, cpu, cuda)", advanced=True)
    seed: int = param(0, "unused (deterministic)", advanced=True)


def solve(problem, params: Params | None = None, progress=None):
    params = params or Params()
    progress = ensure(progress)
    st = Setup(problem, params.device)
    x = st.A.adjoint(st.y)
    out = st.magnitude(x)
    progress(1, 1)
    return st.result(
        out,
        status="converged",
        iterations=1,
        history={"step": [1], "psnr": [st.psnr(out) or float("nan")]},
        params=params,
        estimate=x,
    )


SPEC = SolverSpec(
    name="sense_adj",
    domain="mri",
    title="Adjoint SENSE",
    Params=Params,
    solve=solve,
    description="Coil combination with the sensitivity maps of the zero-filled data: |A^H y|. Aliased like zero-filled, but phase-coherent.",
    reference="Pruessmann et al., MRM 42:952 (1999)",
)
