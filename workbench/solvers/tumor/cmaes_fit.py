"""CMA-ES over the forward model: the optimisation baseline the database lookup is measured against.

Search space: 5 coordinates in [0, 1] (seed relative to the white-matter bounding box, then
log(D_w T) and log(rho T) over the prior bounds); T is fixed at T_ref. Objective: the same score
as the lookup (w_wt Dice_WT + w_tc Dice_TC of the thresholded forward solution). Each generation
(population 8 by default) is simulated as one batch. One restart from the best point after
``patience`` generations without improvement. One step = one generation.

Option ``prior``: the initial mean and step sizes come from the database instead of the fixed
sigma0 around the prior medians (:func:`database_prior`), so that CMA-ES starts from what the
lookup's database knows - the fair baseline against which the lookup's speed-up is stated.
Nothing in a run depends on ``max_iter`` (the restart rule counts stalled generations), so the
first g generations of a long run are exactly the run with ``max_iter = g``: a budget sweep
reads one long run's best-so-far.
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
    prior: bool = param(
        False,
        "initial mean and per-coordinate step sizes from the database's entries of the "
        "patient's WT/TC volumes (off: TC centre of mass, prior medians, sigma0)",
    )
    db: str = param("", "database of the prior (empty: the shipped 64^3 database)", advanced=True)
    prior_k: int = param(
        200,
        "database entries nearest in volume that set the prior",
        min=10,
        max=5000,
        advanced=True,
    )


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


def database_prior(db, wt: np.ndarray, tc: np.ndarray, h: float, lo, hi, k: int = 200) -> dict:
    r"""Initial CMA-ES mean and per-coordinate standard deviations from a lookup database.

    The ``k`` accepted entries closest to the patient in volume,
    d_i = |log((V_WT,i + v)/(V_WT + v))| + |log((V_TC,i + v)/(V_TC + v))| (v = one database
    voxel), give the parameter prior: the median and standard deviation of their normalised
    (log D_w T, log rho T) coordinates. The seed prior is the patient's WT centroid plus the
    median offset (seed - WT centroid) of the same entries, with the offsets' standard
    deviation: the database says how far a seed sits from the visible tumour of that size.
    Standard deviations are clipped to [0.02, 0.3] (normalised units).

    Returns ``param_mean`` (2,), ``std`` (5,) and the median seed ``offset`` (3,) in the
    solver's normalised coordinates, the entries' ``rows`` and the patient's ``centroid_vox``.
    """
    from workbench.solvers.tumor.align import wt_centroids

    v = db.h**3 / 1000.0  # cm^3 of one database voxel
    p_wt = float(wt.sum()) * h**3 / 1000.0
    p_tc = float(tc.sum()) * h**3 / 1000.0
    d = np.abs(np.log((db.wt_count * v + v) / (p_wt + v))) + np.abs(
        np.log((db.tc_count * v + v) / (p_tc + v))
    )
    rows = np.argsort(d, kind="stable")[: int(min(k, db.n_ok))]
    P = db.row_params(rows)
    a = (np.log(P["DT_mm2"]) - LOG_DT[0]) / (LOG_DT[1] - LOG_DT[0])
    b = (np.log(P["mu"]) - LOG_MU[0]) / (LOG_MU[1] - LOG_MU[0])
    atlas = db.atlas
    cen = atlas.voxel_to_world(wt_centroids(db, rows))
    off = (np.asarray(P["seed_mm"], dtype=np.float64) - cen) / (hi - lo)
    std = np.r_[off.std(0), a.std(), b.std()]
    return {
        "param_mean": np.array([np.median(a), np.median(b)]),
        "std": np.clip(std, 0.02, 0.3),
        "offset": np.median(off, 0),
        "rows": rows,
        "centroid_vox": np.argwhere(wt).mean(0) if wt.any() else None,
    }


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
    sigma, cov = params.sigma0, None
    prior_info = None
    if params.prior:
        from workbench.solvers.tumor.database import open_db

        try:
            db = open_db(params.db or None)
        except OSError as exc:
            from workbench.errors import InputError

            raise InputError(f"cannot open tumour database {params.db!r}: {exc}") from None
        pr = database_prior(db, wt, tc, atlas.h, lo, hi, params.prior_k)
        if pr["centroid_vox"] is not None:
            cen = (atlas.voxel_to_world(pr["centroid_vox"]) - lo) / (hi - lo)
            if not params.init:  # a warm start keeps its own mean, takes the prior's spread
                x0 = np.clip(np.r_[cen + pr["offset"], pr["param_mean"]], 0.0, 1.0)
        # CMA-ES's C = sigma^2 cov: sigma the geometric mean of the prior's spreads, cov their shape
        sigma = float(np.exp(np.log(pr["std"]).mean()))
        cov = np.diag((pr["std"] / sigma) ** 2)
        prior_info = {"mean": x0.tolist(), "std": pr["std"].tolist(), "k": int(pr["rows"].size)}
    gen_seed = int(np.random.default_rng(params.seed).integers(2**31 - 1))

    def make(mean, s):
        return CMA(
            mean=np.asarray(mean, dtype=np.float64),
            sigma=sigma,
            bounds=np.array([[0.0, 1.0]] * 5),
            population_size=params.population,
            seed=s,
            cov=cov,
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
            "prior": prior_info,
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
