"""Hotelling T^2 on Poisson-normalised PCA scores (P3 of the EELS spec)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from workbench.physics.eels import spectra as SP
from workbench.progress import ensure
from workbench.registry import SolverSpec, param
from workbench.solvers.eels import common as C
from workbench.solvers.eels.pca import choose_k, fit_transform, hotelling_t2, package, prepare


@dataclass(frozen=True)
class Params:
    k: int = param(
        0,
        "number of principal components (0 = parallel analysis under Poisson noise)",
        min=0,
        max=50,
    )
    poisson_norm: bool = param(True, "Keenan-Kotula Poisson normalisation before the SVD")
    window_lo: float | None = param(
        None, "analysis window start (eV); empty = whole axis", advanced=True
    )
    window_hi: float | None = param(None, "analysis window end (eV)", advanced=True)
    edge_lo: float = param(690.0, "window for the reconstruction shown (eV)", advanced=True)
    edge_hi: float = param(730.0, "window for the reconstruction shown (eV)", advanced=True)
    align: str = param(
        "auto",
        "per-pixel energy alignment before scoring (auto = when a zero-loss peak or another edge is found)",
        choices=("auto", "on", "off"),
    )
    ref_lo: float | None = param(
        None, "alignment reference window start (eV); empty = found", advanced=True
    )
    ref_hi: float | None = param(None, "alignment reference window end (eV)", advanced=True)
    pool: float = param(C.DEFAULT_POOL, C.POOL_HELP, min=0.0, max=5.0)
    threshold: str = param(
        "auto",
        "auto (calibrated chi-square threshold for the shift score, Otsu otherwise), Otsu or a two-component mixture on the score histogram",
        choices=("auto", "otsu", "gmm"),
    )
    seed: int = param(0, "seed (PCA is deterministic; recorded)")


def solve(problem, params: Params, progress=None):
    progress = ensure(progress)
    t0 = time.perf_counter()
    progress.note("aligning the spectra" if params.align != "off" else "reading the spectra")
    prep = prepare(
        problem,
        params.window_lo,
        params.window_hi,
        params.edge_lo,
        params.edge_hi,
        align=params.align,
        ref_lo=params.ref_lo,
        ref_hi=params.ref_hi,
    )
    if params.k == 0:
        progress.note("choosing the number of components (parallel analysis)")
    k, k_note = choose_k(prep, params.k, params.seed, bulk_only=False)
    progress.note(f"fitting {k} principal components")
    fit = fit_transform(prep.X, k, params.poisson_norm)
    t2 = hotelling_t2(fit["z"])
    e = prep.edge
    resid = ((fit["Xn"][:, e] - fit["Xn_hat"][:, e]) ** 2).sum(1)
    progress(1, 1)
    return package(
        problem,
        prep,
        fit,
        t2,
        params.threshold,
        pool=params.pool,
        t0=t0,
        seed=params.seed,
        extra_scores={
            "t2": t2,
            "residual": resid,
            "pearson": SP.pearson_score(prep.X[:, e], fit["X_hat"][:, e]),
        },
        message="; ".join(m for m in (k_note, C.count_check(prep.X, "t2")) if m),
    )


SPEC = SolverSpec(
    name="pca_t2",
    domain="eels",
    title="PCA Hotelling T²",
    Params=Params,
    solve=solve,
    description=(
        "Poisson-normalised PCA of the whole spectrum image; the score is Hotelling's T² of each "
        "pixel's k component scores. A shifted edge that becomes a component stands out in T² even "
        "when the reconstruction error does not see it. Strong, cheap baseline."
    ),
    reference="Hotelling (1931); Keenan & Kotula, Surf. Interface Anal. 36 (2004) 203",
)
