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
