"""PCA reconstruction-error anomaly score (P1 paper-like / P2 Poisson PCA of the EELS spec)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from workbench.physics.eels import spectra as SP
from workbench.progress import ensure
from workbench.registry import SolverSpec, param
from workbench.solvers.eels import common as C
from workbench.solvers.eels.pca import (
    DLOAD_REFIT,
    TEMPLATES,
    choose_k,
    fit_template,
    package,
    prepare_params,
    ratio_scores,
    refit,
    shift_scores,
)

# default refit rounds, chosen on validation cubes only (benchmarks/eels_refit_sweep.py, seeds
# 20001-20004; rule: fewest rounds within 0.002 of the best mean ROC AUC over the 0.5 and 1 eV
# shifts at 0.3x dose, among those flagging at most 2 % of every drift-null cube): rounds 0 / 1 /
# 2 / 3 gave 0.938 / 0.944 / 0.948 / 0.948 at 0.5 eV and 0.978 / 0.985 / 0.986 / 0.986 at 1 eV,
# null pixels flagged at most 0.32 / 0.63 / 0.98 / 1.2 %; a fit without the truly anomalous
# pixels (the bound) 0.985 / 0.992
REFIT_ROUNDS = 2


@dataclass(frozen=True)
class Params:
    k: int = C.shared("k")
    poisson_norm: bool = param(
        True, "Keenan-Kotula Poisson normalisation before the SVD (off = paper-like P1)"
    )
    score: str = param(
        "auto",
        "auto (from 'look for'), residual energy in the edge window (Q/SPE), 1 - Pearson r (paper), Poisson deviance (nll), the likelihood ratio of the best edge shift, or of the best L3/L2 white-line ratio change",
        choices=("auto", "residual", "pearson", "nll", "shift", "ratio"),
    )
    window_lo: float | None = C.shared("window_lo")
    window_hi: float | None = C.shared("window_hi")
    edge_lo: float = C.shared("edge_lo")
    edge_hi: float = C.shared("edge_hi")
    look_for: str = C.shared("look_for")
    align: str = C.shared("align")
    gain: float = C.shared("gain")
    ref_lo: float | None = C.shared("ref_lo")
    ref_hi: float | None = C.shared("ref_hi")
    pool: float = C.shared("pool")
    shift_pool: str = C.shared("shift_pool")
    l3: float | None = C.shared("l3")
    l2: float | None = C.shared("l2")
    refit: int | None = param(
        None,
        "shift and ratio scores: rounds of refitting the PCA without the pixels flagged at the "
        "default threshold, so an anomalous region does not serve as its own template (0 = one "
        f"fit on every pixel; empty = {REFIT_ROUNDS} for shift with the pca template, "
        f"{DLOAD_REFIT} with dload or trimmed, {C.RATIO_REFIT} for ratio)",
        min=0,
        max=5,
        advanced=True,
    )
    template: str = param(
        "trimmed",
        "shift score: the template's fit -- trimmed = the PCA of the pixels left after trimming "
        "compact regions that shift together (the anomalous discs, flagged or not; a smooth "
        "energy drift is kept), dload = the PCA of every pixel with only its loading on the "
        "edge-shift direction fitted without those regions, pca = the plain PCA refitted "
        "without the flagged pixels; other scores always use the plain PCA",
        choices=TEMPLATES,
        advanced=True,
    )
    threshold: str = C.shared("threshold")
    seed: int = param(0, "seed (PCA is deterministic; recorded)")


def solve(problem, params: Params, progress=None):
    progress = ensure(progress)
    t0 = time.perf_counter()
    prep = prepare_params(problem, params)
    k, k_note = choose_k(prep, params.k, params.seed)
    name = C.resolve_score(params.score, params.look_for)
    if name == "ratio" and params.k == 0 and k < C.RATIO_MIN_K:
        # the template must carry the bulk's smooth white-line variation (plural scattering)
        k = min(C.RATIO_MIN_K, prep.X.shape[0] - 2)
        k_note = "; ".join(x for x in (k_note, f"raised to k = {k} for the ratio score") if x)
    warn = C.count_check(prep.X, name)
    left_out = 0.0
    # the robust shift loading serves the shift score (its direction is the shift's)
    template = params.template if name == "shift" else "pca"
    rounds = params.refit
    if rounds is None:
        if name == "ratio":
            rounds = C.RATIO_REFIT
        else:
            rounds = REFIT_ROUNDS if template == "pca" else DLOAD_REFIT
    rfit = None
    if name in C.LR_SCORES and rounds > 0:
        fit, lfit, left_out = refit(
            prep,
            k,
            params.poisson_norm,
            rounds,
            params.pool,
            name,
            params.shift_pool,
            l3=params.l3,
            l2=params.l2,
            template=template,
        )
        if name == "shift":
            sfit = lfit
        else:
            rfit, sfit = lfit, shift_scores(prep, fit)
    else:
        fit = fit_template(prep, k, params.poisson_norm, template, pool=params.pool)
        sfit = shift_scores(prep, fit)
    e = prep.edge
    resid = ((fit["Xn"][:, e] - fit["Xn_hat"][:, e]) ** 2).sum(1)
    pear = SP.pearson_score(prep.X[:, e], fit["X_hat"][:, e])
    shift = sfit.lr
    nll = SP.poisson_deviance(prep.X[:, e], fit["X_hat"][:, e])
    if rfit is None:
        rfit = ratio_scores(prep, fit, params.l3, params.l2, required=name == "ratio")
    extra = {"residual": resid, "pearson": pear, "shift": shift, "nll": nll}
    if rfit is not None:
        extra["ratio"] = rfit.lr
    score = extra[name]
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
        rfit=rfit,
        t0=t0,
        seed=params.seed,
        extra_scores=extra,
        meta={"score": name, "refit_left_out": left_out},
        message="; ".join(
            m
            for m in (
                k_note,
                warn,
                f"PCA refitted without the {100 * left_out:.1f} % of pixels flagged"
                if left_out > 0
                else "",
            )
            if m
        ),
    )


SPEC = SolverSpec(
    name="pca_recon",
    domain="eels",
    title="PCA reconstruction error",
    Params=Params,
    solve=solve,
    description=(
        "Rank-k PCA (SVD) of the spectrum image, with or without Poisson normalisation; for the "
        "shift score its loading on the edge-shift direction is fitted without compact anomalous "
        "regions (or, template = pca, the PCA is refitted without the pixels it flags); the "
        "score compares each spectrum with its reconstruction in "
        "the edge window: the likelihood ratio of an edge shift (chemical shift), of an L3/L2 "
        "white-line ratio change (valence), the Poisson deviance (new phase, anything), the "
        "residual energy or 1 - Pearson r (paper)."
    ),
    reference="Keenan & Kotula, Surf. Interface Anal. 36 (2004) 203; Sultanov et al., arXiv:2412.16200 (PCA baseline)",
)
