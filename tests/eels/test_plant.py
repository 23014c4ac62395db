"""Planting an edge shift in a measured cube: counts kept, identity at zero shift, the edge part
moves by the planted channels, the background model separates edge from background."""

import numpy as np
import pytest

from workbench.errors import InputError
from workbench.physics.eels.plant import (
    dispersion_index,
    edge_fraction,
    plant_edge_shift,
    round_random,
    shift_counts,
)


def _cube(seed=0, ny=10, nx=12, dispersion=0.5):
    """Poisson counts of a power-law background plus a white line and step at 700 eV that
    ends well before the last channel (so nothing is shifted off the axis)."""
    rng = np.random.default_rng(seed)
    e = 650.0 + dispersion * np.arange(int(100 / dispersion))
    bg = 400.0 * (e / 650.0) ** -3.0
    edge = 150.0 * np.exp(-0.5 * ((e - 703.0) / 1.5) ** 2) + 40.0 / (
        1.0 + np.exp(-(e - 700.0) / 0.8)
    )
    edge = edge * (e < 735.0)
    lam = np.broadcast_to(bg + edge, (ny, nx, e.size))
    return rng.poisson(lam).astype(np.float32), e


def _mask(ny=10, nx=12):
    m = np.zeros((ny, nx), bool)
    m[3:6, 4:8] = True
    return m


def test_zero_shift_returns_the_input_exactly():
    y, e = _cube()
    out = plant_edge_shift(y, e, 700.0, 0.0, _mask(), rng=np.random.default_rng(1))
    np.testing.assert_array_equal(out["data"], y)


def test_counts_preserved_and_normal_pixels_untouched():
    y, e = _cube()
    m = _mask()
    for shift in (0.5, 0.3, 1.0):  # integer and fractional numbers of channels
        out = plant_edge_shift(y, e, 700.0, shift, m, rng=np.random.default_rng(2), edge_end=740.0)
        d = out["data"]
        np.testing.assert_array_equal(d[~m], y[~m])
        # every pixel keeps its total: the edge part is zero in the last channels
        np.testing.assert_array_equal(d.sum(-1), y.sum(-1))
        assert np.array_equal(d, np.round(d)) and d.min() >= 0
        assert not np.array_equal(d[m], y[m])


def test_shifted_edge_part_moves_by_the_planted_channels():
    y, e = _cube()
    m = _mask()
    # 1 eV = 2 channels
    out = plant_edge_shift(y, e, 700.0, 1.0, m, rng=np.random.default_rng(3), edge_end=740.0)
    assert out["channels"] == pytest.approx(2.0)
    edge = out["edge"]
    background = y.astype(np.int64) - edge
    moved = out["data"].astype(np.int64)[m] - background[m]
    np.testing.assert_array_equal(moved[:, 2:], edge[m][:, :-2])
    np.testing.assert_array_equal(moved[:, :2], 0)


def test_fractional_shift_moves_each_count_m_or_m_plus_one_channels():
    rng = np.random.default_rng(4)
    part = rng.poisson(50.0, size=(200, 30))
    part[:, -3:] = 0
    out = shift_counts(part, 1.25, rng)
    assert out.sum() == part.sum()
    # mean displacement 1.25 channels: centroid of the counts moves by that much
    k = np.arange(30)
    d = (out * k).sum() / out.sum() - (part * k).sum() / part.sum()
    assert d == pytest.approx(1.25, abs=0.02)


def test_edge_fraction_finds_the_edge_not_the_background():
    y, e = _cube(ny=16, nx=16)
    p = edge_fraction(y, e, 700.0)
    mean = p.mean((0, 1))
    assert mean[e < 699.0].max() == 0.0
    # at the white line (703 eV) the true edge share is 189 / (316 + 189) = 0.37
    i = int(np.argmin(np.abs(e - 703.0)))
    assert mean[i] == pytest.approx(0.37, abs=0.04)
    # well above the edge's end the fraction returns near zero
    assert mean[e > 745.0].mean() < 0.05


def test_gain_scaled_counts_keep_their_variance():
    # detector counts = 4 x Poisson electrons: thinning on electrons keeps Var = 4 x mean in
    # the planted pixels (thinning the detector counts directly would lose most of the edge
    # part's noise)
    rng = np.random.default_rng(5)
    g, n, ne = 4.0, 64, 40
    e = 700.0 + np.arange(ne, dtype=float)
    lam_e = np.full(ne, 50.0)
    lam_e[20:] += 100.0  # an edge step: 2/3 of the counts above 719 eV are edge signal
    y = (g * rng.poisson(lam_e, size=(n, n, ne))).astype(np.float32)
    # (away from the step, whose curvature is no noise)
    assert dispersion_index(y[..., :18]) == pytest.approx(g, rel=0.05)
    mask = np.ones((n, n), bool)
    out = plant_edge_shift(
        y, e, 719.5, 3.0, mask, rng=np.random.default_rng(6), pre=(705.0, 718.0), gain=g
    )["data"]
    k = slice(26, 36)  # well inside the edge after the 3-channel shift
    ratio = out[..., k].var((0, 1)) / out[..., k].mean((0, 1))
    assert ratio.mean() == pytest.approx(g, rel=0.04)
    assert out[..., k].mean() == pytest.approx(g * 150.0, rel=0.02)


def test_non_counts_refused():
    y, e = _cube()
    with pytest.raises(InputError, match="raw counts"):
        plant_edge_shift(y * 0.37, e, 700.0, 0.5, _mask(), rng=np.random.default_rng(0))


def test_round_random_is_unbiased_and_lands_on_a_neighbour():
    # dark-reference-corrected float counts are rounded this way before planting
    x = np.array([0.0, 2.25, 7.5, 10.9, 3.0])
    draws = round_random(np.broadcast_to(x, (40000, x.size)), np.random.default_rng(1))
    assert draws.dtype.kind == "i"
    assert set(np.unique(draws - np.floor(x))) <= {0, 1}
    np.testing.assert_allclose(draws.mean(0), x, atol=0.01)
    assert (draws[:, [0, 4]] == x[[0, 4]]).all()  # integers stay
