"""Local refinement of a lookup's answer by a few forward solves (option ``refine`` of the lookups).

Why. The translation-aligned re-rank (:mod:`workbench.solvers.tumor.align`) returns the best of a
handful of database entries with their seeds moved: its (DT, mu) are still those of a database
entry, ~1.4 apart in log DT and log mu at N = 5 000, and the seed is moved by whole voxels. On
patients unlike the database (the model-mismatch arm of issue 20) the best entry can then sit
0.05 Dice below what an optimiser over the forward model finds. A short local search started at
that answer closes most of the gap for a small, fixed number of forward solves.

The search is over x = (seed_x, seed_y, seed_z [mm], a, b) with

    a = log sqrt(DT mu)  (log of half the distance 2 sqrt(D rho) T the front travels),
    b = log sqrt(DT / mu) (log of the infiltration length sqrt(D / rho)),

coordinates that decouple the tumour's size (a) from the steepness of its profile, i.e. the
ratio of its WT and TC volumes (b); in (log DT, log mu) the score has a diagonal ridge, along
which a compass search crawls (on a planted 32^3 case it reached 1.80 instead of 1.94 in 80
solves). x is scaled by the initial steps s = (h, h, h, s_a, s_b) (h the database grid spacing),
and the search maximises the lookup's own score

    S(x) = w_WT Dice(u_x >= theta_WT, WT) + w_TC Dice(u_x >= theta_TC, TC),

u_x the forward solution on the database grid (the database's model: atlas, R, Gaussian seed,
discretisation). (DT, mu) stay in the prior box DT in [1, 2250] mm^2, mu in [0.1, 300], the
seed within 8 voxels of the start along each axis.

- ``pattern``: compass search (Kolda, Lewis & Torczon, SIAM Review 45(3), 2003). Each poll
  simulates the 2 x 5 points x +- s_k e_k as one batch; the best of them replaces x if it
  raises S, otherwise every step is halved. Deterministic.
- ``cmaes``: CMA-ES (package ``cmaes``) with mean x, sigma 1 in the scaled coordinates,
  population 8, a fixed seed.

Both stop before a poll or generation would exceed ``budget`` forward solves, so the budget is
a hard cap, and nothing in a run depends on the budget before that point: the run with budget B
is the first polls of any longer run (a validation sweep reads one long run at several budgets).
The answer is the best simulated point (or the start, if none beats it): always a real forward
solution of the database's model, with the seed as simulated (snapped to tissue like every seed).
"""

from __future__ import annotations

import time

import numpy as np

from workbench.physics.tumor.metrics import dice_from_counts
from workbench.solvers.tumor.database import DT_BOX, MU_BOX

METHODS = ("none", "pattern", "cmaes")
#: how far (database voxels, per axis) the refinement may move the seed from the start
SEED_BOX_VOX = 8.0


def local_refine(
    model,
    wt: np.ndarray,
    tc: np.ndarray,
    start: dict,
    theta_wt: float,
    theta_tc: float,
    w_wt: float = 1.0,
    w_tc: float = 1.0,
    method: str = "pattern",
    budget: int = 90,
    step_log: tuple[float, float] = (0.6, 0.6),
    seed: int = 0,
    progress=None,
) -> dict:
    """Refine ``start`` by a local search over the seed and log (DT, mu) (module docstring).

    Parameters
    ----------
    model : :class:`~workbench.physics.tumor.forward.AtlasModel` on the grid of ``wt``/``tc``.
    wt, tc : (n, n, n) bool, the patient's masks on that grid.
    start : dict with ``DT_mm2``, ``mu``, ``seed_mm`` and its ``score``, ``dice_wt``,
        ``dice_tc`` (the score of that very forward solution), optionally its density ``u``.
    method : "pattern" (compass search) or "cmaes".
    budget : forward solves at most.
    step_log : initial steps (s_a, s_b) of a = log sqrt(DT mu) and b = log sqrt(DT / mu); the
        seed's is the grid spacing.
    seed : RNG seed of ``cmaes`` (``pattern`` draws nothing).

    Returns
    -------
    dict with ``DT_mm2``, ``mu``, ``seed_mm``, ``score``, ``dice_wt``, ``dice_tc``, ``u`` (None
    if the start was kept and had none), ``improved``, ``evals`` (forward solves spent, <=
    budget), ``wall_s`` and ``trace``: (evals, best score so far) after each poll/generation.
    """
    from workbench.progress import ensure

    if method not in METHODS[1:]:
        raise ValueError(f"method must be one of {METHODS[1:]}, not {method!r}")
    progress = ensure(progress)
    t0 = time.perf_counter()
    h = float(model.atlas.h)
    scale = np.array([h, h, h, float(step_log[0]), float(step_log[1])])
    s0 = np.asarray(start["seed_mm"], dtype=np.float64)
    # a local search: the seed stays within SEED_BOX_VOX voxels of the start
    s_lo, s_hi = s0 - SEED_BOX_VOX * h, s0 + SEED_BOX_VOX * h
    l_lo = np.log([DT_BOX[0], MU_BOX[0]])
    l_hi = np.log([DT_BOX[1], MU_BOX[1]])

    def to_x(seed_mm, log_dt, log_mu):
        ld, lm = np.clip(log_dt, l_lo[0], l_hi[0]), np.clip(log_mu, l_lo[1], l_hi[1])
        return np.c_[np.clip(seed_mm, s_lo, s_hi), 0.5 * (ld + lm), 0.5 * (ld - lm)]

    def legal(X):
        """X (scaled) -> unscaled points inside the seed box and the (DT, mu) prior box."""
        P = np.atleast_2d(X) * scale
        return to_x(P[:, :3], P[:, 3] + P[:, 4], P[:, 3] - P[:, 4])

    x0 = to_x(s0[None], np.log(start["DT_mm2"]), np.log(start["mu"]))[0]
    wt_f, tc_f = np.asarray(wt, bool).ravel(), np.asarray(tc, bool).ravel()
    p_wt, p_tc = int(wt_f.sum()), int(tc_f.sum())
    best = {
        "x": x0,
        "score": float(start["score"]),
        "dice_wt": float(start["dice_wt"]),
        "dice_tc": float(start["dice_tc"]),
        "u": start.get("u"),
        "seed_mm": np.asarray(start["seed_mm"], dtype=np.float64),
    }
    state = {"evals": 0, "trace": []}

    def evaluate(X: np.ndarray) -> np.ndarray:
        """Scores of the points X (scaled coordinates), one batch of forward solves; updates best."""
        P = legal(X)
        sim = model.simulate(np.exp(P[:, 3] + P[:, 4]), np.exp(P[:, 3] - P[:, 4]), P[:, :3])
        u = sim["u"].reshape(len(P), -1)
        sw, st = u >= theta_wt, u >= theta_tc
        dw = dice_from_counts((sw & wt_f).sum(1), sw.sum(1), p_wt)
        dt = dice_from_counts((st & tc_f).sum(1), st.sum(1), p_tc)
        sc = w_wt * dw + w_tc * dt
        state["evals"] += len(P)
        j = int(np.argmax(sc))
        # strictly better only: ties keep the earlier point (the start first), so the answer
        # moves away from the lookup's choice only for a real gain
        if sc[j] > best["score"] + 1e-12:
            best.update(
                x=P[j].copy(),
                score=float(sc[j]),
                dice_wt=float(dw[j]),
                dice_tc=float(dt[j]),
                u=sim["u"][j],
                seed_mm=np.asarray(sim["seed_mm"][j], dtype=np.float64),
            )
        state["trace"].append((state["evals"], best["score"]))
        return sc

    z = x0 / scale
    if method == "pattern":
        dirs = np.concatenate([np.eye(5), -np.eye(5)])
        step = np.ones(5)
        k = 0
        while state["evals"] + len(dirs) <= budget:
            k += 1
            progress.note(f"refining the match: poll {k}, {len(dirs)} forward solves")
            f_before = best["score"]
            evaluate(z + dirs * step)
            if best["score"] > f_before:
                z = best["x"] / scale
            else:
                step = step / 2.0
    else:
        from cmaes import CMA

        # box of the scaled coordinates: the seed box and the (a, b) hull of the prior box;
        # points outside the prior box itself are mapped into it by legal()
        a_b = np.array([[l_lo.sum(), l_hi.sum()], [l_lo[0] - l_hi[1], l_hi[0] - l_lo[1]]]) / 2
        opt = CMA(
            mean=z.copy(),
            sigma=1.0,
            bounds=np.r_[np.c_[s_lo, s_hi], a_b] / scale[:, None],
            population_size=8,
            seed=int(seed),
        )
        g = 0
        while state["evals"] + opt.population_size <= budget:
            g += 1
            progress.note(
                f"refining the match: generation {g}, {opt.population_size} forward solves"
            )
            X = np.array([opt.ask() for _ in range(opt.population_size)])
            sc = evaluate(X)
            opt.tell([(X[i], -float(sc[i])) for i in range(len(X))])
    improved = best["score"] > float(start["score"]) + 1e-12
    return {
        "DT_mm2": float(np.exp(best["x"][3] + best["x"][4])),
        "mu": float(np.exp(best["x"][3] - best["x"][4])),
        "seed_mm": best["seed_mm"],
        "score": best["score"],
        "dice_wt": best["dice_wt"],
        "dice_tc": best["dice_tc"],
        "u": best["u"],
        "improved": bool(improved),
        "evals": int(state["evals"]),
        "wall_s": time.perf_counter() - t0,
        "trace": state["trace"],
    }
