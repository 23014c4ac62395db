"""The banded prior (support, determinism, prefix, acceptance, resume) and the translation-aligned
re-rank (shift helper, recovery of a planted entry whose seed was moved)."""

import numpy as np
import pytest

from workbench.physics.tumor.forward import atlas_model
from workbench.physics.tumor.metrics import dice
from workbench.problems import TumorProblem
from workbench.registry import parse_params
from workbench.solvers.tumor import db_lookup, db_lookup_fast
from workbench.solvers.tumor import query as Q
from workbench.solvers.tumor.align import (
    align_refine,
    aligned_scores,
    mask_centroid,
    shift_mask,
    wt_centroids,
)
from workbench.solvers.tumor.database import (
    STATUS_OK,
    BuildConfig,
    banded_DT_mu,
    build,
    draw_params,
    in_band,
    open_db,
    parts_dir,
)

BANDED = BuildConfig(n=48, grid=32, batch=8, v_min_cm3=2.0, rng_seed=5, prior="banded")


def test_banded_prior_support_determinism_and_prefix():
    a = draw_params(BuildConfig(n=30, grid=32, prior="banded"))
    b = draw_params(BuildConfig(n=80, grid=32, prior="banded"))
    c = draw_params(BuildConfig(n=30, grid=32, prior="banded"))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k][:30])
        np.testing.assert_array_equal(a[k], c[k])
    DT, mu = b["DT_mm2"], b["mu"]
    assert np.all(in_band(DT, mu))
    assert np.all((DT >= 1) & (DT <= 2250) & (mu >= 0.1) & (mu <= 300))
    np.testing.assert_allclose(b["D_w_mm2_day"] * b["T_day"], DT)
    # the band is a proper subset of the identifiable box: many box points fall outside it
    g = np.exp(np.random.default_rng(0).uniform(size=(2, 4000)) * [[np.log(2250)], [np.log(3000)]])
    frac = in_band(g[0], g[1] / 10.0).mean()
    assert 0.05 < frac < 0.6
    # mapping: lambda = sqrt(DT/mu) spans the knots' range
    lam = np.log(np.sqrt(DT / mu))
    assert lam.min() < -1.0 and lam.max() > 1.5
    d2, m2 = banded_DT_mu(np.array([0.5]), np.array([0.5]))
    assert in_band(d2, m2)[0]


@pytest.mark.slow
def test_banded_prior_acceptance_at_64():
    """On the database grid the band passes the unchanged 5-250 cm^3 filter for most draws
    (the identifiable prior: 17 %)."""
    import tempfile
    from pathlib import Path

    cfg = BuildConfig(n=64, grid=64, batch=16, prior="banded")
    with tempfile.TemporaryDirectory() as d:
        out = build(cfg, Path(d) / "b.h5", log=lambda s: None)
        st = open_db(out).params["status"]
    assert np.mean(st == STATUS_OK) >= 0.6


def test_banded_build_resumes(tmp_path):
    full = tmp_path / "full.h5"
    assert build(BANDED, full, log=lambda s: None) == full
    part = tmp_path / "part.h5"
    assert build(BANDED, part, max_batches=2, log=lambda s: None) is None
    assert len(list(parts_dir(part).glob("part_*.npz"))) == 2
    assert build(BANDED, part, log=lambda s: None) == part
    A, B = open_db(full), open_db(part)
    np.testing.assert_array_equal(A.params["status"], B.params["status"])
    np.testing.assert_array_equal(A.wt, B.wt)
    assert '"banded"' in A.attrs["prior"] and "w_lo" in A.attrs["prior"]
    # rejected draws stay recorded with their status
    assert A.params["status"].size == BANDED.n


def test_shift_mask():
    m = np.zeros((6, 6, 6), bool)
    m[1, 2, 3] = m[4, 4, 4] = True
    s = shift_mask(m, (1, -2, 0))
    assert s[2, 0, 3] and s[5, 2, 4] and s.sum() == 2
    assert shift_mask(m, (2, 0, 0)).sum() == 1  # (4,4,4) leaves the grid, no wrap-around
    assert not shift_mask(m, (9, 0, 0)).any()


@pytest.fixture(scope="module")
def banded_db(tmp_path_factory):
    p = tmp_path_factory.mktemp("banded") / "db.h5"
    cfg = BuildConfig(n=64, grid=32, batch=8, v_min_cm3=2.0, rng_seed=5, prior="banded")
    assert build(cfg, p, log=lambda s: None) == p
    return p


def test_centroids_match_dense(banded_db):
    db = open_db(banded_db)
    c = wt_centroids(db)
    for r in (0, db.n_ok - 1):
        wt, _ = db.masks_full(r)
        np.testing.assert_allclose(c[r], np.argwhere(wt).mean(0), atol=1e-4)


def test_centroids_of_some_rows_equal_the_full_table(banded_db):
    db = open_db(banded_db)
    db._wt_centroid_vox = None  # computed afresh: first the rows asked for, then all
    rows = np.array([5, 0, 5, db.n_ok - 1, 2])
    part = wt_centroids(db, rows)
    full = wt_centroids(db)
    np.testing.assert_allclose(part, full[rows], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(wt_centroids(db, rows), full[rows])  # from the cache now


def test_aligned_scores_equal_shifting_the_full_masks(banded_db):
    """The voxel-list scoring gives exactly the Dice of each full mask shifted by its centroid
    offset (``shift_mask``), restricted to tissue, against the patient -- also for offsets that
    push a mask off the grid and for an empty core."""
    db = open_db(banded_db)
    n = db.grid
    tissue = np.zeros(n**3, bool)
    tissue[db.tissue_index] = True
    tissue = tissue.reshape(n, n, n)
    rng = np.random.default_rng(11)
    for r, d, empty_tc in ((3, (2, -3, 1), False), (10, (-9, 0, 12), True), (20, (0, 0, 0), False)):
        wt, tc = db.masks_full(r)
        wt, tc = shift_mask(wt, d), shift_mask(tc, d)
        if empty_tc:
            tc = np.zeros_like(tc)
        q = Q.PatientQuery(db, wt, tc)
        rows = rng.choice(db.n_ok, 20, replace=False)
        got = aligned_scores(db, q, rows, w_wt=1.0, w_tc=0.5)
        off = np.rint(mask_centroid(q.wt)[None, :] - wt_centroids(db, rows)).astype(np.int64)
        assert np.array_equal(got["offset"], off)
        for i, row in enumerate(rows):
            sw, st = db.masks_full(int(row))
            dw = dice(shift_mask(sw, off[i]) & tissue, q.wt)
            dt = dice(shift_mask(st, off[i]) & tissue, q.tc)
            assert got["dice_wt"][i] == dw and got["dice_tc"][i] == dt
            assert got["score"][i] == dw + 0.5 * dt


def test_alignment_recovers_planted_shifted_entry(banded_db):
    """A patient simulated with an entry's (DT, mu) and its seed moved by a few voxels: plain
    lookup is off, the aligned re-rank re-simulates that entry at (about) the moved seed."""
    db = open_db(banded_db)
    ok = np.flatnonzero((db.tc_count > 5) & (db.wt_count < 600))
    assert ok.size
    r = int(ok[len(ok) // 2])
    P = db.row_params([r])
    d = np.array([2, -2, 1])
    model = atlas_model(32)
    true_seed = P["seed_mm"][0] + d * db.h
    sim = model.simulate([P["DT_mm2"][0]], [P["mu"][0]], [true_seed])
    u = sim["u"][0]
    prob = TumorProblem(
        name="shifted",
        wt=(u >= 0.25).astype(np.uint8),
        tc=(u >= 0.675).astype(np.uint8),
        affine=db.affine,
        grid_n=32,
    )
    q = Q.PatientQuery(db, prob.wt.astype(bool), prob.tc.astype(bool))
    sc = Q.scores(db, q, "dice", 0.25, 0.675)
    order = Q.rank(sc["score"])
    al = align_refine(db, q, order, 0.25, 0.675, n_sim=4)
    assert al["improved"] and al["score"] > sc["score"][order[0]]
    assert al["score"] >= 1.9
    assert np.linalg.norm(al["seed_mm"] - sim["seed_mm"][0]) <= 1.5 * db.h
    # through the solver (brute force and PCA), the option returns that forward solution
    for solver in (db_lookup, db_lookup_fast):
        res = solver.solve(
            prob, parse_params(solver.Params, {"db": str(banded_db), "align": True, "top_k": 3})
        )
        m = res.metrics
        assert m["align_improved"] == 1.0
        assert m["dice_edema"] + m["dice_core"] >= 1.9
        assert m["seed_mm"] == [m["seed_x_mm"], m["seed_y_mm"], m["seed_z_mm"]]
        assert np.linalg.norm(np.asarray(m["seed_mm"]) - sim["seed_mm"][0]) <= 1.5 * db.h
    # on by default; align=false is the plain rank 1 of the paper
    assert parse_params(db_lookup.Params, {}).align is True
    res = db_lookup.solve(
        prob, parse_params(db_lookup.Params, {"db": str(banded_db), "align": False})
    )
    assert res.extras["topk"][0]["db_row"] == int(order[0]) and "align_improved" not in res.metrics


def test_grow_finished_database(tmp_path, banded_db):
    """``build-db --n LARGER`` on a finished file reuses its complete batches (no re-simulation)
    and ends identical to a build of the larger n from scratch."""
    import dataclasses

    out = tmp_path / "grow.h5"
    small = dataclasses.replace(BANDED, n=36)  # 4 full batches of 8 and a short one
    assert build(small, out, log=lambda s: None) == out
    logs = []
    big = dataclasses.replace(BANDED, n=64)
    assert build(big, out, log=logs.append) == out
    assert "4 done, 4 to run" in logs[0]
    A, B = open_db(out), open_db(banded_db)
    for k in ("status", "V_wt_cm3", "n_steps", "seed_mm"):
        np.testing.assert_array_equal(A.params[k], B.params[k], err_msg=k)
    np.testing.assert_array_equal(A.wt, B.wt)
    np.testing.assert_array_equal(A.tc, B.tc)
    np.testing.assert_array_equal(A.ok_index, B.ok_index)


def test_prefix_view_is_a_smaller_database(banded_db):
    """``prefix(n)`` (database-size studies) scores exactly like the first n entries."""
    db = open_db(banded_db)
    n = db.n_ok // 2
    sub = db.prefix(n)
    assert sub.n_ok == n and sub.embedding["codes"].shape[0] == n
    wt, tc = db.masks_full(n - 1)
    q_full, q_sub = Q.PatientQuery(db, wt, tc), Q.PatientQuery(sub, wt, tc)
    a = Q.scores(db, q_full, "dice", 0.25, 0.675)["score"][:n]
    np.testing.assert_array_equal(Q.scores(sub, q_sub, "dice", 0.25, 0.675)["score"], a)
    # streamed scores stop at the prefix's end too
    assert Q.scores(sub, q_sub, "l2", 0.25, 0.675)["score"].shape == (n,)
    assert Q.rank(a)[0] == n - 1
