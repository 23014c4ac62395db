"""PCA fitted on bulk (normal) pixels only (P4 of the EELS spec).

Protocol A: fitted on an anomaly-free reference cube of the same material when the problem
carries one. Protocol B: trimmed fit on the image itself -- fit, drop the pixels with the largest
residual, refit (``max_iter`` rounds).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from workbench.errors import InputError
from workbench.physics.eels import metrics as EM
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
    ratio_scores,
    shift_scores,
)


@dataclass(frozen=True)
class Params:
    k: int = C.shared("k")
    max_iter: int = param(3, "trimming rounds (fit, drop worst pixels, refit)", min=0, max=50)
    trim: float = param(
        0.10, "fraction of pixels with the largest residual dropped per round", min=0.0, max=0.5
    )
    use_reference: bool = param(
        True, "fit on the problem's anomaly-free reference cube when it has one (protocol A)"
    )
    score: str = param(
        "auto",
        "auto (from 'look for'), residual energy over the analysis window, over the edge window, 1 - Pearson r in the edge window, Hotelling T², Poisson deviance in the edge window (nll), the shift likelihood ratio, or the L3/L2 white-line ratio likelihood ratio",
        choices=("auto", "residual", "residual_edge", "pearson", "t2", "nll", "shift", "ratio"),
    )
    l3: float | None = C.shared("l3")
    l2: float | None = C.shared("l2")
    poisson_norm: bool = param(True, "Keenan-Kotula Poisson normalisation before the SVD")
    window_lo: float | None = C.shared("window_lo")
    window_hi: float | None = C.shared("window_hi")
    edge_lo: float = C.shared("shown_lo")
    edge_hi: float = C.shared("shown_hi")
    look_for: str = C.shared("look_for")
    align: str = C.shared("align")
    gain: float = C.shared("gain")
    ref_lo: float | None = C.shared("ref_lo")
    ref_hi: float | None = C.shared("ref_hi")
    pool: float = C.shared("pool")
    shift_pool: str = C.shared("shift_pool")
    threshold: str = C.shared("threshold")
    seed: int = param(0, "seed (deterministic; recorded)")


def solve(problem, params: Params, progress=None):
    progress = ensure(progress)
    t0 = time.perf_counter()
    prep = prepare_params(problem, params)
    k, k_note = choose_k(prep, params.k, params.seed)
    if C.resolve_score(params.score, params.look_for) == "ratio" and params.k == 0:
        # as pca_recon (common.RATIO_MIN_K): the template must carry the bulk's smooth
        # white-line variation, or it reads as a ratio change everywhere
        if k < C.RATIO_MIN_K:
            k = min(C.RATIO_MIN_K, prep.X.shape[0] - 2)
            k_note = "; ".join(x for x in (k_note, f"raised to k = {k} for the ratio score") if x)
    X = prep.X
    ref = getattr(problem, "reference", None)
    hist: dict[str, list[float]] = {"step": [], "kept_fraction": [], "time": []}
    status, rounds, protocol = "converged", 0, "B (trimmed)"

    def scores(fit, rows=None):
        r = ((fit["Xn"] - fit["Xn_hat"]) ** 2).sum(1)
        t2 = hotelling_t2(fit["z"], rows)
        return r, t2

    if params.use_reference and ref is not None:
        if ref.shape[-1] != problem.data.shape[-1]:
            raise InputError("reference cube has a different number of energy channels")
        sl = SP.window(np.asarray(problem.energy, np.float64), params.window_lo, params.window_hi)
        R = np.asarray(ref[..., sl], np.float64).reshape(-1, X.shape[1])
        fit = fit_transform(X, k, params.poisson_norm, ref=R)
        resid, _ = scores(fit)
        zr = (
            (R / np.sqrt(np.clip(R.sum(1), 1e-12, None))[:, None] / fit["col"] - fit["mean"])
            @ fit["V"].T
            if params.poisson_norm
            else (R - fit["mean"]) @ fit["V"].T
        )
        mu, var = zr.mean(0), np.where(zr.var(0) > 0, zr.var(0), 1e-300)
        t2 = (((fit["z"] - mu) ** 2) / var).sum(1)
        protocol = "A (reference)"
        progress(1, 1)
        rounds = 1
        hist = {"step": [1.0], "kept_fraction": [1.0], "time": [time.perf_counter() - t0]}
    else:
        rows = np.ones(X.shape[0], bool)
        fit = fit_transform(X, k, params.poisson_norm, fit_rows=rows)
        resid, t2 = scores(fit, rows)
        for it in range(1, params.max_iter + 1):
            # drop the pixels that fit worst either way: large residual or extreme T2
            bad = np.maximum(EM.rank01(resid), EM.rank01(t2))
            rows = bad <= np.quantile(bad, 1.0 - params.trim)
            fit = fit_transform(X, k, params.poisson_norm, fit_rows=rows)
            resid, t2 = scores(fit, rows)
            rounds = it
            hist["step"].append(float(it))
            hist["kept_fraction"].append(float(rows.mean()))
            hist["time"].append(time.perf_counter() - t0)
            progress(it, params.max_iter, kept_fraction=float(rows.mean()))
            if progress.cancelled:
                status = "cancelled"
                break
    e = prep.edge
    resid_edge = ((fit["Xn"][:, e] - fit["Xn_hat"][:, e]) ** 2).sum(1)
    pear = SP.pearson_score(X[:, e], fit["X_hat"][:, e])
    sfit = shift_scores(prep, fit)
    shift = sfit.lr
    nll = SP.poisson_deviance(X[:, e], fit["X_hat"][:, e])
    name = C.resolve_score(params.score, params.look_for)
    warn = C.count_check(prep.X, name)
    rfit = ratio_scores(prep, fit, params.l3, params.l2, required=name == "ratio")
    extra = {
        "residual": resid,
        "residual_edge": resid_edge,
        "t2": t2,
        "pearson": pear,
        "nll": nll,
        "shift": shift,
    }
    if rfit is not None:
        extra["ratio"] = rfit.lr
    score = extra[name]
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
        status=status,
        iterations=rounds,
        history=hist,
        meta={"protocol": protocol, "score": name},
        message="; ".join(m for m in (k_note, warn) if m),
    )


SPEC = SolverSpec(
    name="pca_bulk",
    domain="eels",
    title="PCA fitted on bulk pixels",
    Params=Params,
    solve=solve,
    description=(
        "Poisson-normalised PCA fitted only on normal pixels: on an anomaly-free reference cube "
        "when the problem has one (protocol A), otherwise by trimming the worst-fitting pixels and "
        "refitting. Scores the residual energy over the whole window (or T²)."
    ),
    reference="Keenan & Kotula (2004); robust/trimmed PCA, e.g. Hubert et al., Technometrics 47 (2005) 64",
)
