"""The database-lookup solve shared by ``db_lookup`` (brute force) and ``db_lookup_fast`` (PCA)."""

from __future__ import annotations

import time

import numpy as np

from workbench.errors import InputError
from workbench.physics.tumor.forward import rerun
from workbench.physics.tumor.metrics import match_metrics
from workbench.progress import ensure
from workbench.result import Result
from workbench.solvers.tumor import query as Q
from workbench.solvers.tumor.common import aggregate, identifiable, masks_on_grid, seed_metrics
from workbench.solvers.tumor.database import open_db, unpack


def warm() -> None:
    """The page's warm-up hook (``jobs.warm``): open the shipped database and load the atlas its
    aligned re-rank re-simulates on, both cached per process, so that the first lookup starts
    scoring at once (the atlas comes from its on-disk cache, :mod:`workbench.physics.tumor.atlas`,
    once a first call in this ``WORKBENCH_HOME`` has built it)."""
    from workbench.physics.tumor.forward import atlas_model

    db = open_db(None)
    atlas_model(db.grid, float(db.attrs["R"]))


def lookup_solve(problem, params, progress=None, fast: bool = False) -> Result:
    progress = ensure(progress)
    t0 = time.perf_counter()
    progress.note("opening the tumour database")
    try:
        db = open_db(params.db or None)
    except OSError as exc:
        raise InputError(f"cannot open tumour database {params.db!r}: {exc}") from None
    if db.n_ok == 0:
        raise InputError("the tumour database holds no accepted simulations")
    progress.note(f"putting the segmentation on the database's {db.grid}³ grid")
    wt, tc = masks_on_grid(problem, db.grid, db.affine)
    if not wt.any():
        raise InputError("the segmentation is empty on the database grid")
    q = Q.PatientQuery(db, wt, tc)
    t_prep = time.perf_counter() - t0
    tq = time.perf_counter()
    if fast:
        progress.note(f"shortlisting {params.shortlist} of {db.n_ok} entries (PCA embedding)")
        cand = Q.shortlist(db, q, params.shortlist)
        progress.note(f"scoring the {cand.size} shortlisted entries")
        t_short = time.perf_counter() - tq
        sc = Q.scores(
            db,
            q,
            params.method,
            params.theta_wt,
            params.theta_tc,
            params.w_wt,
            params.w_tc,
            rows=cand,
        )
        order = Q.rank(sc["score"], cand)
        rows = cand[order]
        score = sc["score"][order]
        extra = {k: v[order] for k, v in sc.items() if k != "score"}
    else:
        t_short = 0.0
        progress.note(f"scoring all {db.n_ok} database entries")
        sc = Q.scores(
            db, q, params.method, params.theta_wt, params.theta_tc, params.w_wt, params.w_tc
        )
        order = Q.rank(sc["score"])
        rows = order
        score = sc["score"][order]
        extra = {k: v[order] for k, v in sc.items() if k != "score"}
    query_s = time.perf_counter() - tq
    k = int(min(params.top_k, rows.size))
    top = rows[:k]
    P = db.row_params(top)
    tau = params.tau if params.method == "dice" else None
    agg = aggregate(P["DT_mm2"], P["mu"], P["seed_mm"], score[:k], tau)
    best = {key: v[0] for key, v in P.items()}  # rank 1: the best match, never a lower rank
    al = None
    if getattr(params, "align", False):
        from workbench.solvers.tumor.align import align_refine

        ta = time.perf_counter()
        al = align_refine(
            db,
            q,
            rows,
            params.theta_wt,
            params.theta_tc,
            params.w_wt,
            params.w_tc,
            n_sim=int(params.align_sims),
            progress=progress,
        )
        align_s = time.perf_counter() - ta
        # the returned forward solution: its own (DT, mu) and the moved seed
        best = {key: v for key, v in best.items()}
        best["DT_mm2"] = al["DT_mm2"]
        best["mu"] = al["mu"]
        best["seed_mm"] = al["seed_mm"]
        Pb = db.row_params(np.array([al["db_row"]]))
        for key in ("D_w_mm2_day", "rho_day", "T_day"):
            best[key] = Pb[key][0]
    rf = None
    refine = getattr(params, "refine", "none")
    if refine != "none":
        from workbench.physics.tumor.forward import atlas_model
        from workbench.solvers.tumor.refine import local_refine

        tr = time.perf_counter()
        if al is not None:
            start = al
        else:  # the plain rank 1: its own database masks give its Dice
            bw, bt = Q.dice_scores(db, q, rows[:1], params.theta_wt, params.theta_tc)
            start = {
                "DT_mm2": float(best["DT_mm2"]),
                "mu": float(best["mu"]),
                "seed_mm": np.asarray(best["seed_mm"], dtype=np.float64),
                "dice_wt": float(bw[0]),
                "dice_tc": float(bt[0]),
                "score": float(params.w_wt * bw[0] + params.w_tc * bt[0]),
                "u": None,
            }
        if al is None:
            progress.note("loading the brain atlas for the refinement")
        rf = local_refine(
            atlas_model(db.grid, float(db.attrs["R"])),
            q.wt,
            q.tc,
            start,
            params.theta_wt,
            params.theta_tc,
            params.w_wt,
            params.w_tc,
            method=refine,
            budget=int(params.refine_evals),
            seed=int(getattr(params, "seed", 0)),
            progress=progress,
        )
        refine_s = time.perf_counter() - tr
        if rf["improved"]:
            # (DT, mu) moved off the database entry: keep that entry's T, so that the raw
            # (D_w, rho, T) shown beside the identifiable products reproduce them
            T = float(best["T_day"])
            best = {**best, "DT_mm2": rf["DT_mm2"], "mu": rf["mu"], "seed_mm": rf["seed_mm"]}
            best["D_w_mm2_day"] = rf["DT_mm2"] / T
            best["rho_day"] = rf["mu"] / T
    est1 = identifiable(float(best["DT_mm2"]), float(best["mu"]))
    # infiltration probability on the database grid: weighted share of top-k WT masks
    w = np.asarray(agg["weights"])
    prob = np.zeros(db.grid**3, np.float32)
    prob[db.tissue_index] = (w[:, None] * unpack(db.wt[top], db.M)).sum(0)
    prob = prob.reshape((db.grid,) * 3)
    same_grid = problem.wt.shape == (db.grid,) * 3 and np.allclose(problem.affine, db.affine)
    if params.rerun and rf is not None and rf["u"] is not None and same_grid:
        # the refined choice is already a forward solution on this very grid: reuse it
        u = np.asarray(rf["u"], np.float32)
        info = {"seed_mm": [float(x) for x in rf["seed_mm"]], "reused_refined_solution": True}
    elif params.rerun and al is not None and al["u"] is not None and same_grid:
        # the aligned choice is already a forward solution on this very grid: reuse it
        u = np.asarray(al["u"], np.float32)
        info = {"seed_mm": [float(x) for x in al["seed_mm"]], "reused_aligned_solution": True}
    elif params.rerun:
        progress.note("re-running the forward model at the best match")
        u, info = rerun(
            problem,
            float(best["DT_mm2"]),
            float(best["mu"]),
            best["seed_mm"],
            R=float(db.attrs["R"]),
        )
    else:
        u, info = np.zeros(problem.wt.shape, np.float32), {}
    metrics = {}
    metrics.update(
        match_metrics(problem, u, params.theta_wt, params.theta_tc) if params.rerun else {}
    )
    metrics.update(seed_metrics(best["seed_mm"]))
    metrics.update(est1)
    metrics.update(
        {
            "score_top1": float(score[0]),
            "D_w_mm2_day": float(best["D_w_mm2_day"]),
            "rho_day": float(best["rho_day"]),
            "T_day": float(best["T_day"]),
            "query_s": float(query_s),
            "shortlist_s": float(t_short),
            "prep_s": float(t_prep),
            "n_db": float(db.n_ok),
            "seed_spread_mm": agg["seed_spread_mm"],
        }
    )
    if "dice_wt" in extra:
        metrics["db_dice_edema"] = float(extra["dice_wt"][0])
        metrics["db_dice_core"] = float(extra["dice_tc"][0])
    if al is not None:
        metrics.update(
            {
                "align_improved": float(al["improved"]),
                "align_db_row": float(al["db_row"]),
                "align_offset_vox": [float(v) for v in al["offset_vox"]],
                "align_db_dice_edema": float(al["dice_wt"]),
                "align_db_dice_core": float(al["dice_tc"]),
                "align_s": float(align_s),
                "align_sims": float(al["n_sim"]),
            }
        )
    if rf is not None:
        metrics.update(
            {
                "refine_improved": float(rf["improved"]),
                "refine_db_dice_edema": float(rf["dice_wt"]),
                "refine_db_dice_core": float(rf["dice_tc"]),
                "refine_s": float(refine_s),
                "refine_evals": float(rf["evals"]),
            }
        )
    for name in ("ell_mm", "mu", "lambda_mm"):
        metrics[f"agg_{name}"] = agg[name]
        metrics[f"agg_{name}_q25"] = agg[name + "_q25"]
        metrics[f"agg_{name}_q75"] = agg[name + "_q75"]
    for i, c in enumerate("xyz"):
        metrics[f"agg_seed_{c}_mm"] = float(agg["seed_mm"][i])
    table = []
    for i in range(k):
        row = {
            "rank": i + 1,
            "db_row": int(top[i]),
            "score": float(score[i]),
            "weight": float(w[i]),
        }
        row.update(identifiable(float(P["DT_mm2"][i]), float(P["mu"][i])))
        row["seed_mm"] = [float(x) for x in P["seed_mm"][i]]
        for key in ("D_w_mm2_day", "rho_day", "T_day", "V_wt_cm3", "V_tc_cm3"):
            row[key] = float(P[key][i])
        if "dice_wt" in extra:
            row["dice_edema"] = float(extra["dice_wt"][i])
            row["dice_core"] = float(extra["dice_tc"][i])
        table.append(row)
    wall = time.perf_counter() - t0
    progress(1, 1, score=float(score[0]), dice_sum=metrics.get("dice_sum", float("nan")))
    return Result(
        output=u,
        kind="volume",
        status="converged",
        iterations=1,
        metrics=metrics,
        history={
            "step": [1.0],
            "time": [wall],
            "dice_sum": [metrics.get("dice_sum", float("nan"))],
        },
        extras={
            "seed_mm": [float(x) for x in best["seed_mm"]],
            "estimate_top1": {**est1, "seed_mm": [float(x) for x in best["seed_mm"]]},
            "align": None
            if al is None
            else {k: v for k, v in al.items() if k != "u" and not isinstance(v, np.ndarray)}
            | {"seed_mm": [float(x) for x in al["seed_mm"]]},
            "refine": None
            if rf is None
            else {
                "method": refine,
                "evals": rf["evals"],
                "improved": rf["improved"],
                "score": rf["score"],
                "trace": [[float(e), float(b)] for e, b in rf["trace"]],
            },
            "estimate_topk": {kk: vv for kk, vv in agg.items() if kk != "weights"},
            "topk": table,
            "db": db.summary(),
            "rerun": info,
            "infiltration_probability": prob
            if prob.shape == problem.wt.shape
            else np.zeros(0, np.float32),
            "pred_wt": (u >= params.theta_wt).astype(np.uint8),
            "pred_tc": (u >= params.theta_tc).astype(np.uint8),
        },
        meta={
            "wall_s": wall,
            "db_hash": db.hash,
            "db_path": str(db.path),
            "method": params.method,
            "theta_wt": params.theta_wt,
            "theta_tc": params.theta_tc,
            "fast": fast,
            "align": bool(al is not None),
            "refine": refine,
        },
    )
