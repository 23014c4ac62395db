"""Spatial pooling of score maps, its calibrated threshold, and the oracle templates of the
simulator (``everywhere``) behind the benchmark's likelihood-ratio upper bound."""

import numpy as np
import pytest

from workbench.physics.eels import metrics as EM
from workbench.physics.eels.synth import generate
from workbench.solvers.eels import common as C


def test_pool_dof_matches_the_gaussian_kernel():
    assert C.pool_dof(0.0) == 1.0
    # continuous 2-D Gaussian of sd s: 1 / integral w^2 = 4 pi s^2
    for s in (1.0, 2.0):
        assert C.pool_dof(s) == pytest.approx(4 * np.pi * s * s, rel=0.03)
    np.testing.assert_array_equal(
        C.pool_score(np.arange(6.0).reshape(2, 3), 0.0), np.arange(6.0).reshape(2, 3)
    )


def test_pooled_calibrated_threshold_keeps_false_alarms_rare_and_finds_a_weak_region():
    rng = np.random.default_rng(3)
    ny = nx = 96
    null = rng.chisquare(1, (ny, nx))
    for pool in (1.0, 2.0):
        s = C.pool_score(null, pool)
        # the pooled null is referred to chi2(nu)/nu: few false alarms, none inflated away
        assert C.threshold(s, "auto", "shift", pool)["mask"].mean() < 0.005
        # the per-pixel chi2(1) threshold would flag nothing at all after pooling (too high)
        assert (s > C.calibrated_threshold(null)).mean() == 0.0
    # a region of weak evidence (noncentral chi2, lambda = 2) that per-pixel scores barely see
    yy, xx = np.mgrid[0:ny, 0:nx]
    disc = (yy - 40) ** 2 + (xx - 50) ** 2 <= 6**2
    planted = null.copy()
    planted[disc] = rng.noncentral_chisquare(1, 2.0, disc.sum())
    auc0 = EM.roc_auc(planted, disc)
    auc1 = EM.roc_auc(C.pool_score(planted, 1.0), disc)
    assert auc0 < 0.8 and auc1 > 0.95
    m = C.threshold(C.pool_score(planted, 1.0), "auto", "shift", 1.0)["mask"]
    assert m[disc].mean() > 0.3 and m[~disc].mean() < 0.01


def test_pooled_threshold_does_not_flag_smooth_misfit():
    """A smooth inflation of the per-pixel statistic (drift with nothing to align on) adds up
    under pooling; the empirical null keeps the false alarms rare where the independence null
    chi2(nu)/nu flags the high end of the trend."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(7)
    ny = nx = 96
    f = gaussian_filter(rng.standard_normal((ny, nx)), 12.0, mode="wrap")
    nc = 3.0 * (f - f.min()) / (f.max() - f.min())  # noncentrality 0-3, smooth over the map
    s = C.pool_score(rng.noncentral_chisquare(1, nc + 1e-9), 2.0)
    a, nu = C.pooled_null(s, C.pool_dof(2.0))
    assert nu < C.pool_dof(2.0) / 2
    flagged = C.threshold(s, "auto", "shift", 2.0)["mask"].mean()
    assert flagged < 0.002
    from scipy.stats import chi2

    nu0 = C.pool_dof(2.0)
    naive = max(np.median(s) / (chi2.median(nu0) / nu0), 1.0) * chi2.ppf(0.999, nu0) / nu0
    assert (s > naive).mean() > 0.005 > flagged


def test_everywhere_gives_each_pixels_anomalous_template_on_the_same_maps():
    kw = dict(
        ny=16, nx=16, shift=1.0, fraction=0.15, seed=5, keep_clean=True, plural=True, n_pk=180.0
    )
    kw.update(bg_exponent_sd=0.15, bg_amp_range=(0.85, 1.15), jitter=0.03, e_min=680.0, e_max=740.0)
    real = generate(**kw)
    every = generate(**dict(kw, everywhere=True))
    none = generate(**dict(kw, shift=0.0))
    t = real["truth"]
    assert 0 < t.mean() < 0.5
    np.testing.assert_array_equal(every["truth"], t)
    # inside the discs the anomalous template is the real one, outside the normal one is
    np.testing.assert_allclose(every["clean"][t], real["clean"][t], rtol=1e-6)
    np.testing.assert_allclose(none["clean"][~t], real["clean"][~t], rtol=1e-6)
    assert np.abs(every["clean"][~t] - none["clean"][~t]).max() > 1.0
    np.testing.assert_allclose(every["shift_map"], 1.0)
    # the likelihood ratio of the true templates ranks the discs first at a high dose
    Y = real["data"].astype(np.float64)
    l1, l0 = every["clean"].astype(np.float64), none["clean"].astype(np.float64)
    llr = (Y * np.log(l1 / l0) - (l1 - l0)).sum(-1)
    assert EM.roc_auc(llr, t) > 0.95
    # a changed L3/L2 ratio planted everywhere, removed with ratio_factor = 1
    kr = dict(kw, anomaly="ratio", ratio_factor=1.6)
    r_real, r_every = generate(**kr), generate(**dict(kr, everywhere=True))
    r_none = generate(**dict(kr, ratio_factor=1.0))
    np.testing.assert_allclose(r_every["clean"][t], r_real["clean"][t], rtol=1e-6)
    np.testing.assert_allclose(r_none["clean"][~t], r_real["clean"][~t], rtol=1e-6)


def test_pca_detector_pools_its_score_by_default_and_pooling_helps_on_regions():
    from workbench.datasets.eels import synthetic
    from workbench.solvers.eels import pca_recon

    kw = dict(ny=32, nx=32, shift=1.0, fraction=0.08, n_pk=15.0, seed=2, r_min=3.0, r_max=5.0)
    p = synthetic(kw)
    # one PCA fit for every pooling compared here (refit leaves out what each pooling flags)
    r = pca_recon.solve(p, pca_recon.Params(refit=0))
    # the default (empty = auto) refits for the shift score
    assert pca_recon.Params().refit is None and pca_recon.REFIT_ROUNDS > 0
    assert r.meta["pool"] == C.DEFAULT_POOL > 0 and r.meta["score"] == "shift"
    assert r.meta["shift_pool"] == C.DEFAULT_SHIFT_POOL
    raw = np.asarray(r.extras["score_shift"], np.float64)
    common = np.asarray(r.extras["shift_common"], np.float64)
    mag = pca_recon.solve(p, pca_recon.Params(shift_pool="magnitude", refit=0))
    np.testing.assert_allclose(mag.output, C.pool_score(raw, C.DEFAULT_POOL), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mag.extras["shift_common"], common, rtol=1e-5, atol=1e-6)
    default = common if C.DEFAULT_SHIFT_POOL == "common" else mag.output
    np.testing.assert_allclose(r.output, default, rtol=1e-5, atol=1e-6)
    for pooled in (common, mag.output):
        assert EM.roc_auc(pooled, p.truth) > EM.roc_auc(raw, p.truth) + 0.05
    off = pca_recon.solve(p, pca_recon.Params(pool=0.0, refit=0))
    np.testing.assert_allclose(off.output, raw, rtol=1e-5, atol=1e-6)
    assert "shift_common" not in off.extras


def _edge_cube(seed, shift, n, counts=1.0):
    """Counts of an Fe-L-like edge (white line + step on a power law) on an n x n map, with the
    edge shifted by ``shift`` eV in a disc of radius 5 px; the fit is against the true normal
    template, so the per-pixel gains are exact likelihoods (no reconstruction involved)."""
    rng = np.random.default_rng(seed)
    e = np.arange(680.0, 740.0, 0.5)

    def lam(d):
        line = 2.5 * np.exp(-0.5 * ((e - 708 - d) / 1.2) ** 2)
        return counts * ((e / 680) ** -3 + line + 0.8 * (1 + np.tanh((e - 708 - d) / 1.5)))

    yy, xx = np.mgrid[0:n, 0:n]
    disc = (yy - 15) ** 2 + (xx - 17) ** 2 <= 5**2
    Y = rng.poisson(np.where(disc[..., None], lam(shift), lam(0.0))).astype(float)
    return C.shift_fit(Y, np.broadcast_to(lam(0.0), Y.shape), e, 690, 730), disc


def test_common_shift_glr_beats_the_pooled_magnitude_on_a_coherent_region():
    """A disc sharing a 0.5 eV shift at a per-pixel noncentrality near 1: the likelihood ratio
    of one common shift adds the region's evidence linearly, the average of the per-pixel
    statistics only their excess over the null mean."""
    aucs = {"pixel": [], "magnitude": [], "common": []}
    yy, xx = np.mgrid[0:32, 0:32]
    core, est = (yy - 15) ** 2 + (xx - 17) ** 2 <= 2**2, []
    for seed in range(3):
        f, disc = _edge_cube(seed, 0.5, 32)
        aucs["pixel"].append(EM.roc_auc(f.lr, disc))
        for mode in ("magnitude", "common"):
            m, null_pool, _ = C.detector_map("shift", f.lr, disc.shape, 2.0, mode, f)
            assert null_pool == (0.0 if mode == "common" else 2.0)
            aucs[mode].append(EM.roc_auc(m, disc))
        est += list(C.pool_shift_glr(f.ll, f.deltas, 2.0)[1][core])
    # the pooled estimate of the shift in the disc's core is the planted one (near the rim the
    # pooling mixes in unshifted pixels)
    assert np.median(est) == pytest.approx(0.5, abs=0.1)
    a = {k: np.mean(v) for k, v in aucs.items()}
    assert a["pixel"] < 0.75 and a["common"] > 0.97
    assert a["common"] > a["magnitude"] + 0.03
    assert min(np.subtract(aucs["common"], aucs["magnitude"])) > -0.005


def test_common_shift_glr_null_is_chi_square_one():
    """No anomaly: the common-shift statistic (normalised by sum w^2) is about chi-square(1) --
    median and upper-decile share near nominal -- and the calibrated threshold flags next to
    nothing."""
    from scipy.stats import chi2

    ts = []
    for seed in range(3):
        f, _ = _edge_cube(100 + seed, 0.0, 48)
        t, null_pool, _ = C.detector_map("shift", f.lr, (48, 48), 2.0, "common", f)
        assert null_pool == 0.0
        assert C.threshold(t, "auto", "shift", null_pool)["mask"].mean() < 0.01
        ts.append(t.ravel())
    t = np.concatenate(ts)
    assert np.median(t) / chi2.median(1) == pytest.approx(1.0, abs=0.3)
    assert (t > chi2.ppf(0.9, 1)).mean() == pytest.approx(0.1, abs=0.05)


def test_common_shift_glr_without_pooling_is_the_per_pixel_glr():
    f, disc = _edge_cube(7, 0.5, 12)
    t, best = C.pool_shift_glr(f.ll, f.deltas, 0.0)
    np.testing.assert_array_equal(t, f.lr)
    np.testing.assert_array_equal(best, f.best)
    m, null_pool, common = C.detector_map("shift", f.lr, disc.shape, 0.0, "common", f)
    np.testing.assert_array_equal(m, f.lr)
    assert null_pool == 0.0 and common is None
    # the exact sum of squared weights: 1 / pool_dof inside, larger at the reflecting borders
    s2 = C.pool_weight_sq((40, 40), 2.0)
    assert s2[20, 20] == pytest.approx(1.0 / C.pool_dof(2.0), rel=1e-9)
    assert s2[0, 0] > 2 * s2[20, 20]
