"""Detector gain: estimated from the channel-to-channel noise and divided out before any
count-based score (issue 14)."""

import dataclasses

import numpy as np
import pytest

from workbench.physics.eels.spectra import gain_estimate
from workbench.solvers.eels import common as C
from workbench.solvers.eels import pca_recon, pca_t2


def _scaled(problem, g):
    """The same electrons read out with detector gain g (counts = g x electrons)."""
    return dataclasses.replace(problem, data=np.asarray(problem.data, np.float64) * g)


@pytest.mark.parametrize("g", [1.0, 3.7])
def test_gain_estimate_recovers_a_planted_gain(g):
    # detector counts g x Poisson(lambda / g): mean lambda, variance g x mean; a steep power-law
    # background on a coarse (8 eV) axis, where first differences overestimate g
    rng = np.random.default_rng(10)
    e = np.arange(700.0, 2000.0, 8.0)
    lam = 300.0 * (e / 700.0) ** -3.0
    y = g * rng.poisson(lam / g * np.ones((30, 30, 1)))
    gh, se = gain_estimate(y)
    assert gh == pytest.approx(g, rel=0.05)
    assert 0 < se < 0.05 * g


def test_gain_estimate_on_a_benchmark_cube(bench_cube):
    p = bench_cube(10003, 24)
    assert gain_estimate(p.data)[0] == pytest.approx(1.0, abs=C.GAIN_TOL / 2)
    assert gain_estimate(np.asarray(p.data) * 4.0)[0] == pytest.approx(4.0, rel=0.05)


@pytest.fixture(scope="module")
def shift_cube():
    from workbench.datasets.eels import synthetic
    from workbench.physics.eels.synth import BENCH_VARIABILITY

    kw = dict(n_pk=45.0, **BENCH_VARIABILITY, ny=24, nx=24, seed=10004, shift=1.0, fraction=0.05)
    return synthetic(kw, name="gain")


def test_shift_score_in_electrons_whatever_the_gain(shift_cube):
    # the property that makes the division right: the same electrons read with gain g score as
    # the electrons themselves (a given gain exactly, an estimated one to its estimate's error)
    g = 3.7
    ref = pca_recon.solve(shift_cube, pca_recon.Params(gain=1.0))
    ys = _scaled(shift_cube, g)
    given = pca_recon.solve(ys, pca_recon.Params(gain=g))
    np.testing.assert_allclose(given.output, ref.output, rtol=1e-6, atol=1e-9)
    auto = pca_recon.solve(ys, pca_recon.Params())
    gh = auto.metrics["gain"]
    assert gh == pytest.approx(g, rel=0.05) and auto.meta["gain"] == gh
    assert "detector gain 3.7 estimated from the channel-to-channel noise" in auto.message
    # a log-likelihood ratio on counts / g_hat is the one on electrons x g / g_hat
    tol = 2 * abs(gh / g - 1) + 0.02
    assert auto.metrics["threshold"] == pytest.approx(ref.metrics["threshold"], rel=tol)
    np.testing.assert_allclose(auto.output, ref.output * g / gh, rtol=tol, atol=tol)
    assert np.mean(auto.extras["mask"] != ref.extras["mask"]) <= 0.01
    # without the division the statistics are inflated about g-fold
    off = pca_recon.solve(ys, pca_recon.Params(gain=1.0))
    assert np.median(off.output) > 2.0 * np.median(ref.output)


def test_null_cube_with_gain_4_flags_few_pixels_with_auto_gain(bench_cube):
    # the benchmark's drift null read out with gain 4. Measured: auto-gain flags 0 of the 1024
    # pixels; with gain = 1 (counts taken as electrons) pca_recon flags 1 (0.1 %) -- parallel
    # analysis then takes the extra noise for structure (k = 10 instead of fewer), which
    # absorbs most of the inflation on this small cube; pca_t2 and pca_bulk flag 0 either way
    p = _scaled(bench_cube(10005, 32, "null", fraction=0.0, shift=0.0, drift=0.3), 4.0)
    r = pca_recon.solve(p, pca_recon.Params())
    assert r.metrics["gain"] == pytest.approx(4.0, rel=0.05)
    assert r.metrics["flagged_fraction"] <= 0.02


def test_gain_one_and_auto_on_electron_counts_change_nothing(shift_cube):
    # a gain-1 cube reads g within the tolerance: auto leaves it exactly as gain = 1 (off) does
    for mod in (pca_recon, pca_t2):
        a = mod.solve(shift_cube, mod.Params())
        b = mod.solve(shift_cube, mod.Params(gain=1.0))
        np.testing.assert_array_equal(a.output, b.output)
        np.testing.assert_array_equal(a.extras["mask"], b.extras["mask"])
        assert a.metrics["gain"] == 1.0 and abs(a.metrics["gain_estimate"] - 1) < C.GAIN_TOL
        assert "gain" not in a.message


def test_apply_gain_leaves_non_count_data_and_refuses_negative_gain():
    x = np.random.default_rng(0).normal(size=(8, 8, 20))  # not counts
    d, info, note = C.apply_gain(x, x, 0.0)
    assert d is x and info["gain"] == 1.0 and note == ""
    with pytest.raises(Exception, match="gain"):
        C.apply_gain(x, x, -2.0)
