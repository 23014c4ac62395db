"""Per-pixel energy alignment, components from parallel analysis, score choice, thresholds."""

import numpy as np
import pytest

from workbench.errors import InputError
from workbench.physics.eels import spectra as SP
from workbench.physics.eels.synth import generate
from workbench.solvers.eels import common as C


def _rms(a):
    return float(np.sqrt(np.mean(np.asarray(a) ** 2)))


def test_shift_spectra_conserves_counts_and_inverts_a_known_shift():
    rng = np.random.default_rng(0)
    e = 600.0 + 0.25 * np.arange(400)
    y = rng.poisson(30.0, (4, 5, e.size)).astype(float)
    y[..., :10] = y[..., -10:] = 0.0  # nothing is pushed past either end of the axis
    d = rng.uniform(-0.6, 0.6, (4, 5))
    moved = SP.shift_spectra(y, e, d)
    np.testing.assert_allclose(moved.sum(-1), y.sum(-1), rtol=1e-6)
    back = SP.shift_spectra(moved, e, -d)
    np.testing.assert_allclose(back.sum(-1), y.sum(-1), rtol=1e-6)
    # an integer-channel shift moves the counts exactly
    np.testing.assert_allclose(
        SP.shift_spectra(y, e, np.full((4, 5), 0.5))[..., :-2], y[..., 2:], atol=1e-3
    )
    peak = np.exp(-0.5 * ((e - 650.0) / 1.0) ** 2)
    s = SP.shift_spectra(peak[None], e, np.array([0.4]))[0]  # features 0.4 eV high -> moved down
    assert (s * e).sum() / s.sum() == pytest.approx(650.0 - 0.4, abs=1e-3)


def test_alignment_recovers_a_planted_drift_on_the_zero_loss_peak():
    g = generate(
        ny=24,
        nx=24,
        fraction=0.0,
        seed=1,
        e_min=-10.0,
        e_max=120.0,
        dispersion=0.1,
        edge="C K",
        c_o=0.0,
        zero_loss=200.0,
        drift=0.3,
        jitter=0.1,
    )
    out, d, note = SP.align(g["data"], g["energy"])
    assert "zero-loss" in note
    true = g["drift_map"] - g["drift_map"].mean()
    assert _rms(true) > 0.1
    assert _rms(d - true) <= 0.05
    # after alignment the zero-loss peak sits at one energy in every pixel
    e = g["energy"]
    near = np.abs(e) < 2
    w = out[..., near]
    c = (w * e[near]).sum(-1) / w.sum(-1)
    assert c.std() < 0.05


def test_alignment_recovers_a_planted_drift_on_a_reference_edge_and_keeps_the_chemical_shift():
    # Mn L (reference) and Fe L (studied, shifted in discs): alignment must not erase the shift
    g = generate(
        ny=32,
        nx=32,
        fraction=0.1,
        shift=1.0,
        n_pk=720.0,
        seed=2,
        e_min=620.0,
        e_max=740.0,
        c_o=0.0,
        others=(("Mn L", 1.0),),
        drift=0.3,
        jitter=0.05,
    )
    found = SP.reference_feature(g["data"], g["energy"], exclude=(690.0, 730.0))
    assert found is not None and found[0] == "Mn L"
    out, d, note = SP.align(g["data"], g["energy"], exclude=(690.0, 730.0))
    true = g["drift_map"] - g["drift_map"].mean()
    assert _rms(d - true) <= 0.05
    # the Fe-L centroid difference between discs and bulk survives alignment (about 1 eV)
    fe = SP.estimate_drift(out, g["energy"], 696.0, 730.0)
    t = g["truth"]
    assert fe[t].mean() - fe[~t].mean() == pytest.approx(1.0, abs=0.15)


def test_auto_alignment_does_nothing_without_a_reference_feature():
    g = generate(ny=16, nx=16, seed=0)  # 650-750 eV: only the Fe-L edge under study
    out, d, note = SP.align(g["data"], g["energy"], exclude=(690.0, 730.0))
    assert d is None and out is g["data"] and "not aligned" in note
    with pytest.raises(InputError):
        SP.align(g["data"], g["energy"], mode="on", exclude=(690.0, 730.0))
    # a feature too faint to align a single pixel on is not used (it would add jitter)
    faint = generate(ny=16, nx=16, seed=0, e_min=500.0, n_pk=4.5)
    assert SP.reference_feature(faint["data"], faint["energy"], exclude=(690.0, 730.0)) is None


def test_parallel_analysis_counts_planted_components():
    rng = np.random.default_rng(0)
    n, c = 1500, 120
    e = np.linspace(0, 1, c)
    base = 200.0 * np.exp(-e)
    comps = [np.exp(-0.5 * ((e - m) / 0.04) ** 2) for m in (0.3, 0.6)]
    inten = rng.uniform(0.7, 1.3, n)
    lam = inten[:, None] * (base + sum(rng.uniform(0, 60, n)[:, None] * p for p in comps))
    k, ev, q = C.parallel_analysis(rng.poisson(lam).astype(float))
    assert k == 3  # two spectral components + the intensity direction
    k0, _, _ = C.parallel_analysis(rng.poisson(inten[:, None] * base).astype(float))
    assert k0 == 1


def test_score_follows_the_anomaly_sought():
    assert C.resolve_score("auto", "shift") == "shift"
    assert C.resolve_score("auto", "ratio") == "ratio"
    assert C.resolve_score("auto", "phase") == "nll"
    assert C.resolve_score("pearson", "shift") == "pearson"
    with pytest.raises(InputError):
        C.resolve_score("auto", "colour")


@pytest.mark.parametrize("value", [0.0, 1.0, 1e6, -3.5])
def test_threshold_on_constant_scores_flags_nothing(value):
    for method in ("otsu", "gmm"):
        th = C.threshold(np.full((8, 8), value), method)
        assert not th["mask"].any() and th["ashman_d"] == 0.0
    with pytest.raises(InputError):
        C.threshold(np.array([1.0, np.nan, 2.0]))


def test_pca_detectors_align_by_default_and_choose_k_from_the_data():
    from workbench.datasets.eels import synthetic
    from workbench.physics.eels import metrics as EM
    from workbench.solvers.eels import pca_recon

    kw = dict(ny=32, nx=32, shift=1.0, fraction=0.06, n_pk=180.0, seed=4, e_min=620.0)
    kw.update(others=(("Mn L", 1.5),), drift=0.4, jitter=0.05)
    p = synthetic(kw)
    r = pca_recon.solve(p, pca_recon.Params())
    assert "aligned on Mn L" in r.message and "parallel analysis" in r.message
    assert r.meta["score"] == "shift" and r.meta["k"] >= 2
    true = p.meta["generator"]["drift_rms"]
    assert true > 0.1 and "drift_map" in r.extras
    off = pca_recon.solve(p, pca_recon.Params(align="off"))
    assert "alignment off" in off.message
    # drift left in reads as a chemical shift: alignment must not make detection worse
    assert EM.roc_auc(r.output, p.truth) >= EM.roc_auc(off.output, p.truth) - 0.01
    assert EM.roc_auc(r.output, p.truth) > 0.9


def test_calibrated_threshold_flags_about_a_thousandth_of_null_pixels():
    rng = np.random.default_rng(0)
    null = rng.chisquare(1, 20000)
    th = C.threshold(null, "auto", "shift")
    assert th["mask"].mean() < 0.003  # chi2(1) 0.999 quantile
    inflated = 2.5 * null  # misfit inflates the statistic: the median rescales the threshold
    assert C.threshold(inflated, "auto", "shift")["mask"].mean() < 0.003
    planted = null.copy()
    planted[:400] += 60.0  # 2 % strong anomalies: all found, few false alarms
    m = C.threshold(planted, "auto", "shift")["mask"]
    assert m[:400].all() and m[400:].mean() < 0.003
    # Otsu splits any histogram in two: on the same null it flags far more
    assert C.threshold(null, "otsu")["mask"].mean() > 0.02
    # other scores keep Otsu under "auto"
    assert (
        C.threshold(null, "auto", "pearson")["threshold"] == C.threshold(null, "otsu")["threshold"]
    )


def test_shape_misfit_is_zero_for_a_pure_drift_and_reads_a_planted_shape_change():
    rng = np.random.default_rng(3)
    e = 500.0 + 0.25 * np.arange(120)
    t = 1.0 + np.exp(-0.5 * ((e - 515.0) / 2.0) ** 2)
    y = rng.poisson(4000.0 * t, (20, 20, e.size)).astype(float)
    assert SP.shape_misfit(y, e, 500.0, 530.0) < 0.005
    # gain-scaled counts are still a pure shape: the gain is divided out, not read as misfit
    assert SP.shape_misfit(2.5 * y, e, 500.0, 530.0, gain=2.5) < 0.005
    # half the map with a shape 10 % off the mean in every channel (sign alternating)
    w = np.where(np.arange(e.size) % 2 == 0, 1.0, -1.0)
    y[:10] = rng.poisson(4000.0 * t * (1.0 + 0.2 * w), (10, 20, e.size))
    y[10:] = rng.poisson(4000.0 * t * (1.0 - 0.2 * w), (10, 20, e.size))
    assert SP.shape_misfit(y, e, 500.0, 530.0) == pytest.approx(0.2, rel=0.1)


def test_auto_alignment_refuses_a_reference_edge_whose_shape_changes_across_the_map():
    # a strong Mn L in the top half of the map, a tenth of it below, no drift: aligned on it, the
    # halves differ by 0.3 eV (the weak half's offsets are its missing edge read as a drift; on a
    # measured line scan O K gave 1.05 eV rms against the zero-loss peak's 0.15 eV)
    kw = dict(ny=12, nx=24, fraction=0.0, n_pk=720.0, seed=4, e_min=620.0, e_max=740.0, c_o=0.0)
    with_mn = generate(others=(("Mn L", 2.0),), **kw)
    without = generate(others=(("Mn L", 0.2),), **kw)
    data = np.concatenate([with_mn["data"], without["data"]], axis=0)
    e = with_mn["energy"]
    out, d, note = SP.align(data, e, exclude=(690.0, 730.0))
    assert d is None and out is data
    assert "not aligned" in note and "changes shape" in note
    out, d, note = SP.align(data, e, mode="on", exclude=(690.0, 730.0))
    assert d is not None and "warning" in note
