"""The white-line ratio score (``common.ratio_fit``): a likelihood-ratio test for a change of the
L3/L2 intensity ratio of the reconstruction -- planted answers, null calibration, invariance to
the pixel's intensity."""

import numpy as np
import pytest

from workbench.errors import InputError
from workbench.physics.eels import metrics as EM
from workbench.physics.eels.synth import generate
from workbench.solvers.eels import common as C
from workbench.solvers.eels import pca_recon


def _clean(bench_kw, **kw):
    out = generate(**bench_kw(8, fraction=0.0, keep_clean=True, seed=3, **kw))
    return out["clean"].reshape(-1, out["energy"].size).astype(np.float64), out["energy"]


def test_white_line_windows_find_the_fe_l3_and_l2_lines(bench_kw):
    lam, e = _clean(bench_kw)
    wl = C.white_line_windows(e, lam.mean(0), 690.0, 730.0)
    assert wl.l3[0] < 708.0 < wl.l3[1] and wl.l2[0] < 721.0 < wl.l2[1]
    assert wl.l3[1] < wl.l2[0]
    # given energies override the search
    wl2 = C.white_line_windows(e, lam.mean(0), 690.0, 730.0, l3=708.0, l2=721.0)
    assert wl2.l3[0] < 708.0 < wl2.l3[1] and wl2.l2[0] < 721.0 < wl2.l2[1]
    # one energy alone, or one outside the edge window, is refused (not snapped or ignored)
    for bad in (dict(l3=708.0), dict(l3=99999.0, l2=721.0), dict(l3=708.0, l2=650.0)):
        with pytest.raises(InputError, match="l3|l2"):
            C.white_line_windows(e, lam.mean(0), 690.0, 730.0, **bad)


def test_ratio_score_is_invariant_to_the_pixels_intensity(bench_kw):
    """A pixel that is the template times any intensity (thickness, concentration) gains
    nothing from any ratio change (Gibbs' inequality), whatever the factor."""
    lam, e = _clean(bench_kw)
    wl = C.white_line_windows(e, lam.mean(0), 690.0, 730.0)
    for c in (0.1, 1.0, 7.3, 250.0):
        f = C.ratio_fit(c * lam, lam, e, wl)
        assert np.abs(f.lr).max() <= 1e-8 * c * lam.sum(1).max()
        assert np.all(f.best == 0.0)


def test_ratio_fit_recovers_a_planted_ratio_change(bench_kw):
    """Noise-free spectra with the L3/L2 ratio changed by 1.6 (the simulator's valence anomaly)
    against the unchanged template: the best trial factor lies near 1.6, and a change the other
    way is estimated below 1; an energy shift is not read as a large ratio change."""
    lam0, e = _clean(bench_kw)
    wl = C.white_line_windows(e, lam0.mean(0), 690.0, 730.0)
    for factor in (1.6, 0.6):
        lam1, _ = _clean(bench_kw, anomaly="ratio", ratio_factor=factor, everywhere=True)
        est = np.exp(C.ratio_fit(lam1, lam0, e, wl).best)
        assert np.all(np.abs(np.log(est / factor)) < 0.25), (factor, est.min(), est.max())
    lam1, _ = _clean(bench_kw, anomaly="shift", shift=0.5, everywhere=True)
    est = np.exp(C.ratio_fit(lam1, lam0, e, wl).best)
    assert np.all(np.abs(np.log(est)) < 0.15)


def test_ratio_lr_is_chi_square_under_the_template(bench_kw):
    """Poisson counts drawn from the template itself: 2 max ll is about chi-square(1) (one
    parameter), so its median is near 0.455 and its 0.999 quantile rarely exceeded."""
    lam, e = _clean(bench_kw)
    wl = C.white_line_windows(e, lam.mean(0), 690.0, 730.0)
    rng = np.random.default_rng(0)
    tmpl = np.repeat(lam[:1], 4000, 0)
    lr = C.ratio_fit(rng.poisson(tmpl).astype(float), tmpl, e, wl).lr
    assert 0.35 < np.median(lr) < 0.56
    assert np.mean(lr > 10.83) < 0.004


@pytest.mark.slow
def test_pca_recon_ratio_score_detects_a_planted_ratio_change_and_is_calibrated(bench_cube):
    # 3x the mid dose: on a 40 x 40 map (a few discs) the 1x dose is too weak for a firm bound
    cube = bench_cube(13, 40, "r", n_pk=135.0, fraction=0.05, anomaly="ratio", ratio_factor=1.6)
    r = pca_recon.solve(cube, pca_recon.Params(look_for="ratio"))
    assert r.meta["score"] == "ratio"
    t = cube.truth
    auc = EM.roc_auc(r.output, t)
    assert auc > 0.9
    # the omnibus deviance, the previous default for this anomaly, does worse on the same fit
    assert EM.roc_auc(C.pool_score(r.extras["score_nll"], 3.0), t) < auc - 0.05
    mask = r.extras["mask"]
    assert mask.any() and mask[t].mean() > 5 * mask[~t].mean()
    assert np.median(r.extras["ratio_estimate"][t]) > 1.2
    null = bench_cube(12, 40, "n", n_pk=135.0, fraction=0.0, drift=0.3)
    rn = pca_recon.solve(null, pca_recon.Params(look_for="ratio"))
    assert rn.metrics["flagged_fraction"] <= 0.02


@pytest.mark.slow
def test_cvae3d_look_for_ratio_scores_the_white_line_ratio(bench_cube):
    from workbench.nets import eels_cvae_fit as cvae_fit
    from workbench.solvers.eels import cvae3d

    if not cvae_fit.DEFAULT_CHECKPOINT.exists():
        pytest.skip("bundled checkpoint not trained yet")
    cube = bench_cube(5, 32, "rv", n_pk=135.0, fraction=0.08, anomaly="ratio", ratio_factor=1.6)
    p = cvae3d.Params(look_for="ratio", max_iter=3, device="cpu", save=False)
    r = cvae3d.solve(cube, p)
    assert r.meta["score"] == "ratio"
    # the output is the pooled common-ratio-change likelihood ratio of the per-pixel gains
    np.testing.assert_allclose(r.output, r.extras["ratio_common"], rtol=1e-5)
    assert r.extras["ratio_estimate"].shape == cube.truth.shape
    assert np.all(r.output >= 0) and r.metrics["flagged_fraction"] <= 0.2
    # the estimated ratio factor is larger inside the discs (planted x1.6) than outside
    est = r.extras["ratio_estimate"]
    assert np.median(est[cube.truth]) > np.median(est[~cube.truth])


def test_ratio_template_set_to_the_bulk_ratio_corrects_a_template_wrong_everywhere(bench_kw):
    """``common.ratio_fit_bulk``: a template whose L3/L2 ratio is wrong across the map (x1.3, as
    a fine-tuned network's was) makes every normal pixel read as a ratio change; set to the
    median of the data's ratio over a 15 x 15 window, the normal pixels' statistic is back near
    its chi-square(1) mean while the planted x1.6 discs (radius <= 6 px) still stand out."""
    kw = bench_kw(32, n_pk=180.0, fraction=0.05, anomaly="ratio", ratio_factor=1.6, seed=4)
    g = generate(**dict(kw, keep_clean=True))
    e = np.asarray(g["energy"], np.float64)
    Y = g["data"].reshape(-1, e.size).astype(np.float64)
    t = g["truth"].ravel()
    wrong = generate(**dict(kw, ratio_factor=1.3, everywhere=True, keep_clean=True))["clean"]
    wrong = wrong.reshape(Y.shape).astype(np.float64)
    lines = C.white_line_windows(e, wrong.mean(0), 690.0, 730.0)
    plain = C.ratio_fit(Y, wrong, e, lines)
    fixed = C.ratio_fit_bulk(Y, wrong, e, lines, (32, 32), 15)
    # pooled as the detectors do (one ratio change common to the neighbourhood, chi-square(1))
    P, F = (C.pool_shift_glr(f.ll.reshape(32, 32, -1), f.deltas, 3.0)[0] for f in (plain, fixed))
    tt = t.reshape(32, 32)
    assert np.median(P[~tt]) > 5.0, np.median(P[~tt])
    assert np.median(F[~tt]) < 1.5, np.median(F[~tt])
    assert np.median(np.exp(fixed.best[t])) > 1.2
    assert EM.roc_auc(F, tt) > max(0.8, EM.roc_auc(P, tt) + 0.05)
    # size 0: the template's own ratio, i.e. ratio_fit unchanged
    np.testing.assert_array_equal(C.ratio_fit_bulk(Y, wrong, e, lines, (32, 32), 0).lr, plain.lr)
