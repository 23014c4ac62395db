"""Hotelling T^2 on Poisson-normalised PCA scores (P3 of the EELS spec)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from workbench.physics.eels import spectra as SP
from workbench.progress import ensure
from workbench.registry import SolverSpec, param
from workbench.solvers.eels import common as C
from workbench.solvers.eels.pca import (
    choose_k,
    fit_transform,
    hotelling_t2,
    package,
    prepare_params,
)


@dataclass(frozen=True)
class Params:
    k: int = C.shared("k")
    poisson_norm: bool = param(True, "Keenan-Kotula Poisson normalisation before the SVD")
    window_lo: float | None = C.shared("window_lo")
    window_hi: float | None = C.shared("window_hi")
    edge_lo: float = C.shared("shown_lo")
    edge_hi: float = C.shared("shown_hi")
    align: str = C.shared("align")
    gain: float = C.shared("gain")
    ref_lo: float | None = C.shared("ref_lo")
    ref_hi: float | None = C.shared("ref_hi")
    pool: float = C.shared("pool")
    threshold: str = C.shared("threshold")
    seed: int = param(0, "seed (PCA is deterministic; recorded)")


def solve(problem, params: Params, progress=None):
    progress = ensure(progress)
    t0 = time.perf_counter()
    progress.note("aligning the spectra" if params.align != "off" else "reading the spectra")
    prep = prepare_params(problem, params)
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
        meta={"score": "t2"},
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
