"""Quality measures of anomaly scores against a ground-truth mask: ROC and PR curves and areas,
TPR at a fixed FPR, Ashman's D of the two classes, and precision/recall/F1 of a thresholded mask."""

from __future__ import annotations

import math

import numpy as np


def ashman_d(m1: float, m2: float, s1: float, s2: float) -> float:
    return float(math.sqrt(2.0) * abs(m1 - m2) / math.sqrt(s1 * s1 + s2 * s2 + 1e-300))


def _rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x`` (flattened) with ties given their average rank; all NaN when ``x``
    holds a NaN (``scipy.stats.rankdata(x, method="average")``, whose import alone cost more
    than a PCA detector's whole run)."""
    x = np.asarray(x).ravel()
    if x.dtype.kind == "f" and np.isnan(x).any():
        return np.full(x.size, np.nan)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    new = np.r_[True, xs[1:] != xs[:-1]] if xs.size else np.zeros(0, bool)
    starts = np.flatnonzero(new)  # first sorted position of each tie group
    ends = np.r_[starts[1:], xs.size]  # one past its last
    ranks = np.empty(x.size, np.float64)
    ranks[order] = ((starts + 1 + ends) / 2.0)[np.cumsum(new) - 1]  # mean of start+1 .. end
    return ranks


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
