"""Database queries: exact scores over all entries (packed-bit Dice, soft-map L2, Bernoulli LL),
the PCA shortlist, and ranking (descending score, ties to the lower row; rank 1 = best match)."""

from __future__ import annotations

import math

import numpy as np

from workbench.physics.tumor.atlas import block_mean
from workbench.physics.tumor.metrics import dice_from_counts

METHODS = ("dice", "l2", "soft")


class PatientQuery:
    """A patient's masks prepared for one database (on its grid, packed, coarse)."""

    def __init__(self, db, wt: np.ndarray, tc: np.ndarray):
        self.db = db
        wt = np.asarray(wt, bool) | np.asarray(tc, bool)
        tc = np.asarray(tc, bool)
        self.wt, self.tc = wt, tc
        tidx = db.tissue_index
        self.wt_packed = np.packbits(wt.ravel()[tidx])
        self.tc_packed = np.packbits(tc.ravel()[tidx])
        self.wt_count = int(wt.sum())  # includes voxels outside tissue: they can never match
        self.tc_count = int(tc.sum())
        f = db.f
        cidx = db.coarse_tissue_index
        self.wt_occ = block_mean(wt.astype(np.float32), f).ravel()[cidx]
        self.tc_occ = block_mean(tc.astype(np.float32), f).ravel()[cidx]

    def representation(self) -> np.ndarray:
        return np.concatenate([self.wt_occ, self.tc_occ]).astype(np.float32)


def _packed_dice(
    S: np.ndarray, s_count: np.ndarray, P: np.ndarray, p_count: int, block: int = 2048
) -> np.ndarray:
    out = np.empty(S.shape[0], np.float64)
    for s in range(0, S.shape[0], block):
        inter = np.bitwise_count(np.bitwise_and(S[s : s + block], P)).sum(1, dtype=np.int64)
        out[s : s + block] = dice_from_counts(inter, s_count[s : s + block], p_count)
    return out


def dice_scores(
    db, q: PatientQuery, rows: np.ndarray | None = None, theta_wt=None, theta_tc=None
) -> tuple[np.ndarray, np.ndarray]:
    """(Dice_WT, Dice_TC) for every entry (or ``rows``).

    At the database's own thresholds this is exact on the database grid (packed bits, never
    unpacked). Other thresholds re-threshold the stored coarse density at ceil(255 theta) and
    compare with the patient's coarse masks (occupancy >= 0.5)."""
    theta_wt = db.theta_wt if theta_wt is None else theta_wt
    theta_tc = db.theta_tc if theta_tc is None else theta_tc
    if abs(theta_wt - db.theta_wt) < 1e-9 and abs(theta_tc - db.theta_tc) < 1e-9:
        if rows is None:
            return (
                _packed_dice(db.wt, db.wt_count, q.wt_packed, q.wt_count),
                _packed_dice(db.tc, db.tc_count, q.tc_packed, q.tc_count),
            )
        rows = np.asarray(rows)
        return (
            _packed_dice(db.wt[rows], db.wt_count[rows], q.wt_packed, q.wt_count),
            _packed_dice(db.tc[rows], db.tc_count[rows], q.tc_packed, q.tc_count),
        )
    lw, lt = math.ceil(255 * theta_wt), math.ceil(255 * theta_tc)
    pw, pt = q.wt_occ >= 0.5, q.tc_occ >= 0.5
    dw, dt = [], []
    blocks = db.density_blocks() if rows is None else [(0, db.density_rows(rows))]
    for _, d in blocks:
        sw, st = d >= lw, d >= lt
        dw.append(dice_from_counts((sw & pw).sum(1), sw.sum(1), int(pw.sum())))
        dt.append(dice_from_counts((st & pt).sum(1), st.sum(1), int(pt.sum())))
    return np.concatenate(dw), np.concatenate(dt)


def _soft_patient(q: PatientQuery, theta_wt: float, theta_tc: float) -> np.ndarray:
    """The density a binary segmentation implies: (theta_wt+theta_tc)/2 in WT\\TC, (theta_tc+1)/2 in TC."""
    lw = 0.5 * (theta_wt + theta_tc)
    lt = 0.5 * (theta_tc + 1.0)
    return (lw * (q.wt_occ - q.tc_occ) + lt * q.tc_occ).astype(np.float32)


def l2_scores(
    db, q: PatientQuery, theta_wt: float, theta_tc: float, rows=None, block: int = 512
) -> np.ndarray:
    """- squared L2 distance (cm^3-weighted) between stored coarse densities and the patient's soft
    map; torch matmuls over blocks streamed from the HDF5 file."""
    import torch

    p = torch.from_numpy(_soft_patient(q, theta_wt, theta_tc))
    pp = float((p * p).sum())
    vol = (db.h * db.f) ** 3 / 1000.0
    out = []
    blocks = db.density_blocks(block) if rows is None else [(0, db.density_rows(rows))]
    for _, d in blocks:
        x = torch.from_numpy(np.ascontiguousarray(d)).to(torch.float32) / 255.0
        dist = (x * x).sum(1) - 2.0 * (x @ p) + pp
        out.append((-dist * vol).numpy().astype(np.float64))
    return np.concatenate(out) if out else np.zeros(0)


def soft_scores(
    db,
    q: PatientQuery,
    theta_wt: float,
    theta_tc: float,
    sigma: float = 0.05,
    w_wt=1.0,
    w_tc=1.0,
    rows=None,
    block: int = 512,
) -> np.ndarray:
    """Bernoulli log-likelihood of the patient's coarse masks given the stored density (§4.1),
    through a 256-entry lookup table per threshold."""
    import torch

    lev = np.arange(256) / 255.0
    out_total = []
    tabs = []
    for th in (theta_wt, theta_tc):
        a = 0.5 + 0.5 * np.sign(lev - th) * (1 - np.exp(-((lev - th) ** 2) / sigma**2))
        a = np.clip(a, 1e-6, 1 - 1e-6)
        tabs.append((torch.from_numpy(np.log(a)).float(), torch.from_numpy(np.log(1 - a)).float()))
    pw = torch.from_numpy((q.wt_occ >= 0.5).astype(np.float32))
    pt = torch.from_numpy((q.tc_occ >= 0.5).astype(np.float32))
    blocks = db.density_blocks(block) if rows is None else [(0, db.density_rows(rows))]
    for _, d in blocks:
        di = torch.from_numpy(np.ascontiguousarray(d)).long()
        tot = torch.zeros(di.shape[0])
        for (la, l1a), P, w in ((tabs[0], pw, w_wt), (tabs[1], pt, w_tc)):
            tot += w * ((la[di] * P).sum(1) + (l1a[di] * (1 - P)).sum(1))
        out_total.append(tot.numpy().astype(np.float64))
    return np.concatenate(out_total) if out_total else np.zeros(0)


def scores(
    db,
    q: PatientQuery,
    method: str,
    theta_wt: float,
    theta_tc: float,
    w_wt=1.0,
    w_tc=1.0,
    rows=None,
) -> dict:
    """Score every entry (or ``rows``); returns {"score", "dice_wt", "dice_tc"} (Dice only for "dice")."""
    if method == "dice":
        dw, dt = dice_scores(db, q, rows, theta_wt, theta_tc)
        return {"score": w_wt * dw + w_tc * dt, "dice_wt": dw, "dice_tc": dt}
    if method == "l2":
        return {"score": l2_scores(db, q, theta_wt, theta_tc, rows)}
    if method == "soft":
        return {"score": soft_scores(db, q, theta_wt, theta_tc, w_wt=w_wt, w_tc=w_tc, rows=rows)}
    raise ValueError(f"unknown method {method!r}")


def rank(score: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Order (indices into ``score``) by descending score, ties to the lower database row."""
    r = np.arange(score.size) if rows is None else np.asarray(rows)
    return np.lexsort((r, -np.asarray(score)))


def embed(db, q: PatientQuery) -> np.ndarray:
    e = db.embedding
    return (q.representation() - e["mean"]) @ e["components"].T


def shortlist(db, q: PatientQuery, m: int = 100) -> np.ndarray:
    """Rows of the m nearest codes (Euclidean) to the patient's embedding, nearest first."""
    c = embed(db, q)
    codes = db.embedding["codes"]
    d = ((codes - c) ** 2).sum(1)
    m = min(m, d.size)
    part = np.argpartition(d, m - 1)[:m] if m < d.size else np.arange(d.size)
    return part[np.lexsort((part, d[part]))]
