"""Default thresholds with a controlled false-alarm rate for Hotelling's T^2 and the Fe-L3
centroid (the robust empirical null of ``common.robust_threshold``): anomaly-free cubes flag
almost nothing where Otsu always splits the histogram, and a planted anomaly is still flagged."""

import numpy as np
import pytest

from workbench.datasets.eels import DOMAIN
from workbench.errors import InputError
from workbench.physics.eels import spectra as SP
from workbench.solvers.eels import common as C
from workbench.solvers.eels import pca_t2


def test_robust_threshold_false_alarm_rate_on_known_nulls():
    rng = np.random.default_rng(0)
    # chi-square maps of any degrees of freedom (T^2 of k components, or pooled): the cube root
    # is near normal, so about the one-sided normal tail beyond z is flagged
    for k in (2, 3, 10, 40):
        s = rng.chisquare(k, 200_000)
        assert (s > C.robust_threshold(s, "t2", 3.2905)).mean() == pytest.approx(5e-4, abs=3e-4)
        assert (s > C.robust_threshold(s, "t2")).mean() < 5e-4
    # centroid deviations |c - median| of a normal map: two-sided 0.1 %
    c = 708.0 + 0.05 * rng.standard_normal(200_000)
    d = np.abs(c - np.median(c))
    assert (d > C.robust_threshold(d, "centroid")).mean() == pytest.approx(1e-3, abs=3e-4)
    with pytest.raises(InputError):
        C.robust_threshold(d, "pearson")


def test_robust_threshold_ignores_a_minority_of_anomalies():
    rng = np.random.default_rng(1)
    c = 708.0 + 0.05 * rng.standard_normal(4096)
    c[:120] += 1.0  # 3 % of the pixels shifted by 1 eV (20 sd)
    d = np.abs(c - np.median(c))
    m = C.threshold(d, "auto", "centroid")["mask"]
    assert m[:120].all() and m[120:].mean() < 0.005
    # Otsu on the same map splits at the gap too, but on a null it always splits
    null = np.abs(c[120:] - np.median(c[120:]))
    assert C.threshold(null, "otsu")["mask"].mean() > 0.05
    assert C.threshold(null, "auto", "centroid")["mask"].mean() < 0.005


@pytest.fixture(scope="module")
def null_cube(bench_cube):
    # the benchmark's drift null on a smaller map
    return bench_cube(31, 40, "null", fraction=0.0, shift=0.0, drift=0.3)


def test_pca_t2_default_threshold_calibrated_on_a_no_anomaly_cube(null_cube):
    r = pca_t2.solve(null_cube, pca_t2.Params())
    assert r.meta["score"] == "t2"
    assert r.metrics["flagged_fraction"] <= 0.02
    # the old default (Otsu) flags a large share of the same anomaly-free map
    assert (
        pca_t2.solve(null_cube, pca_t2.Params(threshold="otsu")).metrics["flagged_fraction"] > 0.05
    )


def test_centroid_default_threshold_calibrated_on_a_no_anomaly_cube(null_cube):
    c = SP.centroid_map(null_cube.data, np.asarray(null_cube.energy))
    d = np.abs(c - np.median(c))
    assert C.threshold(d, "auto", "centroid")["mask"].mean() <= 0.02
    assert C.threshold(d, "otsu")["mask"].mean() > 0.05


def test_pca_t2_default_threshold_still_flags_a_planted_shift():
    prob = DOMAIN.sample("default_1eV_3pct", shift=2.0)
    r = pca_t2.solve(prob, pca_t2.Params())
    m, t = r.extras["mask"], prob.truth
    # the pooled map (sd 3 px) dilutes the edges of discs of radius 3-6 px: the cores are found
    assert m[t].mean() > 0.2, m[t].mean()
    assert m[~t].mean() < 0.005
    r0 = pca_t2.solve(prob, pca_t2.Params(pool=0.0))
    assert r0.extras["mask"][t].mean() > 0.5 and r0.extras["mask"][~t].mean() < 0.01


def test_deviance_default_threshold_calibrated_on_a_no_anomaly_cube(null_cube):
    """'look for' = phase scores the pooled Poisson deviance; its default threshold is the
    robust empirical null (Otsu flagged about half of an anomaly-free cube)."""
    from workbench.solvers.eels import pca_recon

    r = pca_recon.solve(null_cube, pca_recon.Params(look_for="phase"))
    assert r.meta["score"] == "nll"
    assert r.metrics["flagged_fraction"] <= 0.02
    otsu = pca_recon.solve(null_cube, pca_recon.Params(look_for="phase", threshold="otsu"))
    assert otsu.metrics["flagged_fraction"] > 0.05
