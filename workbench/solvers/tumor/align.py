"""Translation-aligned re-rank of database matches (an option of ``db_lookup``/``db_lookup_fast``).

Why. A database of N simulations over five dimensions (seed x, y, z, ell = sqrt(DT), mu) covers
the seed worst: at N = 5 000 the seeds are ~1.5 cm apart on average, so the best entry often has
the right size and shape but sits a few voxels off, and Dice punishes that heavily. Shape
depends on the seed only slowly (tissue anisotropy), position depends on it one to one, so the
two can be separated:

1. **Shortlist** ``C`` = the top ``m_dice`` entries by the exact score (brute force or the PCA
   re-rank) plus the ``m_volume`` entries whose (V_WT, V_TC) are closest to the patient's in
   log-volume distance |log((S_WT+1)/(P_WT+1))| + |log((S_TC+1)/(P_TC+1))| (voxel counts).
2. **Align.** For each candidate i, the integer voxel offset d_i = round(c_P - c_i) between the
   WT centroids of patient and entry; shift the entry's WT/TC masks by d_i (zero fill, then
   restricted to tissue, where a real simulation must stay) and score the shifted masks with
   Dice_WT + Dice_TC.
3. **Re-simulate.** For the ``n_sim`` best shifted candidates run the forward model on the
   database grid with the candidate's (DT, mu) and its seed moved by d_i h (snapped to tissue
   like every seed). Near tissue boundaries a tumour's centroid moves less than its seed, so
   up to ``iters`` more rounds move each seed by the remaining (rounded) centroid offset of
   its simulated WT and re-simulate. Score these real solutions and return the best of them
   and of the plain rank-1 entry: always an actual forward solution, never a shifted picture.

Cost: the shortlist scoring is O(|C| n^3) voxel operations (tens of ms); the re-simulation is
at most ``n_sim (1 + iters)`` forward solves on the database grid, batched (about 0.3-2 s at
64^3 on one core).
"""

from __future__ import annotations

import numpy as np

from workbench.physics.tumor.metrics import dice
from workbench.solvers.tumor import query as Q
from workbench.solvers.tumor.database import unpack


def wt_centroids(db, rows=None, block: int = 512) -> np.ndarray:
    """WT centroids (voxel index coordinates, N x 3) of every accepted entry, or of ``rows``.

    Computed as (bits @ coords) / count on the packed tissue-voxel masks, block by block. The
    full table is cached on ``db`` (a batch of queries shares it); ``rows`` alone computes only
    those -- one query's shortlist is 100 of thousands of entries, and unpacking every mask of
    the database was most of an aligned lookup's first run."""
    cached = getattr(db, "_wt_centroid_vox", None)
    if cached is not None:
        return cached if rows is None else cached[np.asarray(rows, dtype=np.int64)]
    n = db.grid
    coords = np.stack(np.unravel_index(db.tissue_index, (n, n, n)), axis=1).astype(np.float32)
    want = np.arange(db.n_ok) if rows is None else np.asarray(rows, dtype=np.int64)
    out = np.zeros((want.size, 3), np.float64)
    for s in range(0, want.size, block):
        sel = want[s : s + block]
        packed = db.wt[s : s + block] if rows is None else db.wt[np.sort(np.unique(sel))]
        bits = unpack(packed, db.M).astype(np.float32)
        cnt = np.maximum(bits.sum(1, keepdims=True), 1.0)
        got = (bits @ coords) / cnt
        if rows is not None:  # back from sorted unique rows to the order asked for
            got = got[np.searchsorted(np.sort(np.unique(sel)), sel)]
        out[s : s + block] = got
    if rows is None:
        db._wt_centroid_vox = out
    return out


def mask_centroid(mask: np.ndarray) -> np.ndarray:
    idx = np.argwhere(mask)
    return idx.mean(0) if idx.size else np.full(3, np.nan)


def shift_mask(mask: np.ndarray, d) -> np.ndarray:
    """``out[x + d] = mask[x]`` with zero fill (no wrap-around)."""
    out = np.zeros_like(mask)
    src, dst = [], []
    for k, n in zip((int(v) for v in d), mask.shape, strict=True):
        if abs(k) >= n:
            return out
        src.append(slice(max(0, -k), n - max(0, k)))
        dst.append(slice(max(0, k), n - max(0, -k)))
    out[tuple(dst)] = mask[tuple(src)]
    return out


def volume_neighbours(db, q: Q.PatientQuery, m: int) -> np.ndarray:
    """Rows of the ``m`` entries closest to the patient in log WT/TC voxel counts."""
    d = np.abs(np.log((db.wt_count + 1.0) / (q.wt_count + 1.0))) + np.abs(
        np.log((db.tc_count + 1.0) / (q.tc_count + 1.0))
    )
    m = min(m, d.size)
    part = np.argpartition(d, m - 1)[:m] if m < d.size else np.arange(d.size)
    return part[np.lexsort((part, d[part]))]


def aligned_scores(db, q: Q.PatientQuery, rows: np.ndarray, w_wt=1.0, w_tc=1.0) -> dict:
    """Score the masks of ``rows`` after shifting each by its centroid offset to the patient.

    Returns ``offset`` (|rows| x 3 int voxels), ``score``, ``dice_wt``, ``dice_tc`` of the shifted
    masks (restricted to tissue) against the patient's masks on the database grid.

    The shifted masks are handled as lists of voxels (coordinates plus the offset; those that
    leave the grid or land outside tissue dropped), all candidates at once, so the cost is their
    total size rather than |rows| n^3 grids; the counts, hence the Dice values, are exactly those
    of shifting each full mask (``shift_mask``) and calling ``dice``."""
    rows = np.asarray(rows, dtype=np.int64)
    n = db.grid
    cp = mask_centroid(q.wt)
    cs = wt_centroids(db, rows)
    off = np.rint(cp[None, :] - cs).astype(np.int64)
    tissue = np.zeros(n**3, bool)
    tissue[db.tissue_index] = True
    coords = np.stack(np.unravel_index(db.tissue_index, (n, n, n)), axis=1).astype(np.int64)
    scores = []
    for packed, patient in ((db.wt, q.wt), (db.tc, q.tc)):
        cand, vox = np.nonzero(unpack(packed[rows], db.M))
        x = coords[vox] + off[cand]
        keep = np.all((x >= 0) & (x < n), axis=1)
        cand, x = cand[keep], x[keep]
        flat = (x[:, 0] * n + x[:, 1]) * n + x[:, 2]
        keep = tissue[flat]
        cand, flat = cand[keep], flat[keep]
        pflat = np.asarray(patient, bool).ravel()
        s_count = np.bincount(cand, minlength=rows.size)
        inter = np.bincount(cand[pflat[flat]], minlength=rows.size)
        den = s_count + int(pflat.sum())
        # dice(): 2 |S & P| / (|S| + |P|), and 1 when both are empty
        scores.append(np.where(den > 0, 2.0 * inter / np.maximum(den, 1), 1.0))
    dw, dt = scores
    return {"offset": off, "score": w_wt * dw + w_tc * dt, "dice_wt": dw, "dice_tc": dt}


def align_refine(
    db,
    q: Q.PatientQuery,
    ranked_rows: np.ndarray,
    theta_wt: float,
    theta_tc: float,
    w_wt: float = 1.0,
    w_tc: float = 1.0,
    m_dice: int = 50,
    m_volume: int = 50,
    n_sim: int = 4,
    iters: int = 2,
    model=None,
    progress=None,
) -> dict:
    """Translation-aligned refinement of a ranked lookup (see the module docstring).

    Parameters
    ----------
    ranked_rows : rows of the plain ranking, rank 1 first (any score); rank 1 is kept unless a
        re-simulated aligned candidate beats its w_WT Dice_WT + w_TC Dice_TC.
    m_dice, m_volume : sizes of the two parts of the shortlist.
    n_sim : candidates re-simulated with moved seeds.
    iters : extra rounds of centroid correction (re-simulating only candidates that still move).
    progress : a :class:`~workbench.progress.Progress` told each stage (the shortlist's
        alignment, every round of re-simulation) before it starts.

    Returns
    -------
    dict with the chosen ``DT_mm2``, ``mu``, ``seed_mm`` (of the forward solution returned),
    ``db_row`` (entry it came from), ``offset_vox``, ``score`` (its Dice_WT + Dice_TC on the
    database grid), ``dice_wt``, ``dice_tc``, ``u`` (its density on the database grid),
    ``improved`` (False when the plain rank 1 was kept) and ``n_sim``/``sim_wall_s``.
    """
    from workbench.physics.tumor.forward import atlas_model
    from workbench.progress import ensure

    progress = ensure(progress)
    ranked_rows = np.asarray(ranked_rows, dtype=np.int64)
    cand = np.concatenate([ranked_rows[:m_dice], volume_neighbours(db, q, m_volume)])
    _, first = np.unique(cand, return_index=True)
    cand = cand[np.sort(first)]
    progress.note(f"aligning {cand.size} candidates to the tumour's centroid")
    al = aligned_scores(db, q, cand, w_wt, w_tc)
    order = Q.rank(al["score"], cand)[:n_sim]
    P = db.row_params(cand[order])
    h = db.h
    # a seed moved by d voxels moves by d h mm along the axes (the database affine is diagonal)
    R = db.affine[:3, :3]
    moved = P["seed_mm"] + (al["offset"][order].astype(np.float64) @ R.T)
    if model is None:
        progress.note("loading the brain atlas for the re-simulations")
        model = atlas_model(db.grid, float(db.attrs["R"]))
    cp = mask_centroid(q.wt)
    off = al["offset"][order].copy()
    # Near tissue boundaries the tumour's centroid moves less than its seed, so the first move
    # can fall short: correct the seed by the remaining centroid offset of the simulated WT
    # and re-simulate those that moved (``iters`` rounds); keep every simulation's score.
    best_sc = np.full(len(order), -np.inf)
    best = [None] * len(order)
    n_runs, wall = 0, 0.0
    to_run = np.arange(len(order))
    for r in range(1 + int(iters)):
        if to_run.size == 0:
            break
        progress.note(
            f"re-simulating {to_run.size} aligned candidate(s), round {r + 1} of at most {1 + iters}"
        )
        sim = model.simulate(P["DT_mm2"][to_run], P["mu"][to_run], moved[to_run])
        n_runs += to_run.size
        wall += float(sim["wall_s"])
        moved_again = []
        for k, i in enumerate(to_run):
            u = sim["u"][k]
            dw = dice(u >= theta_wt, q.wt)
            dt = dice(u >= theta_tc, q.tc)
            s_i = w_wt * dw + w_tc * dt
            if s_i > best_sc[i]:
                best_sc[i] = s_i
                best[i] = (
                    dw,
                    dt,
                    u,
                    np.asarray(sim["seed_mm"][k], dtype=np.float64),
                    off[i].copy(),
                )
            e = np.rint(cp - mask_centroid(u >= theta_wt))
            if np.all(np.isfinite(e)) and np.any(e != 0):
                off[i] += e.astype(np.int64)
                moved[i] = moved[i] + e @ R.T
                moved_again.append(i)
        to_run = np.asarray(moved_again, dtype=np.int64)
    j = int(np.argmax(best_sc))
    base = db.row_params(ranked_rows[:1])
    bw, bt = Q.dice_scores(db, q, ranked_rows[:1], theta_wt, theta_tc)
    top1 = {
        "DT_mm2": float(base["DT_mm2"][0]),
        "mu": float(base["mu"][0]),
        "seed_mm": np.asarray(base["seed_mm"][0], dtype=np.float64),
        "db_row": int(ranked_rows[0]),
        "offset_vox": [0, 0, 0],
        "score": float(w_wt * bw[0] + w_tc * bt[0]),
        "dice_wt": float(bw[0]),
        "dice_tc": float(bt[0]),
        "improved": False,
        "u": None,
    }
    out = {"n_sim": n_runs, "sim_wall_s": wall, "h_mm": h}
    if best_sc[j] <= top1["score"]:
        return {**top1, **out}
    dw, dt, u, seed, o = best[j]
    return {
        **out,
        "DT_mm2": float(P["DT_mm2"][j]),
        "mu": float(P["mu"][j]),
        "seed_mm": seed,
        "db_row": int(cand[order][j]),
        "offset_vox": [int(v) for v in o],
        "score": float(best_sc[j]),
        "dice_wt": float(dw),
        "dice_tc": float(dt),
        "improved": True,
        "u": u,
    }
