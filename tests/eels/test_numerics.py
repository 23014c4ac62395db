"""Scores, thresholds, metrics and preprocessing against references and planted answers."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from workbench.physics.eels import metrics as EM
from workbench.physics.eels import spectra as SP
from workbench.solvers.eels import common as C


def test_roc_auc_and_ap_match_sklearn():
    rng = np.random.default_rng(0)
    t = rng.random(500) < 0.1
    s = rng.normal(size=500) + 1.5 * t
    s[:50] = np.round(s[:50])  # ties
    assert EM.roc_auc(s, t) == pytest.approx(roc_auc_score(t, s), abs=1e-12)
    assert EM.average_precision(s, t) == pytest.approx(average_precision_score(t, s), abs=1e-12)
    fpr, tpr, _ = EM.roc_curve(s, t)
    assert fpr[0] == 0 and tpr[-1] == 1 and np.all(np.diff(fpr) >= 0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(t, s), abs=1e-9)


def test_otsu_and_gmm_split_a_bimodal_sample():
    rng = np.random.default_rng(1)
    s = np.r_[rng.normal(0, 1, 900), rng.normal(8, 1, 100)]
    for method in ("otsu", "gmm"):
        th = C.threshold(s, method)
        assert 2.5 < th["threshold"] < 6.0
        assert th["mask"][900:].mean() > 0.98 and th["mask"][:900].mean() < 0.02
        assert th["ashman_d"] > 5


def test_pearson_and_deviance():
    y = np.array([[1.0, 2, 3, 4], [4, 3, 2, 1]])
    assert SP.pearson_score(y, y) == pytest.approx([0, 0])
    assert SP.pearson_score(y[:1], y[1:]) == pytest.approx([2.0])
    lam = np.array([5.0, 10, 20, 0.5])
    assert SP.poisson_deviance(lam, lam) == pytest.approx(0.0, abs=1e-12)
    assert SP.poisson_deviance(np.array([0.0, 3, 25, 0]), lam) > 0


def test_poisson_normalisation_whitens_poisson_noise():
    rng = np.random.default_rng(2)
    rows = rng.uniform(0.5, 2, 2000)[:, None]
    cols = rng.uniform(1, 50, 64)[None, :]
    lam = rows * cols
    X = rng.poisson(lam).astype(float)
    Xn, r, c = SP.poisson_normalise(X)
    resid = Xn - lam / r[:, None] / c[None, :]
    v = resid.var(0)
    assert v.max() / v.min() < 1.5  # roughly homoscedastic across very different channel means


def test_powerlaw_background_recovered():
    e = np.linspace(600, 750, 301)
    data = (3e9 * e ** (-3.0))[None, None, :] * np.array([1.0, 2.0])[None, :, None]
    out, bg, warns = SP.subtract_powerlaw(data.astype(np.float32), e, 620, 700)
    assert np.abs(out[..., e >= 620]).max() < 1e-3 * data.max()
    A, r = SP.powerlaw_fit(data, e, 620, 700)
    np.testing.assert_allclose(r, 3.0, atol=1e-6)
    assert not warns


def test_binning_sums_counts_and_spikes_removed():
    rng = np.random.default_rng(3)
    d = rng.poisson(100, (6, 6, 50)).astype(np.float32)
    b, _ = SP.bin_spatial(d, 2)
    assert b.shape == (3, 3, 50) and b.sum() == pytest.approx(d.sum())
    spiky = d.copy()
    spiky[2, 3, 20] += 5000
    clean, n = SP.remove_spikes(spiky)
    assert n >= 1 and abs(clean[2, 3, 20] - 100) < 40


def test_pca_fit_recovers_rank():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 3)) @ rng.normal(size=(3, 40)) + 5
    mean, V, sv = C.pca_fit(X, 3)
    ratio = C.explained_variance_ratio(sv)
    assert ratio[:3].sum() > 1 - 1e-10
    Xh = mean + (X - mean) @ V.T @ V
    np.testing.assert_allclose(Xh, X, atol=1e-8)


def test_shift_score_is_chi2_under_null_and_large_for_a_shift():
    rng = np.random.default_rng(5)
    e = np.arange(690, 730, 0.3)
    lam = 180 * (e / 690) ** -3 + 60 * np.exp(-0.5 * ((e - 708) / 1.3) ** 2)
    Y0 = rng.poisson(lam, (4000, e.size))
    s0 = C.shift_score(Y0, np.broadcast_to(lam, Y0.shape), e)
    assert s0.mean() == pytest.approx(1.0, abs=0.1)  # z^2 with z ~ N(0, 1)
    lam1 = 180 * (e / 690) ** -3 + 60 * np.exp(-0.5 * ((e - 709) / 1.3) ** 2)
    Y1 = rng.poisson(lam1, (400, e.size))
    s1 = C.shift_score(Y1, np.broadcast_to(lam, Y1.shape), e)
    assert EM.roc_auc(np.r_[s0, s1], np.r_[np.zeros(s0.size, bool), np.ones(s1.size, bool)]) > 0.95


def test_shift_glr_recovers_the_shift_and_is_small_under_null():
    rng = np.random.default_rng(6)
    e = np.arange(650, 750, 0.3)

    def lam(d):
        return 180 * (e / 650) ** -3 + 60 * np.exp(-0.5 * ((e - 708 - d) / 1.3) ** 2)

    ref = np.broadcast_to(lam(0.0), (300, e.size))
    for d in (0.0, 1.0, 4.0):
        Y = rng.poisson(lam(d), (300, e.size)).astype(float)
        lr, est = C.shift_glr(Y, ref, e, 690, 730)
        assert (lr >= 0).all()
        if d == 0:
            assert lr.mean() < 3
        else:
            assert np.median(est) == pytest.approx(d, abs=0.15)
            assert lr.mean() > 30


@pytest.mark.parametrize("n_new", [37, 192, 900])
def test_rebin_counts_preserves_counts(n_new):
    from workbench.physics.eels import spectra as SP

    rng = np.random.default_rng(0)
    e = 650.0 + 0.3 * np.arange(300)
    y = rng.poisson(40.0, (5, 6, 300)).astype(float)
    sl, grid = SP.net_grid(e, 660.0, 720.0, n_new)
    r = SP.rebin_counts(y[..., sl], e[sl], grid)
    assert r.shape == (5, 6, n_new) and (r >= -1e-9).all()
    np.testing.assert_allclose(r.sum(-1), y[..., sl].sum(-1), rtol=1e-12)
    # partial sums too: the counts below any new boundary are those below it on the old grid
    back = SP.rebin_counts(r, grid, e[sl])
    np.testing.assert_allclose(back.sum(-1), y[..., sl].sum(-1), rtol=1e-12)
    # a constant density stays constant (up to the channel width ratio)
    flat = SP.rebin_counts(np.ones(e[sl].size), e[sl], grid)
    np.testing.assert_allclose(flat, flat.mean(), rtol=1e-9)


def test_rebin_counts_keeps_a_peak_in_place():
    from workbench.physics.eels import spectra as SP

    e = np.arange(0.0, 100.0, 0.05)
    y = np.exp(-0.5 * ((e - 43.21) / 0.8) ** 2)
    g = np.arange(0.0, 100.0, 0.7) + 0.35
    r = SP.rebin_counts(y, e, g)
    assert (r * g).sum() / r.sum() == pytest.approx(43.21, abs=0.02)


def test_rankdata_agrees_with_scipy_on_ties_and_nan():
    from scipy.stats import rankdata

    from workbench.physics.eels.metrics import _rankdata

    rng = np.random.default_rng(0)
    cases = [rng.integers(0, 5, 200), rng.random(500), np.array([3.0, 3.0, 3.0]), np.zeros(0)]
    cases += [np.array([1.0, np.nan, 2.0]), rng.integers(0, 50, (7, 9))]
    for x in cases:
        want = rankdata(np.ravel(x), method="average")
        np.testing.assert_array_equal(_rankdata(x), want)


def _shift_glr_plain(Y, Yhat, energy, lo, hi, max_shift=5.0, step=0.1):
    """The GLR statistic as one expression per shift (the definition the buffered loop follows)."""
    win = C.window(energy, lo, hi, what="edge window")
    e = energy[win]
    Yw = np.clip(np.asarray(Y, np.float64)[..., win], 0, None)
    Yh = np.clip(np.asarray(Yhat, np.float64), 1e-9, None)
    idx = np.arange(energy.size, dtype=np.float64)
    log0 = np.log(Yh[..., win] / Yh[..., win].sum(-1, keepdims=True))
    best, best_d = np.zeros(Yh.shape[:-1]), np.zeros(Yh.shape[:-1])
    n = int(round(max_shift / step))
    for d in step * np.arange(-n, n + 1):
        if d == 0:
            continue
        pos = np.interp(e - d, energy, idx)
        i0 = np.clip(np.floor(pos).astype(int), 0, energy.size - 2)
        w = np.clip(pos - i0, 0.0, 1.0)
        sh = Yh[..., i0] * (1 - w) + Yh[..., i0 + 1] * w
        ll = (Yw * (np.log(sh / sh.sum(-1, keepdims=True)) - log0)).sum(-1)
        better = ll > best
        best, best_d = np.where(better, ll, best), np.where(better, d, best_d)
    return 2.0 * best, best_d


def test_shift_glr_equals_its_plain_definition_and_finds_a_planted_shift():
    rng = np.random.default_rng(3)
    energy = np.linspace(680.0, 740.0, 241)
    edge = 1 + np.tanh((energy - 708.0) / 1.5)
    Yhat = np.tile(50.0 * (1.2 + edge), (40, 1))
    shifted = 50.0 * (1.2 + 1 + np.tanh((energy - 709.0) / 1.5))  # planted: +1 eV
    Y = rng.poisson(np.vstack([np.tile(shifted, (8, 1)), Yhat[8:]])).astype(np.float64)
    lr, d = C.shift_glr(Y, Yhat, energy, 695.0, 725.0)
    lr0, d0 = _shift_glr_plain(Y, Yhat, energy, 695.0, 725.0)
    np.testing.assert_allclose(lr, lr0, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(d, d0)
    assert np.all(np.abs(d[:8] - 1.0) <= 0.3) and lr[:8].min() > np.percentile(lr[8:], 99)
