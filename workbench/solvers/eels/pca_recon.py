"""PCA reconstruction-error anomaly score (P1 paper-like / P2 Poisson PCA of the EELS spec)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from workbench.physics.eels import spectra as SP
from workbench.progress import ensure
from workbench.registry import SolverSpec, param
from workbench.solvers.eels.pca import fit_transform, package, prepare, shift_scores


@dataclass(frozen=True)
class Params:
    k: int = param(3, "number of principal components", min=1, max=50)
    poisson_norm: bool = param(
        True, "Keenan-Kotula Poisson normalisation before the SVD (off = paper-like P1)"
    )
    score: str = param(
        "residual",
        "residual energy in the edge window (Q/SPE), 1 - Pearson r, or the likelihood ratio of the best edge shift",
        choices=("residual", "pearson", "shift"),
    )
    window_lo: float | None = param(
        None, "analysis window start (eV); empty = whole axis", advanced=True
    )
    window_hi: float | None = param(None, "analysis window end (eV)", advanced=True)
    edge_lo: float = param(690.0, "score window start (eV)", label="edge window lo")
    edge_hi: float = param(730.0, "score window end (eV)", label="edge window hi")
    threshold: str = param("otsu", "threshold from the score histogram", choices=("otsu", "gmm"))
    seed: int = param(0, "seed (PCA is deterministic; recorded)")


def solve(problem, params: Params, progress=None):
    progress = ensure(progress)
    t0 = time.perf_counter()
    prep = prepare(problem, params.window_lo, params.window_hi, params.edge_lo, params.edge_hi)
    fit = fit_transform(prep.X, params.k, params.poisson_norm)
    e = prep.edge
    resid = ((fit["Xn"][:, e] - fit["Xn_hat"][:, e]) ** 2).sum(1)
    pear = SP.pearson_score(prep.X[:, e], fit["X_hat"][:, e])
    shift, _ = shift_scores(prep, fit)
    score = {"residual": resid, "pearson": pear, "shift": shift}[params.score]
    progress(1, 1)
    return package(
        problem,
        prep,
        fit,
        score,
        params.threshold,
        t0=t0,
        seed=params.seed,
        extra_scores={"residual": resid, "pearson": pear, "shift": shift},
    )


SPEC = SolverSpec(
    name="pca_recon",
    domain="eels",
    title="PCA reconstruction error",
    Params=Params,
    solve=solve,
    description=(
        "Rank-k PCA (SVD) of the spectrum image fitted on all pixels, with or without Poisson "
        "normalisation; the score is the residual energy or 1 - Pearson r between spectrum and "
        "reconstruction in the Fe-L edge window. Anomalies that become a component are missed."
    ),
    reference="Keenan & Kotula, Surf. Interface Anal. 36 (2004) 203; Sultanov et al., arXiv:2412.16200 (PCA baseline)",
)
