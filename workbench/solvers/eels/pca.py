"""Shared PCA machinery for the EELS baselines (P1-P4 of the spec)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.device import versions
from workbench.errors import InputError
from workbench.physics.eels import spectra as SP
from workbench.result import Result
from workbench.solvers.eels import common as C


@dataclass
class Prepared:
    X: np.ndarray  # (n, c) counts in the analysis window (float64)
    energy: np.ndarray  # (c,)
    edge: slice  # edge window inside the analysis window
    shape: tuple[int, int]
    note: str = ""  # what the energy alignment did
    drift: np.ndarray | None = None  # per-pixel offset removed (eV)
    gain: dict | None = None  # detector gain applied (common.apply_gain)


def prepare(
    problem: Any,
    lo: float | None,
    hi: float | None,
    edge_lo: float,
    edge_hi: float,
    *,
    align: str = "off",
    ref_lo: float | None = None,
    ref_hi: float | None = None,
    gain: float = 1.0,
) -> Prepared:
    """Counts of the analysis window as an (n, c) matrix, after per-pixel energy alignment
    (``align``: auto/on/off, see :func:`workbench.solvers.eels.common.align_problem`), in
    electrons (divided by the detector ``gain``: 0 = estimated, 1 = off; see
    :func:`workbench.solvers.eels.common.apply_gain`)."""
    energy = np.asarray(problem.energy, np.float64)
    data, drift, note = C.align_problem(problem, align, ref_lo, ref_hi, (edge_lo, edge_hi))
    data, ginfo, gnote = C.apply_gain(problem.data, data, gain)
    note = "; ".join(m for m in (note, gnote) if m)
    sl = SP.window(energy, lo, hi, what="analysis window")
    e = energy[sl]
    ny, nx = data.shape[:2]
    X = np.asarray(data[..., sl], np.float64).reshape(ny * nx, -1)
    edge = SP.window(e, edge_lo, edge_hi, what="edge window")
    if ny * nx < 4:
        raise InputError(f"PCA needs at least 4 pixels, got a {ny}x{nx} map")
    return Prepared(X, e, edge, (ny, nx), note, drift, ginfo)


def prepare_params(problem: Any, params: Any) -> Prepared:
    """:func:`prepare` with the windows and alignment of a PCA solver's ``Params``."""
    return prepare(
        problem,
        params.window_lo,
        params.window_hi,
        params.edge_lo,
        params.edge_hi,
        align=params.align,
        ref_lo=params.ref_lo,
        ref_hi=params.ref_hi,
        gain=getattr(params, "gain", 1.0),
    )


def choose_k(prep: Prepared, k: int, seed: int = 0, bulk_only: bool = True) -> tuple[int, str]:
    """``k`` components, or (k = 0) as many as parallel analysis under Poisson noise finds; with
    ``bulk_only`` (reconstruction scores) only those before the first localised component
    (:func:`workbench.solvers.eels.common.bulk_components`), since a detector that models the
    anomaly no longer sees it in the residual. Hotelling's T^2 wants the anomaly's component."""
    if k > 0:
        return k, ""
    kk, _, _ = C.parallel_analysis(prep.X, seed=seed)
    # k >= n - 1 components reproduce every pixel (all scores tie): keep k <= n - 2
    kk = max(1, min(kk, prep.X.shape[0] - 2))
    kb = C.bulk_components(fit_transform(prep.X, kk, True)["z"]) if bulk_only else kk
    if kb < kk:
        return kb, (
            f"k = {kb}: {kk} components above the Poisson noise (parallel analysis), the first "
            f"{kb} spread over the map; component {kb + 1} is localised (an anomaly, not bulk)"
        )
    return kk, f"k = {kk} from parallel analysis under Poisson noise"


def fit_transform(
    X: np.ndarray,
    k: int,
    poisson: bool,
    fit_rows: np.ndarray | None = None,
    ref: np.ndarray | None = None,
):
    """Fit PCA (optionally Poisson-normalised) on ``ref`` or on the rows ``fit_rows`` of X.

    Returns dict with Xn (normalised X), Xn_hat (rank-k reconstruction), z (scores), mean,
    components, sv (singular values), row/col factors and the reconstruction in counts.
    """
    k = int(min(k, X.shape[1] - 1, X.shape[0] - 1))
    if poisson:
        if ref is not None:
            _, _, col = SP.poisson_normalise(ref)
        else:
            _, _, col = SP.poisson_normalise(X if fit_rows is None else X[fit_rows])
        row = np.sqrt(np.clip(X, 0, None).sum(1))
        row = np.where(row > 0, row, 1.0)
        Xn = X / row[:, None] / col[None, :]
        if ref is not None:
            rr = np.sqrt(np.clip(ref, 0, None).sum(1))
            F = ref / np.where(rr > 0, rr, 1.0)[:, None] / col[None, :]
        else:
            F = Xn if fit_rows is None else Xn[fit_rows]
    else:
        row = np.ones(X.shape[0])
        col = np.ones(X.shape[1])
        Xn = X
        F = ref if ref is not None else (X if fit_rows is None else X[fit_rows])
    mean, V, sv = C.pca_fit(F, k)
    z = (Xn - mean) @ V.T
    Xn_hat = mean + z @ V
    X_hat = Xn_hat * row[:, None] * col[None, :]
    return {
        "Xn": Xn,
        "Xn_hat": Xn_hat,
        "z": z,
        "mean": mean,
        "V": V,
        "sv": sv,
        "row": row,
        "col": col,
        "X_hat": X_hat,
        "k": k,
    }


TEMPLATES = ("pca", "dload", "trimmed")
# The "dload" template's settings, chosen on validation cubes only
# (benchmarks/eels_template_robust_val.py, seeds 20001-20012, 12 cubes per condition; rule fixed
# before the run: >= +0.01 mean ROC AUC at 0.5 eV / 0.3x over the previous default, no loss at
# 1 eV, <= 2 % of every drift-null cube flagged; among those passing the simplest within 0.002 of
# the best): 0.863 -> 0.876 at 0.5 eV, 0.966 -> 0.971 at 1 eV, null at most 0.83 % flagged
# (previous default 0.98 %). Trimmed q = 0.05 / 0.1 with band-pass 9 / 12 px all passed
# (0.876-0.877); without the band-pass every trim flagged 2-12 % of some null cube.
# "trimmed" (a PCA of the pixels that regression kept), against dload by the same rule on the
# same 12 validation cubes (benchmarks/eels_template_kept_val.py): 0.876 -> 0.905 at 0.5 eV,
# 0.971 -> 0.977 at 1 eV, null at most 1.83 % flagged; pca_recon's default since 2026-12-07.
# share of pixels left out of the shift-loading regression
DLOAD_TRIM = 0.05
# scale (px) of the smooth part taken out of the trimming criterion (the energy drift's)
DLOAD_DOG = 12.0
# pca_recon's refit rounds (leave out the flagged pixels) on top of the dload template
DLOAD_REFIT = 0


def shift_directions(
    mean: np.ndarray, col: np.ndarray, energy: np.ndarray, edge: slice, order: int = 1
) -> np.ndarray:
    """Orthonormal basis D (m, c) of the directions in which a small edge shift moves a spectrum,
    in the normalised space x = X / (row col) of :func:`fit_transform`.

    The shift test moves the template T(E) = mean(E) col(E) (counts, up to the row factor) in the
    edge window: T(E - delta) = T(E) - delta T'(E) + delta^2 T''(E) / 2 - ..., so in the
    normalised space the first-order direction is d_1 = T' / col and the second d_2 = T'' / col
    (``order`` = 2), zero outside the edge window, which the test does not see. ``col`` = 1
    without the Poisson normalisation."""
    e = np.asarray(energy, np.float64)
    t = np.asarray(mean, np.float64) * col
    g = [np.gradient(t, e)]
    if order >= 2:
        g.append(np.gradient(g[0], e))
    D = np.zeros((len(g), t.size))
    for j, gj in enumerate(g):
        D[j, edge] = (gj / col)[edge]
    Q, _ = np.linalg.qr(D.T)
    return Q.T


def fit_dload(
    X: np.ndarray,
    k: int,
    poisson: bool,
    shape: tuple[int, int],
    energy: np.ndarray,
    edge: slice,
    *,
    trim: float = DLOAD_TRIM,
    dog: float = DLOAD_DOG,
    fit_rows: np.ndarray | None = None,
    pool: float = 3.0,
    max_steps: int = 20,
) -> dict[str, Any]:
    """Rank-k template whose loading on the edge-shift direction is fitted robustly.

    Why: the anomalous regions are a few compact discs, so their pixels' bulk PCA scores z
    (thickness, background) differ from the map's average by chance; in a PCA of every pixel
    their shift is then correlated with z and tilts a component towards the shift direction d,
    and the template of every pixel with such z is itself shifted: it absorbs part of the
    anomaly it should reveal (projecting d out of the span instead fails: the bulk itself
    varies along d, benchmarks/eels_template_robust_val.py).

    Model, in the normalised space x_i = X_i / (row_i col) (:func:`fit_transform`), with the mean
    m over the fitted rows and D = d / ||d|| (:func:`shift_directions`):

        c_i = (x_i - m) . D,      V_perp = the top k right singular vectors of (x - m)(I - D^T D),
        z_i = (x_i - m) V_perp^T, c_i ~ a + z_i b   (least squares over the kept pixels),
        x_hat_i = m + z_i V_perp + (a + z_i b) D = m' + z_i V,   m' = m + a D, V = V_perp + b D^T.

    Everything orthogonal to D is the usual PCA of every fitted pixel; only the k + 1 numbers
    (a, b) see the anomalies, and they are fitted by C-steps of a trimmed regression: drop the
    fraction ``trim`` of fitted pixels with the largest band-passed residual

        |G_pool * r - G_dog * r|,   r = c - a - z b,

    refit, until the kept set is fixed (at most ``max_steps``). The detector's Gaussian G_pool
    makes a disc sharing one shift stand out, where a noisy normal pixel does not; subtracting
    the average over ``dog`` px keeps a smooth field out of the trimmed set: energy drift is a
    smooth map of true shifts that z predicts only in part, and trimming its extremes (the
    points of largest leverage) flattened b, so that every drifted pixel read as shifted
    (with ``dog`` = 0, 2-10 % of some validation null cube flagged for 5-20 % trimmed). A
    trimmed normal pixel keeps its own z and V_perp fit. ``trim`` = 0: plain least squares over
    every fitted pixel (close to the default PCA).

    Returns the dict of :func:`fit_transform` (``V`` the effective loadings V above, not
    orthonormal; ``sv`` the singular values of the part orthogonal to D) plus ``kept``, the
    pixels of the last regression.
    """
    from workbench.physics.eels.synth import gaussian_filter

    k = int(min(k, X.shape[1] - 2, X.shape[0] - 1))
    rows = np.ones(X.shape[0], bool) if fit_rows is None else np.asarray(fit_rows, bool)
    if poisson:
        _, _, col = SP.poisson_normalise(X[rows])
        row = np.sqrt(np.clip(X, 0, None).sum(1))
        row = np.where(row > 0, row, 1.0)
    else:
        row, col = np.ones(X.shape[0]), np.ones(X.shape[1])
    Xn = X / row[:, None] / col[None, :]
    mean = Xn[rows].mean(0)
    D = shift_directions(mean, col, energy, edge)
    Xc = Xn - mean
    c = Xc @ D.T
    Xp = Xc - c @ D
    _, Vp, sv = C.pca_fit(Xp[rows], k, center=False)
    z = Xp @ Vp.T
    A = np.column_stack([np.ones(len(z)), z])

    def band(m):
        # the pooled residual minus its average over ``dog`` px: a smooth field is not trimmed
        g = gaussian_filter(m, pool)
        return g - gaussian_filter(m, dog) if dog > 0 else g

    keep = rows.copy()
    coef = np.linalg.lstsq(A[keep], c[keep], rcond=None)[0]
    for _ in range(max_steps if trim > 0 else 0):
        r = c - A @ coef
        pr = np.sqrt(sum(band(r[:, j].reshape(shape)) ** 2 for j in range(r.shape[1]))).ravel()
        new = rows & (pr <= np.quantile(pr[rows], 1.0 - trim))
        if np.array_equal(new, keep):
            break
        keep = new
        coef = np.linalg.lstsq(A[keep], c[keep], rcond=None)[0]
    mean_eff = mean + coef[0] @ D
    V = Vp + coef[1:] @ D
    Xn_hat = mean_eff + z @ V
    return {
        "Xn": Xn,
        "Xn_hat": Xn_hat,
        "z": z,
        "mean": mean_eff,
        "V": V,
        "sv": sv,
        "row": row,
        "col": col,
        "X_hat": Xn_hat * row[:, None] * col[None, :],
        "k": k,
        "kept": keep,
    }


def fit_template(
    prep: Prepared,
    k: int,
    poisson: bool,
    template: str = "pca",
    fit_rows: np.ndarray | None = None,
    trim: float = DLOAD_TRIM,
    pool: float = C.DEFAULT_POOL,
    dog: float = DLOAD_DOG,
) -> dict[str, Any]:
    """The rank-k template of every pixel: ``template`` = "pca", the PCA of :func:`fit_transform`;
    "dload", the PCA with a robust loading on the edge-shift direction (:func:`fit_dload`);
    "trimmed", the PCA fitted on the pixels that dload's trimmed regression kept.

    Why "trimmed": dload guards only the template's loading on the first-order shift direction,
    but a 0.5 eV shift at 0.3 eV per channel also moves the spectrum along directions that
    first-order term misses, and the plain components absorb that part of the anomalous discs.
    The trimming that protects dload's regression also finds most of the discs (47-86 % of the
    truly anomalous pixels at 5 % trimmed, validation cubes), so a PCA fitted without them
    keeps all of the template clear of them, while the band-pass leaves a smooth energy drift in
    the fit (``benchmarks/eels_template_kept_val.py``)."""
    if template not in TEMPLATES:
        raise InputError(f"template must be one of {', '.join(TEMPLATES)}, got {template!r}")
    if template == "pca":
        return fit_transform(prep.X, k, poisson, fit_rows=fit_rows)
    if template == "trimmed":
        kept = fit_template(prep, k, poisson, "dload", fit_rows, trim, pool, dog)["kept"]
        fit = fit_transform(prep.X, k, poisson, fit_rows=kept)
        fit["kept"] = kept
        return fit
    return fit_dload(
        prep.X,
        k,
        poisson,
        prep.shape,
        prep.energy,
        prep.edge,
        trim=trim,
        dog=dog,
        fit_rows=fit_rows,
        pool=pool if pool > 0 else C.DEFAULT_POOL,
    )


def hotelling_t2(z: np.ndarray, fit_rows: np.ndarray | None = None) -> np.ndarray:
    zf = z if fit_rows is None else z[fit_rows]
    mu = zf.mean(0)
    var = zf.var(0)
    var = np.where(var > 0, var, 1e-300)
    return (((z - mu) ** 2) / var).sum(1)


def shift_scores(prep: Prepared, fit: dict[str, Any]) -> C.ShiftFit:
    """GLR shift statistic, best shift (eV) and per-shift gains of the rank-k reconstruction in
    the edge window (:func:`workbench.solvers.eels.common.shift_fit`)."""
    e = prep.energy
    return C.shift_fit(prep.X, fit["X_hat"], e, float(e[prep.edge][0]), float(e[prep.edge][-1]))


def ratio_scores(
    prep: Prepared,
    fit: dict[str, Any],
    l3: float | None = None,
    l2: float | None = None,
    required: bool = False,
) -> C.ShiftFit | None:
    """White-line ratio likelihood ratio of the rank-k reconstruction
    (:func:`workbench.solvers.eels.common.ratio_fit`), its windows found on the mean
    reconstruction in the edge window. None when no two white lines are found there (an edge
    without them), unless ``required`` (the chosen score), which raises the InputError."""
    e = prep.energy
    lo, hi = float(e[prep.edge][0]), float(e[prep.edge][-1])
    try:
        lines = C.white_line_windows(e, fit["X_hat"].mean(0), lo, hi, l3=l3, l2=l2)
    except InputError:
        if required:
            raise
        return None
    return C.ratio_fit(prep.X, fit["X_hat"], e, lines)


def _dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    """``mask`` grown by a disc of ``radius`` pixels."""
    from scipy.ndimage import binary_dilation

    r = int(np.floor(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return binary_dilation(mask, structure=yy * yy + xx * xx <= radius * radius)


REFIT_MODES = ("leave_out", "deshift")


def deshift(X: np.ndarray, energy: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Rows of ``X`` moved back by their energy shifts: out_i(E) = X_i(E + delta_i), linear
    interpolation between channels (held constant past the window's ends).

    A pixel whose edge sits delta higher than the bulk's then lines up with the bulk."""
    energy = np.asarray(energy, np.float64)
    idx = np.arange(energy.size, dtype=np.float64)
    out = np.empty_like(np.asarray(X, np.float64))
    for i, d in enumerate(np.asarray(delta, np.float64)):
        pos = np.interp(energy + d, energy, idx)
        i0 = np.clip(np.floor(pos).astype(int), 0, energy.size - 2)
        w = pos - i0
        out[i] = X[i, i0] * (1.0 - w) + X[i, i0 + 1] * w
    return out


def refit(
    prep: Prepared,
    k: int,
    poisson: bool,
    rounds: int,
    pool: float,
    score: str = "shift",
    shift_pool: str = C.DEFAULT_SHIFT_POOL,
    *,
    mode: str = "leave_out",
    dilate: float = 0.0,
    q: float = 0.999,
    l3: float | None = None,
    l2: float | None = None,
    template: str = "pca",
    trim: float = DLOAD_TRIM,
) -> tuple[dict[str, Any], C.ShiftFit, float]:
    """PCA fit and likelihood-ratio fit (``score``: "shift" or "ratio") with the anomalous region
    kept out of its own template.

    The shift (ratio) likelihood ratio compares each pixel with a shifted copy (a copy with
    white-line area moved between L3 and L2) of its rank-k reconstruction. Fitted on every pixel,
    the mean and components also describe the anomalous region (a few per cent of the map
    changed alike is a direction of variance), so an anomalous pixel's reconstruction is already
    partly anomalous and the test loses power: on validation cubes a fit without the truly
    anomalous pixels lifted the pooled shift score's ROC AUC from 0.938 to 0.985 at 0.5 eV and
    from 0.978 to 0.992 at 1 eV (0.3x dose; benchmarks/eels_refit_sweep.py,
    benchmarks/eels_template_decomp.py). Without the truth, each of ``rounds`` rounds finds the
    pixels the detector flags at its default threshold (the calibrated chi-square threshold of
    the pooled map, about 0.1 % of normal pixels), refits the PCA and rescores every pixel with
    the new reconstruction. On an anomaly-free map nothing is flagged and the fit is unchanged.

    ``mode`` = "leave_out" fits without the flagged pixels. Its price: normal pixels that are
    flagged are left out of the fit too and then fit it worse, so false alarms grow round by
    round where there are some (a drift-null validation cube: 0.32 % flagged with one fit, 0.98 %
    after two rounds). ``dilate`` (px) grows the left-out set by a disc and ``q`` sets the
    chi-square quantile of its threshold: both left at their defaults (no growth, 0.999), since
    leaving more out lifted the 0.5 eV validation AUC by at most 0.011 but flagged 3-5 % of a
    null cube (benchmarks/eels_refit_dilate_sweep.py).

    ``mode`` = "deshift" (shift score only) keeps every pixel in the fit but moves each flagged
    pixel's spectrum back by its pooled common-shift estimate (:func:`deshift`,
    :func:`workbench.solvers.eels.common.pool_shift_glr`) before fitting: the shifted region
    then looks like the bulk to the PCA, and a falsely flagged normal pixel, moved by its small
    spurious shift, stays in its own template.

    ``template`` (leave_out only): every fit is :func:`fit_template` of that kind ("pca" or
    "dload", whose shift loading is trimmed by ``trim``).

    Returns (fit, likelihood-ratio fit, fraction of pixels flagged in the last round).
    """
    if score not in C.LR_SCORES:
        raise InputError(f"refit needs a likelihood-ratio score ({', '.join(C.LR_SCORES)})")
    if mode not in REFIT_MODES or (mode == "deshift" and score != "shift"):
        raise InputError(f"refit mode must be one of {', '.join(REFIT_MODES)} (deshift: shift)")

    def lr_fit(fit):
        if score == "shift":
            return shift_scores(prep, fit)
        return ratio_scores(prep, fit, l3, l2, required=True)

    if template != "pca" and mode != "leave_out":
        raise InputError("refit mode deshift needs the pca template")

    def tfit(rows=None):
        return fit_template(prep, k, poisson, template, rows, trim, pool)

    fit = tfit()
    lfit = lr_fit(fit)
    left_out = 0.0
    for _ in range(rounds):
        sf, rf = (lfit, None) if score == "shift" else (None, lfit)
        smap, null_pool, _ = C.detector_map(score, lfit.lr, prep.shape, pool, shift_pool, sf, rf)
        if q == 0.999:
            flagged = C.threshold(smap, "auto", score, null_pool)["mask"]
        else:
            flagged = smap > C.calibrated_threshold(smap, q=q, pool=null_pool)
        if dilate > 0 and flagged.any():
            flagged = _dilate(flagged, dilate)
        flagged = flagged.ravel()
        # keep at least k + 2 pixels (a rank-k fit of fewer reproduces them exactly)
        if not flagged.any() or (~flagged).sum() < k + 2:
            break
        left_out = float(flagged.mean())
        if mode == "deshift":
            if pool > 0 and shift_pool == "common":
                ll = lfit.ll.reshape(*prep.shape, -1)
                delta = C.pool_shift_glr(ll, lfit.deltas, pool)[1].ravel()
            else:
                delta = lfit.best.ravel()
            Xd = prep.X.copy()
            Xd[flagged] = deshift(prep.X[flagged], prep.energy, delta[flagged])
            fit = fit_transform(prep.X, k, poisson, ref=Xd)
        else:
            fit = tfit(~flagged)
        lfit = lr_fit(fit)
    return fit, lfit, left_out


def package(
    problem: Any,
    prep: Prepared,
    fit: dict[str, Any],
    score: np.ndarray,
    threshold: str,
    *,
    t0: float,
    seed: int,
    extra_scores: dict[str, np.ndarray],
    status: str = "converged",
    iterations: int = 1,
    history: dict[str, list[float]] | None = None,
    meta: dict[str, Any] | None = None,
    message: str = "",
    pool: float = 0.0,
    shift_pool: str = C.DEFAULT_SHIFT_POOL,
    sfit: C.ShiftFit | None = None,
    rfit: C.ShiftFit | None = None,
) -> Result:
    """Result of a PCA detector: the chosen ``score`` pooled over ``pool`` pixels
    (:func:`workbench.solvers.eels.common.detector_map`: the shift score as the likelihood ratio
    of a common shift, or averaged, by ``shift_pool``) and thresholded; ``extras['score_*']``
    hold every score per pixel (unpooled), ``extras['shift_common']`` the common-shift map;
    ``sfit``: the shift fit of ``fit`` when the caller already has it; ``rfit``: the white-line
    ratio fit (:func:`ratio_scores`), which the ratio score needs for its pooling."""
    ny, nx = prep.shape
    if sfit is None:
        sfit = shift_scores(prep, fit)
    name = (meta or {}).get("score", "")
    smap, null_pool, common = C.detector_map(name, score, (ny, nx), pool, shift_pool, sfit, rfit)
    extras, metrics = C.finish(smap, problem, threshold, name, null_pool)
    ratio = C.explained_variance_ratio(fit["sv"])
    extras.update(
        {
            "scree": ratio[:30].tolist(),
            "elbow": C.elbow(ratio),
            "components": fit["V"].astype(np.float32),
            "component_energy": prep.energy.astype(np.float32),
            "component_maps": np.moveaxis(fit["z"].reshape(ny, nx, -1), -1, 0).astype(np.float32),
            "reconstruction": fit["X_hat"][:, prep.edge].reshape(ny, nx, -1).astype(np.float32),
            "recon_energy": prep.energy[prep.edge].astype(np.float32),
        }
    )
    extra_scores = dict(extra_scores)
    if "nll" not in extra_scores:
        e = prep.edge
        extra_scores["nll"] = SP.poisson_deviance(prep.X[:, e], fit["X_hat"][:, e])
    if prep.drift is not None:
        extras["drift_map"] = prep.drift.astype(np.float32)
    message = "; ".join(m for m in (prep.note, message) if m)
    extra_scores.setdefault("shift", sfit.lr)
    extras["shift_estimate"] = sfit.best.reshape(ny, nx).astype(np.float32)
    if common is not None:
        extras["shift_common"] = common.astype(np.float32)
    if rfit is not None:
        extra_scores.setdefault("ratio", rfit.lr)
        # the maximising L3/L2 ratio factor of each pixel (1 = the template's ratio)
        extras["ratio_estimate"] = np.exp(rfit.best).reshape(ny, nx).astype(np.float32)
        if pool > 0 and shift_pool == "common":
            rc = C.pool_shift_glr(rfit.ll.reshape(ny, nx, -1), rfit.deltas, pool)[0]
            extras["ratio_common"] = rc.astype(np.float32)
    for name, s in extra_scores.items():
        extras[f"score_{name}"] = s.reshape(ny, nx).astype(np.float32)
    m = {
        "seed": seed,
        "wall_s": time.perf_counter() - t0,
        "versions": versions(),
        "k": fit["k"],
        "pool": float(pool),
        "shift_pool": shift_pool,
    }
    m.update(meta or {})
    if prep.gain is not None:
        metrics.update(prep.gain)
        m.update(prep.gain)
    return Result(
        output=smap.astype(np.float64),
        kind="score_map",
        status=status,
        iterations=iterations,
        metrics=metrics,
        history=history or {},
        extras=extras,
        meta=m,
        message=message,
    )
