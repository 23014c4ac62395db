"""CMA-ES over the forward model: the optimisation baseline the database lookup is measured against.

Search space: 5 coordinates in [0, 1] (seed relative to the white-matter bounding box, then
log(D_w T) and log(rho T) over the prior bounds); T is fixed at T_ref. Objective: the same score
as the lookup (w_wt Dice_WT + w_tc Dice_TC of the thresholded forward solution). Each generation
(population 8 by default) is simulated as one batch. One restart from the best point after
``patience`` generations without improvement. One step = one generation.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from workbench.physics.tumor.forward import atlas_model, rerun
from workbench.physics.tumor.metrics import dice_from_counts, match_metrics
from workbench.progress import ensure
from workbench.registry import SolverSpec, param
from workbench.result import Result
from workbench.solvers.tumor.common import identifiable, masks_on_grid, seed_metrics

LOG_DT = (math.log(1.0), math.log(2250.0))
LOG_MU = (math.log(0.1), math.log(300.0))


@dataclass(frozen=True)
class Params:
    max_iter: int = param(25, "generations (forward runs = max_iter x population)", min=1, max=1000)
    population: int = param(8, "CMA-ES population size", min=4, max=64)
    sigma0: float = param(0.15, "initial step size (normalised coordinates)", min=0.01, max=0.5)
    grid: int = param(
        48, "grid of the forward solves (cells per axis)", choices=(32, 48, 64, 96, 128)
    )
    theta_wt: float = param(
        0.25, "visibility threshold of the whole tumour (FLAIR)", min=0.01, max=0.99
    )
    theta_tc: float = param(
        0.675, "visibility threshold of the tumour core (T1-Gd)", min=0.01, max=0.99
    )
    w_wt: float = param(1.0, "weight of Dice WT", min=0.0, max=10.0, advanced=True)
    w_tc: float = param(1.0, "weight of Dice TC", min=0.0, max=10.0, advanced=True)
    patience: int = param(
        10, "generations without improvement before the one restart", min=1, max=1000, advanced=True
    )
    R: float = param(10.0, "white/grey diffusivity ratio", min=1.0, max=100.0, advanced=True)
    init: str = param(
        "",
        "warm start 'DT_mm2,mu,x,y,z' (e.g. the lookup's top-1); empty: TC centre of mass + prior medians",
        advanced=True,
    )
    seed: int = param(0, "random seed")


def _decode(
    x: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.clip(np.atleast_2d(x), 0.0, 1.0)
    seeds = lo + x[:, 0:3] * (hi - lo)
    DT = np.exp(LOG_DT[0] + x[:, 3] * (LOG_DT[1] - LOG_DT[0]))
    mu = np.exp(LOG_MU[0] + x[:, 4] * (LOG_MU[1] - LOG_MU[0]))
    return DT, mu, seeds


def _encode(DT: float, mu: float, seed_mm, lo, hi) -> np.ndarray:
    s = (np.asarray(seed_mm, dtype=np.float64) - lo) / (hi - lo)
    a = (math.log(DT) - LOG_DT[0]) / (LOG_DT[1] - LOG_DT[0])
    b = (math.log(mu) - LOG_MU[0]) / (LOG_MU[1] - LOG_MU[0])
    return np.clip(np.concatenate([s, [a, b]]), 0.0, 1.0)


def solve(problem, params: Params, progress=None) -> Result:
    from cmaes import CMA

    progress = ensure(progress)
    t0 = time.perf_counter()
    model = atlas_model(params.grid, params.R)
    atlas = model.atlas
    wt, tc = masks_on_grid(problem, atlas.n, atlas.affine)
    p_wt, p_tc = int(wt.sum()), int(tc.sum())
    region = atlas.wm >= 0.5
    idx = np.argwhere(region)
    lo = atlas.voxel_to_world(idx.min(0) - 0.5)
    hi = atlas.voxel_to_world(idx.max(0) + 0.5)
    if params.init:
        try:
            v = [float(t) for t in params.init.split(",")]
            x0 = _encode(v[0], v[1], v[2:5], lo, hi)
        except (ValueError, IndexError):
            from workbench.errors import InputError

            raise InputError("init must be 'DT_mm2,mu,x,y,z'") from None
    else:
        ref = tc if p_tc else wt
        com = atlas.voxel_to_world(np.argwhere(ref).mean(0)) if ref.any() else 0.5 * (lo + hi)
        x0 = _encode(math.sqrt(1.0 * 2250.0), math.sqrt(0.1 * 300.0), com, lo, hi)
    gen_seed = int(np.random.default_rng(params.seed).integers(2**31 - 1))

    def make(mean, s):
        return CMA(
            mean=np.asarray(mean, dtype=np.float64),
            sigma=params.sigma0,
            bounds=np.array([[0.0, 1.0]] * 5),
            population_size=params.population,
            seed=s,
        )

    opt = make(x0, gen_seed)
    wt_f, tc_f = wt.ravel(), tc.ravel()

    def evaluate(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        DT, mu, seeds = _decode(X, lo, hi)
        st = np.array([model.solver.steps(a, b) for a, b in zip(DT, mu, strict=True)])
        order = np.argsort(-st, kind="stable")
        sim = model.simulate(DT[order], mu[order], seeds[order])
        u = sim["u"][np.argsort(order)].reshape(len(X), -1)
        sw, stc = u >= params.theta_wt, u >= params.theta_tc
        dw = dice_from_counts((sw & wt_f).sum(1), sw.sum(1), p_wt)
        dt = dice_from_counts((stc & tc_f).sum(1), stc.sum(1), p_tc)
        return params.w_wt * dw + params.w_tc * dt, dw, dt

    best = {"score": -np.inf, "x": x0, "dw": 0.0, "dt": 0.0}
    hist = {
        "step": [],
        "evals": [],
        "time": [],
        "best_score": [],
        "best_dice_wt": [],
        "best_dice_tc": [],
        "gen_best": [],
    }
    evals = 0
    stall = 0
    restarted = False
    status = "max_iter"
    k = 0
    for k in range(1, params.max_iter + 1):
        X = np.array([opt.ask() for _ in range(opt.population_size)])
        sc, dw, dt = evaluate(X)
        evals += len(X)
        opt.tell([(X[i], -float(sc[i])) for i in range(len(X))])
        i = int(np.argmax(sc))
        if sc[i] > best["score"] + 1e-12:
            best = {"score": float(sc[i]), "x": X[i].copy(), "dw": float(dw[i]), "dt": float(dt[i])}
            stall = 0
        else:
            stall += 1
        if stall >= params.patience and not restarted:
            opt = make(best["x"], gen_seed + 1)
            restarted = True
            stall = 0
        el = time.perf_counter() - t0
        for key, val in (
            ("step", k),
            ("evals", evals),
            ("time", el),
            ("best_score", best["score"]),
            ("best_dice_wt", best["dw"]),
            ("best_dice_tc", best["dt"]),
            ("gen_best", float(sc[i])),
        ):
            hist[key].append(float(val))
        progress(
            k,
            params.max_iter,
            best_score=best["score"],
            evals=evals,
            dice_wt=best["dw"],
            dice_tc=best["dt"],
        )
        if progress.cancelled:
            status = "cancelled" if k < params.max_iter else "max_iter"
            break
    DT, mu, seeds = _decode(best["x"], lo, hi)
    DT, mu, seed = float(DT[0]), float(mu[0]), seeds[0]
    u, info = rerun(problem, DT, mu, seed, R=params.R)
    metrics = match_metrics(problem, u, params.theta_wt, params.theta_tc)
    metrics.update(seed_metrics(info.get("seed_mm", seed)))
    metrics.update(identifiable(DT, mu))
    metrics.update(
        {
            "score_best": best["score"],
            "evals": float(evals),
            "D_w_mm2_day": DT / 100.0,
            "rho_day": mu / 100.0,
            "T_day": 100.0,
            "restarted": float(restarted),
        }
    )
    wall = time.perf_counter() - t0
    return Result(
        output=u,
        kind="volume",
        status=status,
        iterations=k,
        metrics=metrics,
        history=hist,
        extras={
            "seed_mm": [float(v) for v in info.get("seed_mm", seed)],
            "estimate_top1": {**identifiable(DT, mu), "seed_mm": [float(v) for v in seed]},
            "pred_wt": (u >= params.theta_wt).astype(np.uint8),
            "pred_tc": (u >= params.theta_tc).astype(np.uint8),
        },
        meta={
            "wall_s": wall,
            "grid": params.grid,
            "seed": params.seed,
            "theta_wt": params.theta_wt,
            "theta_tc": params.theta_tc,
        },
    )


SPEC = SolverSpec(
    name="cmaes",
    domain="tumor",
    title="CMA-ES over the forward model",
    Params=Params,
    solve=solve,
    description=(
        "Covariance-matrix adaptation evolution strategy (pip 'cmaes') on the seed and the "
        "identifiable growth parameters, each generation simulated as one batch; the same "
        "Dice objective as the database lookup, a fixed budget of forward runs."
    ),
    reference="Hansen 2016 (CMA-ES tutorial); Weidner et al., arXiv:2403.04500 (CMA-ES for tumour growth)",
)
