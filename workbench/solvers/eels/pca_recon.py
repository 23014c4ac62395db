"""PCA reconstruction-error anomaly score (P1 paper-like / P2 Poisson PCA of the EELS spec)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from workbench.physics.eels import spectra as SP
from workbench.progress import ensure
from workbench.registry import SolverSpec, param
from workbench.solvers.eels import common as C
from workbench.solvers.eels.pca import choose_k, fit_transform, package, prepare, shift_scores


@dataclass(frozen=True)
class Params:
    k: int = param(
        0,
        "number of principal components (0 = parallel analysis under Poisson noise)",
        min=0,
        max=50,
    )
    poisson_norm: bool = param(
        True, "Keenan-Kotula Poisson normalisation before the SVD (off = paper-like P1)"
    )
    score: str = param(
        "auto",
        "auto (from 'look for'), residual energy in the edge window (Q/SPE), 1 - Pearson r (paper), Poisson deviance (nll), or the likelihood ratio of the best edge shift",
        choices=("auto", "residual", "pearson", "nll", "shift"),
    )
    window_lo: float | None = param(
        None, "analysis window start (eV); empty = whole axis", advanced=True
    )
    window_hi: float | None = param(None, "analysis window end (eV)", advanced=True)
    edge_lo: float = param(690.0, "score window start (eV)", label="edge window lo")
    edge_hi: float = param(730.0, "score window end (eV)", label="edge window hi")
    look_for: str = param(
        "shift",
        "anomaly sought: chemical shift, changed L3/L2 ratio, new phase, or any; picks the score when score = auto",
        choices=("shift", "ratio", "phase", "any"),
    )
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
    k, k_note = choose_k(prep, params.k, params.seed)
    fit = fit_transform(prep.X, k, params.poisson_norm)
    e = prep.edge
    resid = ((fit["Xn"][:, e] - fit["Xn_hat"][:, e]) ** 2).sum(1)
    pear = SP.pearson_score(prep.X[:, e], fit["X_hat"][:, e])
    shift, dmap = shift_scores(prep, fit)
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
        shift_estimate=dmap,
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
