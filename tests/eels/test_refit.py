"""pca_recon's refit: the PCA refitted without the pixels flagged at the default threshold, so
that an anomalous region does not serve as its own template (``pca.refit``)."""

import numpy as np
import pytest

from workbench.solvers.eels import pca_recon


@pytest.fixture(scope="module")
def shifted(bench_cube):
    return bench_cube(5, 48, "refit", fraction=0.05, shift=0.5)


@pytest.mark.slow
def test_refit_leaves_the_anomaly_out_of_its_template(shifted):
    t = shifted.truth
    r0 = pca_recon.solve(shifted, pca_recon.Params(refit=0, template="pca"))
    r1 = pca_recon.solve(shifted, pca_recon.Params(refit=1, template="pca"))
    left = r1.meta["refit_left_out"]
    assert r0.meta["refit_left_out"] == 0.0 and 0.0 < left < 2 * t.mean()
    # fitted on every pixel, the reconstruction of a shifted pixel is already partly shifted:
    # the shift it still finds is biased towards 0 and its evidence is smaller; without the
    # flagged pixels the bias shrinks and the evidence grows, while normal pixels are unchanged
    d0 = float(r0.extras["shift_estimate"][t].mean())
    d1 = float(r1.extras["shift_estimate"][t].mean())
    assert 0.0 < d0 < d1 < 0.55, (d0, d1)
    s0, s1 = r0.extras["score_shift"], r1.extras["score_shift"]
    assert s1[t].mean() > 1.05 * s0[t].mean()
    assert s1[~t].mean() == pytest.approx(s0[~t].mean(), rel=0.03)


@pytest.mark.slow
def test_refit_changes_nothing_when_nothing_is_flagged(bench_cube):
    null = bench_cube(7, 48, "null", fraction=0.0, shift=0.0)
    r0 = pca_recon.solve(null, pca_recon.Params(refit=0, template="pca"))
    r1 = pca_recon.solve(null, pca_recon.Params(refit=2, template="pca"))
    assert r0.metrics["flagged_fraction"] == 0.0 and r1.meta["refit_left_out"] == 0.0
    np.testing.assert_array_equal(r0.output, r1.output)
    # refit only serves the shift score: other scores keep the single fit
    a = pca_recon.solve(null, pca_recon.Params(score="nll", refit=0))
    b = pca_recon.solve(null, pca_recon.Params(score="nll", refit=2))
    np.testing.assert_array_equal(a.output, b.output)


def test_deshift_moves_a_shifted_spectrum_back_onto_the_bulk(bench_kw):
    """``pca.deshift``: a noise-free pixel whose Fe-L edge is shifted by +delta, moved back by
    delta, matches the unshifted pixel (up to linear interpolation); delta = 0 changes nothing."""
    from workbench.physics.eels.synth import generate
    from workbench.solvers.eels import pca as P

    kw = bench_kw(4, fraction=0.0, keep_clean=True, seed=2, everywhere=True)
    g0 = generate(**dict(kw, shift=0.0))
    e = g0["energy"].astype(np.float64)
    lam0 = g0["clean"].reshape(-1, e.size).astype(np.float64)
    for delta in (0.45, 1.0):
        lam1 = generate(**dict(kw, shift=delta))["clean"].reshape(lam0.shape).astype(np.float64)
        back = P.deshift(lam1, e, np.full(lam1.shape[0], delta))
        inner = (e > 690.0) & (e < 730.0)
        err = np.abs(back - lam0)[:, inner].max() / lam0[:, inner].max()
        before = np.abs(lam1 - lam0)[:, inner].max() / lam0[:, inner].max()
        assert err < 0.1 * before, (delta, err, before)
    np.testing.assert_array_equal(P.deshift(lam0, e, np.zeros(lam0.shape[0])), lam0)
