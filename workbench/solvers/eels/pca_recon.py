"""PCA reconstruction-error anomaly score (P1 paper-like / P2 Poisson PCA of the EELS spec)."""

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
    package,
    prepare_params,
    shift_scores,
)


@dataclass(frozen=True)
class Params:
    k: int = C.shared("k")
    poisson_norm: bool = param(
        True, "Keenan-Kotula Poisson normalisation before the SVD (off = paper-like P1)"
    )
    score: str = param(
        "auto",
        "auto (from 'look for'), residual energy in the edge window (Q/SPE), 1 - Pearson r (paper), Poisson deviance (nll), or the likelihood ratio of the best edge shift",
        choices=("auto", "residual", "pearson", "nll", "shift"),
    )
    window_lo: float | None = C.shared("window_lo")
    window_hi: float | None = C.shared("window_hi")
    edge_lo: float = C.shared("edge_lo")
    edge_hi: float = C.shared("edge_hi")
    look_for: str = C.shared("look_for")
    align: str = C.shared("align")
    ref_lo: float | None = C.shared("ref_lo")
    ref_hi: float | None = C.shared("ref_hi")
    pool: float = C.shared("pool")
    shift_pool: str = C.shared("shift_pool")
    threshold: str = C.shared("threshold")
    seed: int = param(0, "seed (PCA is deterministic; recorded)")


def solve(problem, params: Params, progress=None):
    progress = ensure(progress)
    t0 = time.perf_counter()
    prep = prepare_params(problem, params)
    k, k_note = choose_k(prep, params.k, params.seed)
    fit = fit_transform(prep.X, k, params.poisson_norm)
    e = prep.edge
    resid = ((fit["Xn"][:, e] - fit["Xn_hat"][:, e]) ** 2).sum(1)
    pear = SP.pearson_score(prep.X[:, e], fit["X_hat"][:, e])
    sfit = shift_scores(prep, fit)
    shift = sfit.lr
    nll = SP.poisson_deviance(prep.X[:, e], fit["X_hat"][:, e])
    name = C.resolve_score(params.score, params.look_for)
    warn = C.count_check(prep.X, name)
    score = {"residual": resid, "pearson": pear, "shift": shift, "nll": nll}[name]
    progress(1, 1)
    return package(
        problem,
        prep,
        fit,
        score,
        params.threshold,
        pool=params.pool,
        shift_pool=params.shift_pool,
        sfit=sfit,
        t0=t0,
        seed=params.seed,
        extra_scores={"residual": resid, "pearson": pear, "shift": shift, "nll": nll},
        meta={"score": name},
        message="; ".join(m for m in (k_note, warn) if m),
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
