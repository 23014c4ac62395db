"""pca_recon's refit: the PCA refitted without the pixels flagged at the default threshold, so
that an anomalous region does not serve as its own template (``pca.shift_refit``)."""

import numpy as np
import pytest

from workbench.datasets.eels import synthetic
from workbench.solvers.eels import pca_recon

KW = dict(
    ny=48,
    nx=48,
    fraction=0.05,
    n_pk=45.0,
    bg_exponent_sd=0.15,
    bg_amp_range=(0.85, 1.15),
    plural=True,
    t_lambda=(0.2, 0.8),
    jitter=0.03,
)


@pytest.fixture(scope="module")
def shifted():
    return synthetic(dict(KW, shift=0.5, seed=5), name="refit")


@pytest.mark.slow
def test_refit_leaves_the_anomaly_out_of_its_template(shifted):
    t = shifted.truth
    r0 = pca_recon.solve(shifted, pca_recon.Params(refit=0))
    r1 = pca_recon.solve(shifted, pca_recon.Params(refit=1))
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
def test_refit_changes_nothing_when_nothing_is_flagged():
    null = synthetic(dict(KW, fraction=0.0, shift=0.0, seed=7), name="null")
    r0 = pca_recon.solve(null, pca_recon.Params(refit=0))
    r1 = pca_recon.solve(null, pca_recon.Params(refit=2))
    assert r0.metrics["flagged_fraction"] == 0.0 and r1.meta["refit_left_out"] == 0.0
    np.testing.assert_array_equal(r0.output, r1.output)
    # refit only serves the shift score: other scores keep the single fit
    a = pca_recon.solve(null, pca_recon.Params(score="nll", refit=0))
    b = pca_recon.solve(null, pca_recon.Params(score="nll", refit=2))
    np.testing.assert_array_equal(a.output, b.output)
