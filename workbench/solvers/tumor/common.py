"""Shared pieces of the tumour solvers: scores, top-k aggregation, the final re-run, Result."""

from __future__ import annotations

import time
from functools import lru_cache

import numpy as np

from workbench.physics.tumor.atlas import block_mean, load_atlas, resample_occupancy


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


@lru_cache(maxsize=3)
def atlas_model(n: int, R: float = 10.0, sigma_mm: float = 3.0, amplitude: float = 0.5):
    from workbench.physics.tumor.forward import AtlasModel

    return AtlasModel(
        load_atlas(int(n), with_t1=False), R=R, sigma_mm=sigma_mm, amplitude=amplitude
    )


def rerun(
    problem, DT: float, mu: float, seed_mm, R: float = 10.0, grid: int = 0
) -> tuple[np.ndarray, dict]:
    """Re-simulate a parameter set on the problem's grid (or ``grid``) -> density on problem grid."""
    n = int(grid or problem.grid_n)
    model = atlas_model(n, R)
    sim = model.simulate([DT], [mu], [seed_mm])
    u = sim["u"][0]
    if n != problem.grid_n or not np.allclose(model.atlas.affine, problem.affine):
        from workbench.physics.tumor.atlas import resample_linear

        u = resample_linear(u, model.atlas.affine, problem.wt.shape, problem.affine)
    return u.astype(np.float32), {
        "n_steps": int(sim["n_steps"][0]),
        "snapped": bool(sim["snapped"][0]),
        "seed_mm": sim["seed_mm"][0].tolist(),
        "sim_wall_s": sim["wall_s"],
    }


def match_metrics(problem, u: np.ndarray, theta_wt: float, theta_tc: float) -> dict:
    """Dice of the predicted density's masks against the input's masks.

    ``dice_edema`` is the Dice of the whole tumour WT = {u >= theta_wt} (the FLAIR-visible
    oedema together with the core, BraTS labels 1+2+4), not of the oedema-only label 2;
    ``dice_wt`` is the same number under its spec name. ``dice_core`` is the TC Dice."""
    d_wt = dice(u >= theta_wt, problem.wt)
    d_tc = dice(u >= theta_tc, problem.tc)
    return {"dice_edema": d_wt, "dice_wt": d_wt, "dice_core": d_tc, "dice_sum": d_wt + d_tc}


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
