"""Shared pieces of the tumour solvers: scores, top-k aggregation, the final re-run, Result."""

from __future__ import annotations

import time

import numpy as np

from workbench.physics.tumor.atlas import block_mean, resample_occupancy


def weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    o = np.argsort(x)
    x, w = x[o], w[o]
    c = np.cumsum(w) - 0.5 * w
    c /= w.sum()
    return float(np.interp(q, c, x))


def aggregate(
    DT: np.ndarray, mu: np.ndarray, seeds: np.ndarray, scores: np.ndarray, tau: float | None
) -> dict:
    """Top-k aggregation: weighted medians of log ell, log mu, log lambda; weighted mean seed.

    Weights exp((S_i - S_1)/tau) (``tau=None``: uniform). IQRs give the uncertainty band."""
    scores = np.asarray(scores, dtype=np.float64)
    w = np.ones_like(scores) if tau is None else np.exp((scores - scores.max()) / tau)
    w = w / w.sum()
    ell = np.log(np.sqrt(DT))
    lmu = np.log(mu)
    lam = np.log(np.sqrt(np.asarray(DT) / np.asarray(mu)))
    out = {}
    for name, v in (("ell_mm", ell), ("mu", lmu), ("lambda_mm", lam)):
        out[name] = float(np.exp(weighted_quantile(v, w, 0.5)))
        out[name + "_q25"] = float(np.exp(weighted_quantile(v, w, 0.25)))
        out[name + "_q75"] = float(np.exp(weighted_quantile(v, w, 0.75)))
    seeds = np.asarray(seeds, dtype=np.float64)
    m = (w[:, None] * seeds).sum(0)
    out["seed_mm"] = m.tolist()
    out["seed_spread_mm"] = float(np.sqrt((w * ((seeds - m) ** 2).sum(1)).sum()))
    out["weights"] = w.tolist()
    return out


def identifiable(DT: float, mu: float) -> dict:
    return {"ell_mm": float(np.sqrt(DT)), "mu": float(mu), "lambda_mm": float(np.sqrt(DT / mu))}


def masks_on_grid(problem, n: int, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The problem's WT/TC masks on another grid (occupancy >= 0.5), or as is when identical."""
    if problem.wt.shape == (n, n, n) and np.allclose(problem.affine, affine):
        return problem.wt.astype(bool), problem.tc.astype(bool)
    wt = resample_occupancy(problem.wt, problem.affine, (n, n, n), affine) >= 0.5
    tc = resample_occupancy(problem.tc, problem.affine, (n, n, n), affine) >= 0.5
    return wt | tc, tc


def seed_metrics(seed_mm) -> dict:
    """The seed position in world mm, as one vector ``seed_mm`` = [x, y, z] (the CLI contract)
    and split into scalar ``seed_x_mm``/``seed_y_mm``/``seed_z_mm`` (for plots and tables)."""
    s = np.asarray(seed_mm, dtype=np.float64)
    return {
        "seed_mm": [float(s[0]), float(s[1]), float(s[2])],
        "seed_x_mm": float(s[0]),
        "seed_y_mm": float(s[1]),
        "seed_z_mm": float(s[2]),
    }


def patient_coarse(
    wt: np.ndarray, tc: np.ndarray, f: int, cidx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Occupancy fractions of the patient's masks on coarse tissue voxels."""
    a = block_mean(wt.astype(np.float32), f).ravel()[cidx]
    b = block_mean(tc.astype(np.float32), f).ravel()[cidx]
    return a, b


class Timer:
    def __init__(self):
        self.t0 = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.t0
