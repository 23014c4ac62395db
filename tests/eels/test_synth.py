"""Generator: reproducibility and physics sanity."""

import numpy as np
import pytest

from workbench.physics.eels.synth import SynthParams, energy_axis, generate, place_discs


def test_same_seed_same_cube_and_different_seed_differs():
    a = generate(ny=16, nx=16, shift=1.0, fraction=0.05, seed=3)
    b = generate(ny=16, nx=16, shift=1.0, fraction=0.05, seed=3)
    c = generate(ny=16, nx=16, shift=1.0, fraction=0.05, seed=4)
    np.testing.assert_array_equal(a["data"], b["data"])
    np.testing.assert_array_equal(a["truth"], b["truth"])
    assert a["params"] == b["params"]
    assert not np.array_equal(a["data"], c["data"])


def test_global_rng_untouched():
    st = np.random.get_state()[1].copy()  # noqa: NPY002
    generate(ny=8, nx=8, seed=0)
    assert np.array_equal(st, np.random.get_state()[1])  # noqa: NPY002


def test_energy_axis_and_shapes():
    e = energy_axis(650.0, 750.0, 0.3)
    assert e[0] == 650.0 and abs(e[-1] - 749.9) < 1e-9 and np.all(np.diff(e) > 0)
    g = generate(ny=12, nx=10, seed=0)
    assert g["data"].shape == (12, 10, e.size) and g["data"].dtype == np.float32
    assert g["truth"].shape == (12, 10) and g["truth"].dtype == bool


def test_white_lines_background_and_dose():
    g = generate(ny=24, nx=24, fraction=0.0, n_pk=720.0, keep_clean=True, seed=0, c_o=0.0)
    e, lam = g["energy"], g["clean"].astype(float)
    mean = lam.mean((0, 1))
    # L3 maximum near 708 eV, L2 near 721 eV
    l3 = e[(e > 700) & (e < 716)][np.argmax(mean[(e > 700) & (e < 716)])]
    l2 = e[(e > 716) & (e < 728)][np.argmax(mean[(e > 716) & (e < 728)])]
    assert abs(l3 - 708.0) < 0.5 and abs(l2 - 721.0) < 0.7
    # background alone (no Fe, no O): a power law E^-3 with B(708) = n_pk / 0.25 at t = 1
    h = generate(
        ny=24, nx=24, fraction=0.0, n_pk=720.0, keep_clean=True, seed=0, c_range=(0.0, 0.0), c_o=0.0
    )
    bg = h["clean"].astype(float).mean((0, 1))
    slope = np.polyfit(np.log(e), np.log(bg), 1)[0]
    assert slope == pytest.approx(-3.0, abs=0.02)
    t, c = g["thickness"], g["c_fe"]
    np.testing.assert_array_equal(t, h["thickness"])  # same seed, same thickness map
    i708 = np.argmin(np.abs(e - 708.0))
    assert bg[i708] == pytest.approx(720.0 / 0.25 * t.mean(), rel=0.02)
    # dose: Fe-L3 maximum above background = n_pk * <t c / 0.5>
    assert (mean - bg)[i708 - 3 : i708 + 4].max() == pytest.approx(
        720.0 * (t * c / 0.5).mean(), rel=0.03
    )
    # Poisson noise: variance ~ mean
    r = (g["data"] - g["clean"]) / np.sqrt(g["clean"])
    assert abs(r.var() - 1.0) < 0.05


def test_shift_moves_fe_edge_by_the_planted_amount():
    g = generate(ny=32, nx=32, shift=2.0, fraction=0.1, n_pk=720.0, keep_clean=True, seed=2)
    e, lam, t = g["energy"], g["clean"].astype(float), g["truth"]
    assert t.any() and (g["shift_map"][t] == 2.0).all() and (g["shift_map"][~t] == 0).all()
    win = (e > 700) & (e < 716)

    def centroid(spec):
        s = spec[win] - spec[win].min()
        return (s * e[win]).sum() / s.sum()

    a = lam[t].mean(0) / lam[t].mean(0).sum()
    b = lam[~t].mean(0) / lam[~t].mean(0).sum()
    assert centroid(a) - centroid(b) == pytest.approx(2.0, abs=0.35)


@pytest.mark.parametrize("fraction", [0.01, 0.03, 0.1])
def test_discs_reach_fraction_without_overlap(fraction):
    rng = np.random.default_rng(0)
    mask, discs = place_discs(rng, 64, 64, fraction, 3, 6, 2)
    assert fraction <= mask.mean() <= fraction + 0.03
    for i, a in enumerate(discs):
        for b in discs[i + 1 :]:
            assert np.hypot(a["y"] - b["y"], a["x"] - b["x"]) >= a["r"] + b["r"]


def test_params_are_recorded():
    g = generate(SynthParams(ny=8, nx=8, shift=0.5, fraction=0.05, seed=9))
    p = g["params"]
    assert (
        p["shift"] == 0.5
        and p["seed"] == 9
        and "achieved_fraction" in p
        and isinstance(p["discs"], list)
    )


def _centroid(e, spec, lo, hi):
    win = (e > lo) & (e < hi)
    s = spec[win] - spec[win].min()
    return (s * e[win]).sum() / s.sum()


def test_drift_moves_every_feature_and_is_recorded():
    kw = dict(
        ny=24, nx=24, fraction=0.0, n_pk=720.0, keep_clean=True, seed=3, others=(("Mn L", 0.8),)
    )
    a = generate(**kw, e_min=620.0, e_max=740.0, dispersion=0.05)
    b = generate(**kw, e_min=620.0, e_max=740.0, dispersion=0.05, drift=0.5, jitter=0.1)
    d = b["drift_map"]
    assert np.abs(d).max() > 0.3 and d.std() > 0.1 and np.abs(a["drift_map"]).max() == 0
    e = a["energy"]
    inner = (e > 630.0) & (e < 730.0)
    for iy, ix in (
        np.unravel_index(np.argmax(d), d.shape),
        np.unravel_index(np.argmin(d), d.shape),
    ):
        sa, sb = a["clean"][iy, ix].astype(float), b["clean"][iy, ix].astype(float)
        moved = np.interp(e - d[iy, ix], e, sa)  # the whole spectrum (Mn L, Fe L, background)
        assert np.abs(moved - sb)[inner].max() < 2e-3 * sb.max()
        assert np.abs(sa - sb)[inner].max() > 2e-2 * sb.max()


def test_background_exponent_and_amplitude_vary_per_pixel():
    g = generate(
        ny=24,
        nx=24,
        fraction=0.0,
        keep_clean=True,
        seed=0,
        bg_exponent_sd=0.3,
        bg_amp_range=(0.6, 1.4),
        c_range=(0.0, 0.0),
        c_o=0.0,
        n_pk=720.0,
    )
    e, lam = g["energy"], g["clean"].astype(float)
    slopes = np.array([np.polyfit(np.log(e), np.log(s), 1)[0] for s in lam.reshape(-1, e.size)])
    np.testing.assert_allclose(-slopes, g["bg_exponent"].ravel(), atol=0.02)
    assert g["bg_exponent"].std() == pytest.approx(0.3, rel=0.05)


def test_plural_scattering_grows_with_thickness():
    kw = dict(ny=16, nx=16, fraction=0.0, n_pk=720.0, keep_clean=True, seed=1, c_o=0.0)
    e = generate(**kw)["energy"]
    single = generate(**kw)["clean"].astype(float)
    plural = generate(**kw, plural=True, t_lambda=(0.2, 1.2), e_max=760.0)
    tau = plural["tau"]
    lamp = plural["clean"].astype(float)[..., : e.size]
    # the plasmon replica of the L3 line sits E_p = 22 eV above it; it grows with t / lambda
    i_rep = np.argmin(np.abs(e - 730.0))
    i_l3 = np.argmin(np.abs(e - 708.0))
    rel = lamp[..., i_l3] / single[..., i_l3]
    assert np.corrcoef(tau.ravel(), rel.ravel())[0, 1] < -0.9  # the single-scattering share drops
    rep = (lamp[..., i_rep] / single[..., i_rep]) / rel  # replica relative to the L3 line
    assert np.corrcoef(tau.ravel(), rep.ravel())[0, 1] > 0.9


@pytest.mark.parametrize("edge", ["O K", "Ti L", "Mn L", "Fe L"])
def test_each_edge_has_its_onset_where_the_table_says(edge):
    from workbench.physics.eels.synth import EDGE_TABLE

    on = EDGE_TABLE[edge].onset
    g = generate(
        ny=8,
        nx=8,
        fraction=0.0,
        n_pk=720.0,
        keep_clean=True,
        seed=0,
        edge=edge,
        c_o=0.0,
        e_min=on - 30,
        e_max=on + 40,
        dispersion=0.1,
    )
    e, m = g["energy"], g["clean"].astype(float).mean((0, 1))
    near = (e > on - 4) & (e < on + 4)
    expect = EDGE_TABLE[edge].peak if edge == "O K" else on  # K: near-edge peak; L: L3 line
    assert abs(e[near][np.argmax(m[near])] - expect) < 0.6
    d = np.diff(m)
    assert e[np.argmax(d)] == pytest.approx(on, abs=2.0)


def test_ratio_and_phase_anomalies_keep_area_and_change_shape():
    kw = dict(
        ny=32,
        nx=32,
        fraction=0.1,
        n_pk=720.0,
        keep_clean=True,
        seed=2,
        c_range=(0.5, 0.5),
        t_range=(1.0, 1.0),
        c_o=0.0,
    )
    base = generate(**dict(kw, fraction=0.0))["clean"].astype(float)[0, 0]
    e = generate(**dict(kw, fraction=0.0))["energy"]
    for kind in ("ratio", "phase"):
        g = generate(**kw, anomaly=kind)
        t = g["truth"]
        assert t.any() and (g["shift_map"] == 0).all()
        an = g["clean"].astype(float)[t][0]
        assert abs(an.sum() - base.sum()) / base.sum() < 0.01  # white-line area preserved
        assert np.abs(an - base).max() > 0.05 * 720.0  # n_pk: the L3 height above background
        l3 = (e > 703) & (e < 713)
        l2 = (e > 716) & (e < 726)
        r_base = (base[l3] - base[l3].min()).sum() / (base[l2] - base[l2].min()).sum()
        r_an = (an[l3] - an[l3].min()).sum() / (an[l2] - an[l2].min()).sum()
        if kind == "ratio":
            assert r_an > 1.2 * r_base
        else:  # split white lines: a lower, wider L3 maximum
            assert np.ptp(an[l3]) < 0.9 * np.ptp(base[l3])


@pytest.mark.parametrize("dispersion", [0.05, 1.0])
def test_any_dispersion_and_range(dispersion):
    g = generate(ny=8, nx=8, seed=0, dispersion=dispersion, e_min=600.0, e_max=780.0)
    assert np.allclose(np.diff(g["energy"]), dispersion)
    assert np.isfinite(g["data"]).all() and g["data"].shape[-1] == g["energy"].size


def test_zero_loss_peak_sits_at_the_drifted_zero():
    g = generate(
        ny=8,
        nx=8,
        fraction=0.0,
        seed=0,
        e_min=-10.0,
        e_max=120.0,
        dispersion=0.1,
        zero_loss=200.0,
        drift=0.4,
        keep_clean=True,
        edge="C K",
        c_o=0.0,
    )
    e, lam = g["energy"], g["clean"].astype(float)
    near = np.abs(e) < 3
    peak = e[near][np.argmax(lam[..., near], -1)]
    np.testing.assert_allclose(peak, g["drift_map"], atol=0.06)


@pytest.mark.parametrize("mode", ["nearest", "constant", "wrap", "reflect"])
def test_own_gaussian_filter_is_scipys_number_for_number(mode):
    """The synthesis smooths with its own Gaussian filter (no scipy.ndimage import at start-up):
    the same numbers as scipy's, including kernels wider than the axis."""
    from scipy import ndimage

    from workbench.physics.eels.synth import gaussian_filter, gaussian_filter1d

    rng = np.random.default_rng(0)
    x = rng.random((6, 40))
    for sigma in (0.3, 1.0, 2.7, 15.0):
        for axis in (0, 1):
            want = ndimage.gaussian_filter1d(x, sigma, axis=axis, mode=mode)
            np.testing.assert_array_equal(gaussian_filter1d(x, sigma, axis=axis, mode=mode), want)
        np.testing.assert_array_equal(
            gaussian_filter(x, sigma, mode=mode), ndimage.gaussian_filter(x, sigma, mode=mode)
        )
