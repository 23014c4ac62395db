"""Model-mismatch patients (issue 20): harmonic faces, ellipsoid seeds, deformed atlas; CMA-ES prior."""

import math

import numpy as np
import pytest

from workbench.datasets.tumor import _deformed_atlas, ellipsoid_seed, mismatch_patient
from workbench.physics.tumor.atlas import load_atlas
from workbench.physics.tumor.forward import FKSolver, Geometry


def test_harmonic_faces_bounded_by_arithmetic_and_equal_on_constant():
    rng = np.random.default_rng(0)
    d = rng.uniform(0.05, 1.0, (6, 5, 4)).astype(np.float32)
    tissue = np.ones(d.shape, bool)
    tissue[0, 0, 0] = False
    g = Geometry.from_fields(d, tissue, 1.0, crop=False)
    for fa, fh in zip(g.faces("arithmetic"), g.faces("harmonic"), strict=True):
        assert np.all(fh <= fa + 1e-7) and np.all(fh >= 0)
        assert np.any(fh < fa - 1e-3)  # strictly smaller across unequal neighbours
    gc = Geometry.from_fields(np.full(d.shape, 0.4, np.float32), tissue, 1.0, crop=False)
    for fa, fh in zip(gc.faces("arithmetic"), gc.faces("harmonic"), strict=True):
        np.testing.assert_allclose(fh, fa, rtol=1e-6)
    # no flux into non-tissue either way
    assert g.faces("harmonic")[0][0, 0, 0] == 0.0
    with pytest.raises(ValueError):
        g.faces("geometric")


def test_harmonic_solver_conserves_mass_without_reaction():
    rng = np.random.default_rng(1)
    d = rng.uniform(0.05, 1.0, (12, 12, 12)).astype(np.float32)
    tissue = rng.uniform(size=d.shape) > 0.1
    g = Geometry.from_fields(d, tissue, 2.0, crop=False)
    s = FKSolver(g, C=0.45, rho_dt_max=0.05, face_mean="harmonic")
    u0 = np.zeros((1, *d.shape), np.float32)
    u0[0, 5:7, 5:7, 5:7] = 0.8
    u0 *= tissue
    u, _ = s.run(u0, [200.0], [0.0])
    np.testing.assert_allclose(u.sum(), u0.sum(), rtol=1e-4)
    assert 0.0 <= u.min() and u.max() <= 1.0
    assert u[0, 6, 6, 6] < 0.8  # it did diffuse


def test_ellipsoid_seed_volume_and_orientation():
    h = 1.0
    semi = (6.0, 3.0, 2.0)
    rot = np.eye(3)
    u = ellipsoid_seed((40, 40, 40), np.array([20.0, 20.0, 20.0]), h, semi, rot, 0.7)
    vol = 4.0 / 3.0 * math.pi * np.prod(semi)
    assert u.max() == pytest.approx(0.7)
    assert u.sum() / 0.7 == pytest.approx(vol, rel=0.03)
    # long axis along x; a rotation by 90 degrees about z puts it along y
    assert (u[:, 20, 20] > 0).sum() > (u[20, :, 20] > 0).sum()
    rz = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    v = ellipsoid_seed((40, 40, 40), np.array([20.0, 20.0, 20.0]), h, semi, rz, 0.7)
    np.testing.assert_allclose(v.sum(), u.sum(), rtol=1e-6)
    assert (v[20, :, 20] > 0).sum() > (v[:, 20, 20] > 0).sum()


def test_deformed_atlas_moves_tissue_by_at_most_the_amplitude():
    atlas = load_atlas(32, with_t1=False)
    d = _deformed_atlas(atlas, np.random.default_rng(2), amp_mm=4.0, corr_mm=20.0, theta_tissue=0.3)
    assert d.theta_tissue == 0.3 and d.gm.shape == atlas.gm.shape
    assert not np.allclose(d.gm, atlas.gm)
    # a warp of <= 4 mm (< one 7.3 mm cell) keeps the brain where it was, roughly
    b0 = (atlas.gm + atlas.wm) >= 0.3
    b1 = (d.gm + d.wm) >= 0.3
    assert 2 * (b0 & b1).sum() / (b0.sum() + b1.sum()) > 0.85


@pytest.mark.slow
def test_mismatch_patient_is_seeded_and_unlike_the_database():
    p = mismatch_patient(5, sim_grid=48, grid=32)
    q = mismatch_patient(5, sim_grid=48, grid=32)
    np.testing.assert_array_equal(p.wt, q.wt)
    tr = p.meta["truth"]
    assert tr["mismatch"]["face_mean"] == "harmonic" and tr["mismatch"]["theta_tissue"] == 0.3
    assert 5.0 <= tr["R"] <= 20.0 and p.wt.any() and p.tc.any()
    assert np.all(p.wt >= p.tc)
    assert 5.0 <= p.volumes_cm3[0] <= 250.0


def test_cmaes_prior_is_centred_on_a_planted_database_entry(tmp_path):
    """A patient that is a database entry: the volume-nearest entries include it, so the prior's
    parameter mean lies near its (DT, mu) and its seed prior near its seed."""
    from workbench.physics.tumor.forward import atlas_model
    from workbench.solvers.tumor.cmaes_fit import LOG_DT, LOG_MU, database_prior
    from workbench.solvers.tumor.database import BuildConfig, build, open_db

    p = tmp_path / "db.h5"
    build(BuildConfig(n=48, grid=32, batch=8, v_min_cm3=2.0, rng_seed=3), p, log=lambda s: None)
    db = open_db(p)
    r = int(np.argsort(db.wt_count)[db.n_ok // 2])
    wt, tc = db.masks_full(r)
    atlas = atlas_model(32).atlas
    idx = np.argwhere(atlas.wm >= 0.5)
    lo = atlas.voxel_to_world(idx.min(0) - 0.5)
    hi = atlas.voxel_to_world(idx.max(0) + 0.5)
    pr = database_prior(db, wt.astype(bool), tc.astype(bool), atlas.h, lo, hi, k=10)
    assert r in pr["rows"]
    P = db.row_params([r])
    a = (math.log(P["DT_mm2"][0]) - LOG_DT[0]) / (LOG_DT[1] - LOG_DT[0])
    b = (math.log(P["mu"][0]) - LOG_MU[0]) / (LOG_MU[1] - LOG_MU[0])
    assert np.all((pr["std"] >= 0.02) & (pr["std"] <= 0.3))
    assert abs(pr["param_mean"][0] - a) <= 3 * max(pr["std"][3], 0.1)
    assert abs(pr["param_mean"][1] - b) <= 3 * max(pr["std"][4], 0.1)
    seed0 = atlas.voxel_to_world(pr["centroid_vox"]) + pr["offset"] * (hi - lo)
    assert np.linalg.norm(seed0 - P["seed_mm"][0]) < 3 * atlas.h
