"""Numerics shared by the EELS solvers: preprocessing, scores, thresholds and metrics.

Windows are always given in eV and converted through the energy axis (never channel indices).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from workbench.errors import InputError

EDGE_WINDOW = (690.0, 730.0)

# ------------------------------------------------------------------------------------------
# windows and preprocessing
# ------------------------------------------------------------------------------------------


def window(
    energy: np.ndarray, lo: float | None, hi: float | None, *, what: str = "window"
) -> slice:
    """Channel slice of energies in [lo, hi] eV; None means the end of the axis."""
    lo = energy[0] if lo is None else lo
    hi = energy[-1] if hi is None else hi
    i0 = int(np.searchsorted(energy, lo, side="left"))
    i1 = int(np.searchsorted(energy, hi, side="right"))
    if i1 - i0 < 3:
        raise InputError(
            f"{what} {lo:g}-{hi:g} eV holds {max(i1 - i0, 0)} channels of the "
            f"{energy[0]:.1f}-{energy[-1]:.1f} eV axis; choose a window inside the data"
        )
    return slice(i0, i1)


def crop(data: np.ndarray, energy: np.ndarray, lo: float | None, hi: float | None):
    sl = window(energy, lo, hi, what="energy crop")
    return data[..., sl], energy[sl]


def bin_spatial(data: np.ndarray, b: int, truth: np.ndarray | None = None):
    """Sum b x b pixel blocks (counts stay counts); a truth mask becomes 'any anomalous'."""
    if b <= 1:
        return data, truth
    ny, nx = data.shape[0] // b * b, data.shape[1] // b * b
    if ny == 0 or nx == 0:
        raise InputError(f"binning {b} is larger than the {data.shape[0]}x{data.shape[1]} map")
    d = data[:ny, :nx].reshape(ny // b, b, nx // b, b, -1).sum(axis=(1, 3))
    t = None
    if truth is not None:
        t = truth[:ny, :nx].reshape(ny // b, b, nx // b, b).mean(axis=(1, 3)) >= 0.5
    return d.astype(np.float32), t


def powerlaw_fit(data: np.ndarray, energy: np.ndarray, lo: float, hi: float):
    """Per-pixel least-squares fit of log I = log A - r log E over the pre-edge window [lo, hi].

    Returns (A, r) maps of shape data.shape[:-1].
    """
    sl = window(energy, lo, hi, what="background window")
    y = np.log(np.clip(data[..., sl].astype(np.float64), 1e-3, None))
    x = np.log(energy[sl])
    xm = x.mean()
    xc = x - xm
    slope = (y * xc).sum(-1) / (xc * xc).sum()
    intercept = y.mean(-1) - slope * xm
    return np.exp(intercept), -slope


def subtract_powerlaw(
    data: np.ndarray, energy: np.ndarray, lo: float, hi: float, zero_fill: bool = True
):
    """Fit a power law on [lo, hi] eV per pixel and subtract it over the whole range.

    Returns (subtracted, background, warnings). Channels below ``lo`` are set to 0 when
    ``zero_fill``. A warning is raised on negative pre-edge means (over-subtraction).
    """
    A, r = powerlaw_fit(data, energy, lo, hi)
    bg = A[..., None] * energy ** (-r[..., None])
    out = data - bg
    warnings = []
    sl = window(energy, lo, hi)
    pre = out[..., sl].mean(-1)
    if np.mean(pre < -0.5 * np.sqrt(np.abs(bg[..., sl]).mean(-1) + 1)) > 0.05:
        warnings.append("background over-subtracted in more than 5% of pixels (negative pre-edge)")
    post = out[..., sl.stop :]
    if post.size and np.mean(post < -2.0 * np.sqrt(np.abs(bg[..., sl.stop :]) + 1.0)) > 0.3:
        warnings.append("many negative post-edge channels: check the fit window")
    if zero_fill:
        out[..., : sl.start] = 0.0
    return out.astype(np.float32), bg.astype(np.float32), warnings


def normalise(data: np.ndarray, mode: str) -> np.ndarray:
    """'none', 'sum' (each spectrum to unit total times the mean total) or 'max'."""
    if mode == "none":
        return data
    if mode == "sum":
        s = data.sum(-1, keepdims=True)
        return (data / np.where(s == 0, 1, s) * s.mean()).astype(np.float32)
    if mode == "max":
        m = np.abs(data).max(-1, keepdims=True)
        return (data / np.where(m == 0, 1, m)).astype(np.float32)
    raise InputError(f"normalise must be none, sum or max, got {mode!r}")


def remove_spikes(data: np.ndarray, z: float = 8.0, size: int = 5):
    """Median filter along energy; residuals above a robust z threshold are replaced by the median.

    Returns (cleaned, number of replaced channels).
    """
    from scipy.ndimage import median_filter

    med = median_filter(data, size=(1, 1, size), mode="nearest")
    res = data - med
    mad = np.median(np.abs(res)) * 1.4826 + 1e-6
    noise = np.sqrt(np.clip(med, 1, None))
    scale = np.maximum(mad, noise)
    bad = res > z * scale
    out = np.where(bad, med, data).astype(np.float32)
    return out, int(bad.sum())


def poisson_normalise(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keenan-Kotula: X / (sqrt(row sums) sqrt(column sums)); returns (Xn, row, col) factors."""
    Xc = np.clip(X, 0, None)
    row = np.sqrt(Xc.sum(1))
    col = np.sqrt(Xc.sum(0))
    row = np.where(row > 0, row, 1.0)
    col = np.where(col > 0, col, 1.0)
    return X / row[:, None] / col[None, :], row, col


def anscombe(y: np.ndarray) -> np.ndarray:
    return 2.0 * np.sqrt(np.clip(y, 0, None) + 0.375)


# ------------------------------------------------------------------------------------------
# PCA
# ------------------------------------------------------------------------------------------


def pca_fit(X: np.ndarray, k: int, *, center: bool = True, seed: int = 0):
    """Truncated SVD of X (n, c): returns mean (c,), components (k, c), singular values (all).

    Uses the c x c Gram matrix (c is the small dimension for spectrum images): exact and fast.
    """
    mean = X.mean(0) if center else np.zeros(X.shape[1])
    Xc = X - mean
    G = Xc.T @ Xc
    w, V = np.linalg.eigh(G)
    order = np.argsort(w)[::-1]
    w, V = np.clip(w[order], 0, None), V[:, order]
    # fix the sign convention (largest |loading| positive) for reproducible maps
    s = np.sign(V[np.argmax(np.abs(V), axis=0), np.arange(V.shape[1])])
    V = V * np.where(s == 0, 1, s)
    return mean, V[:, :k].T.copy(), np.sqrt(w)


def explained_variance_ratio(sv: np.ndarray) -> np.ndarray:
    v = sv**2
    return v / max(v.sum(), 1e-300)


def elbow(ratio: np.ndarray, max_k: int = 20) -> int:
    """Elbow of the log explained-variance curve: the point farthest from the chord."""
    r = np.log(np.clip(ratio[:max_k], 1e-300, None))
    n = r.size
    if n < 3:
        return 1
    x = np.arange(n, dtype=float)
    p0, p1 = np.array([0, r[0]]), np.array([n - 1, r[-1]])
    d = p1 - p0
    d /= np.linalg.norm(d) + 1e-300
    pts = np.stack([x, r], 1) - p0
    dist = np.abs(pts[:, 0] * d[1] - pts[:, 1] * d[0])
    return int(np.argmax(dist)) + 1


# ------------------------------------------------------------------------------------------
# scores
# ------------------------------------------------------------------------------------------


def pearson_score(Y: np.ndarray, Yhat: np.ndarray) -> np.ndarray:
    """1 - Pearson r between observed and reconstructed spectra along the last axis."""
    a = Y - Y.mean(-1, keepdims=True)
    b = Yhat - Yhat.mean(-1, keepdims=True)
    num = (a * b).sum(-1)
    den = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    r = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
    return 1.0 - r


def poisson_deviance(Y: np.ndarray, Yhat: np.ndarray) -> np.ndarray:
    """2 sum_k [Y ln(Y/Yhat) - (Y - Yhat)] along the last axis, with 0 ln 0 = 0."""
    Y = np.clip(Y.astype(np.float64), 0, None)
    Yh = np.clip(Yhat.astype(np.float64), 1e-12, None)
    t = np.where(Y > 0, Y * np.log(np.where(Y > 0, Y, 1) / Yh), 0.0)
    return 2.0 * (t - (Y - Yh)).sum(-1)


def shift_score(Y: np.ndarray, Yhat: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Poisson score test for an energy shift of the reconstruction: z^2 with

    U = sum_k (Y_k - Yhat_k) / Yhat_k * dYhat_k/dE,  I = sum_k (dYhat_k/dE)^2 / Yhat_k,  z = U / sqrt(I).

    Under the bulk model (Y ~ Poisson(Yhat)) z is ~ N(0, 1); an edge shifted by dE gives a mean of
    about -dE sqrt(I). It targets the chemical-shift alternative, unlike the omnibus Pearson/deviance.
    """
    Yh = np.clip(np.asarray(Yhat, np.float64), 1e-9, None)
    g = np.gradient(Yh, np.asarray(energy, np.float64), axis=-1)
    U = ((np.asarray(Y, np.float64) - Yh) / Yh * g).sum(-1)
    info = (g * g / Yh).sum(-1)
    return U * U / np.maximum(info, 1e-300)


def shift_glr(
    Y: np.ndarray,
    Yhat: np.ndarray,
    energy: np.ndarray,
    lo: float,
    hi: float,
    max_shift: float = 5.0,
    step: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised likelihood ratio for an energy shift of the reconstruction.

    For each pixel the reconstruction (given on the whole ``energy`` axis) is shifted by
    delta in [-max_shift, max_shift] eV (linear interpolation), renormalised to the same total over
    the window [lo, hi] (a shape test: intensity drops out) and compared with the counts there:

        LR = 2 max_delta sum_k Y_k log(Yhat_delta,k / Yhat_0,k) >= 0,

    the Poisson (equivalently multinomial) log-likelihood gain of the best shift. Unlike the local
    score test it keeps its power for large shifts. Returns (LR, best delta in eV) maps.
    """
    energy = np.asarray(energy, np.float64)
    win = window(energy, lo, hi, what="edge window")
    e = energy[win]
    Yw = np.clip(
        np.asarray(Y, np.float64)[..., win]
        if Y.shape[-1] == energy.size
        else np.asarray(Y, np.float64),
        0,
        None,
    )
    Yh = np.clip(np.asarray(Yhat, np.float64), 1e-9, None)
    idx = np.arange(energy.size, dtype=np.float64)
    base = Yh[..., win]
    base_sum = base.sum(-1, keepdims=True)
    log0 = np.log(base / base_sum)
    best = np.zeros(Yh.shape[:-1])
    best_d = np.zeros(Yh.shape[:-1])
    n = int(round(max_shift / step))
    for d in step * np.arange(-n, n + 1):
        if d == 0:
            continue
        pos = np.interp(e - d, energy, idx)
        i0 = np.clip(np.floor(pos).astype(int), 0, energy.size - 2)
        w = np.clip(pos - i0, 0.0, 1.0)
        sh = Yh[..., i0] * (1 - w) + Yh[..., i0 + 1] * w
        ll = (Yw * (np.log(sh / sh.sum(-1, keepdims=True)) - log0)).sum(-1)
        better = ll > best
        best = np.where(better, ll, best)
        best_d = np.where(better, d, best_d)
    return 2.0 * best, best_d


# ------------------------------------------------------------------------------------------
# thresholds and bimodality
# ------------------------------------------------------------------------------------------


def _hist_range(s: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(s, [0.5, 99.5])
    if hi <= lo:
        lo, hi = float(s.min()), float(s.max()) + 1e-12
    return float(lo), float(hi)


def otsu(s: np.ndarray, bins: int = 256) -> float:
    """Plain Otsu threshold on a 256-bin histogram over the 0.5-99.5 percentile range."""
    s = np.asarray(s, np.float64).ravel()
    lo, hi = _hist_range(s)
    h, edges = np.histogram(np.clip(s, lo, hi), bins=bins, range=(lo, hi))
    c = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(h)
    w1 = w0[-1] - w0
    m0 = np.cumsum(h * c)
    mt = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        mu0 = m0 / w0
        mu1 = (mt - m0) / w1
        between = w0 * w1 * (mu0 - mu1) ** 2
    between = np.nan_to_num(between[:-1], nan=-1)
    i = int(np.argmax(between))
    return float(edges[i + 1])


def gmm2(s: np.ndarray, iters: int = 200) -> dict[str, float]:
    """Two-component 1-D Gaussian mixture by EM (deterministic init at quantiles).

    Returns means, sds, weights and the decision threshold at equal posterior between the means.
    """
    x = np.asarray(s, np.float64).ravel()
    m = np.array(np.percentile(x, [25, 97.5]))
    sd = np.full(2, x.std() / 2 + 1e-12)
    w = np.array([0.9, 0.1])
    for _ in range(iters):
        lp = np.log(w) - np.log(sd) - 0.5 * ((x[:, None] - m) / sd) ** 2
        lp -= lp.max(1, keepdims=True)
        r = np.exp(lp)
        r /= r.sum(1, keepdims=True)
        n = r.sum(0) + 1e-12
        m_new = (r * x[:, None]).sum(0) / n
        sd = np.sqrt((r * (x[:, None] - m_new) ** 2).sum(0) / n) + 1e-9 * (x.std() + 1e-12)
        w = n / n.sum()
        if np.allclose(m_new, m, rtol=1e-9, atol=1e-12):
            m = m_new
            break
        m = m_new
    order = np.argsort(m)
    m, sd, w = m[order], sd[order], w[order]
    grid = np.linspace(m[0], m[1], 2001)
    lp0 = np.log(w[0]) - np.log(sd[0]) - 0.5 * ((grid - m[0]) / sd[0]) ** 2
    lp1 = np.log(w[1]) - np.log(sd[1]) - 0.5 * ((grid - m[1]) / sd[1]) ** 2
    idx = np.nonzero(lp1 >= lp0)[0]
    thr = float(grid[idx[0]]) if idx.size else float(m[1])
    return {
        "m1": float(m[0]),
        "m2": float(m[1]),
        "s1": float(sd[0]),
        "s2": float(sd[1]),
        "w1": float(w[0]),
        "w2": float(w[1]),
        "threshold": thr,
    }


def ashman_d(m1: float, m2: float, s1: float, s2: float) -> float:
    return float(math.sqrt(2.0) * abs(m1 - m2) / math.sqrt(s1 * s1 + s2 * s2 + 1e-300))


def threshold(score: np.ndarray, method: str = "otsu") -> dict[str, Any]:
    """Binary mask from the bimodality of the score; also Ashman's D of the fitted mixture."""
    s = np.asarray(score, np.float64)
    g = gmm2(s.ravel())
    if method == "otsu":
        t = otsu(s.ravel())
    elif method == "gmm":
        t = g["threshold"]
    else:
        raise InputError(f"threshold must be otsu or gmm, got {method!r}")
    return {
        "mask": s > t,
        "threshold": float(t),
        "threshold_method": method,
        "ashman_d": ashman_d(g["m1"], g["m2"], g["s1"], g["s2"]),
        "gmm": g,
    }


# ------------------------------------------------------------------------------------------
# metrics against ground truth
# ------------------------------------------------------------------------------------------


def _rankdata(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, method="average")


def rank01(x: np.ndarray) -> np.ndarray:
    """Ranks scaled to (0, 1] (ties averaged)."""
    return _rankdata(np.asarray(x).ravel()) / max(np.size(x), 1)


def roc_auc(score: np.ndarray, truth: np.ndarray) -> float:
    """Rank-based ROC AUC (Mann-Whitney U), ties averaged."""
    s = np.asarray(score, np.float64).ravel()
    t = np.asarray(truth, bool).ravel()
    npos, nneg = int(t.sum()), int((~t).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    r = _rankdata(s)
    return float((r[t].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def roc_curve(score: np.ndarray, truth: np.ndarray):
    s = np.asarray(score, np.float64).ravel()
    t = np.asarray(truth, bool).ravel()
    order = np.argsort(-s, kind="mergesort")
    s, t = s[order], t[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp = np.cumsum(t)[distinct]
    fp = (distinct + 1) - tp
    tpr = np.r_[0, tp / max(t.sum(), 1)]
    fpr = np.r_[0, fp / max((~t).sum(), 1)]
    return fpr, tpr, np.r_[np.inf, s[distinct]]


def pr_curve(score: np.ndarray, truth: np.ndarray):
    s = np.asarray(score, np.float64).ravel()
    t = np.asarray(truth, bool).ravel()
    order = np.argsort(-s, kind="mergesort")
    s, t = s[order], t[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp = np.cumsum(t)[distinct]
    precision = tp / (distinct + 1)
    recall = tp / max(t.sum(), 1)
    return np.r_[1.0, precision], np.r_[0.0, recall]


def average_precision(score: np.ndarray, truth: np.ndarray) -> float:
    """PR AUC as average precision: sum_n (R_n - R_{n-1}) P_n."""
    t = np.asarray(truth, bool)
    if t.sum() == 0:
        return float("nan")
    p, r = pr_curve(score, truth)
    return float(np.sum(np.diff(r) * p[1:]))


def tpr_at_fpr(score: np.ndarray, truth: np.ndarray, fpr_max: float = 0.01) -> float:
    fpr, tpr, _ = roc_curve(score, truth)
    ok = fpr <= fpr_max
    return float(tpr[ok].max()) if ok.any() else 0.0


def score_metrics(
    score: np.ndarray, truth: np.ndarray | None, mask: np.ndarray | None = None
) -> dict[str, float]:
    """roc_auc, pr_auc, tpr_at_1pct_fpr, ashman_d_truth and F1/precision/recall of ``mask``."""
    if truth is None:
        return {}
    t = np.asarray(truth, bool)
    if t.shape != np.shape(score) or t.all() or not t.any():
        return {}
    s = np.asarray(score, np.float64)
    out = {
        "roc_auc": roc_auc(s, t),
        "pr_auc": average_precision(s, t),
        "tpr_at_1pct_fpr": tpr_at_fpr(s, t, 0.01),
        "ashman_d_truth": ashman_d(s[t].mean(), s[~t].mean(), s[t].std(), s[~t].std()),
    }
    if mask is not None:
        m = np.asarray(mask, bool)
        tp = float((m & t).sum())
        prec = tp / max(m.sum(), 1)
        rec = tp / max(t.sum(), 1)
        out.update(
            {"precision": prec, "recall": rec, "f1": 2 * prec * rec / max(prec + rec, 1e-12)}
        )
    out = {k: float(v) for k, v in out.items()}
    return out


# ------------------------------------------------------------------------------------------
# maps
# ------------------------------------------------------------------------------------------


def intensity_map(
    data: np.ndarray, energy: np.ndarray, lo: float | None = None, hi: float | None = None
) -> np.ndarray:
    return data[..., window(energy, lo, hi)].sum(-1)


def edge_ratio_map(
    data: np.ndarray,
    energy: np.ndarray,
    edge: tuple[float, float] = (704.0, 712.0),
    pre: tuple[float, float] = (690.0, 700.0),
) -> np.ndarray:
    """Mean counts over the edge window divided by the mean over a pre-edge window."""
    a = data[..., window(energy, *edge)].mean(-1)
    b = data[..., window(energy, *pre)].mean(-1)
    return a / np.where(b > 0, b, 1)


def centroid_map(
    data: np.ndarray, energy: np.ndarray, lo: float = 700.0, hi: float = 716.0
) -> np.ndarray:
    sl = window(energy, lo, hi)
    w = np.clip(data[..., sl].astype(np.float64), 0, None)
    return (w * energy[sl]).sum(-1) / np.clip(w.sum(-1), 1e-12, None)


def finish(score: np.ndarray, problem: Any, method: str) -> tuple[dict[str, Any], dict[str, float]]:
    """Threshold a score map; return (extras, metrics) common to every EELS solver."""
    th = threshold(score, method)
    extras = {
        "mask": th["mask"],
        "threshold": th["threshold"],
        "threshold_method": method,
        "ashman_d": th["ashman_d"],
        "gmm": th["gmm"],
    }
    metrics = {
        "threshold": th["threshold"],
        "ashman_d": th["ashman_d"],
        "flagged_fraction": float(th["mask"].mean()),
    }
    metrics.update(score_metrics(score, getattr(problem, "truth", None), th["mask"]))
    return extras, metrics
