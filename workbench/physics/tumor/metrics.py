"""Quality measures of tumour fits: Dice of masks and of a predicted density's thresholded regions."""

from __future__ import annotations

import numpy as np


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks; both empty -> 1, exactly one empty -> 0."""
    a = np.asarray(a, bool)
    b = np.asarray(b, bool)
    sa, sb = int(a.sum()), int(b.sum())
    if sa + sb == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / (sa + sb)


def dice_from_counts(inter: np.ndarray, s: np.ndarray, p: int | np.ndarray) -> np.ndarray:
    inter = np.asarray(inter, dtype=np.float64)
    den = np.asarray(s, dtype=np.float64) + np.asarray(p, dtype=np.float64)
    out = np.where(den > 0, 2.0 * inter / np.maximum(den, 1), 1.0)
    return out


def match_metrics(problem, u: np.ndarray, theta_wt: float, theta_tc: float) -> dict:
    """Dice of the predicted density's masks against the input's masks.

    ``dice_edema`` is the Dice of the whole tumour WT = {u >= theta_wt} (the FLAIR-visible
    oedema together with the core, BraTS labels 1+2+4), not of the oedema-only label 2;
    ``dice_wt`` is the same number under its spec name. ``dice_core`` is the TC Dice."""
    d_wt = dice(u >= theta_wt, problem.wt)
    d_tc = dice(u >= theta_tc, problem.tc)
    return {"dice_edema": d_wt, "dice_wt": d_wt, "dice_core": d_tc, "dice_sum": d_wt + d_tc}
