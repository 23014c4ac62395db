"""pca_recon's "dload" template (``pca.fit_dload``): the PCA with its loading on the edge-shift
direction fitted by a trimmed regression, so that anomalous discs whose bulk scores differ from
the map's average do not tilt the template towards their shift."""

import numpy as np
import pytest

from workbench.solvers.eels import pca as P

NY = NX = 24
C_CH = 60
E = np.arange(C_CH, dtype=np.float64)
EDGE = slice(15, 50)


def _mean_spectrum():
    # a smooth background with an edge at channel 30
    return 2.0 + 0.02 * (C_CH - E) + 1.0 / (1.0 + np.exp(-(E - 30.0) / 1.5))


def test_shift_directions_are_the_first_order_shift_of_the_template():
    m = _mean_spectrum()
    col = np.ones(C_CH)
    D = P.shift_directions(m, col, E, EDGE, order=2)
    np.testing.assert_allclose(D @ D.T, np.eye(2), atol=1e-12)
    outside = np.ones(C_CH, bool)
    outside[EDGE] = False
    assert np.abs(D[:, outside]).max() < 1e-15
    # a small shift of the edge moves the spectrum along D[0]: x(E - delta) - x(E) ~ -delta x'(E)
    delta = 0.05
    moved = np.interp(E - delta, E, m) - m
    moved[outside] = 0.0
    cos = abs(moved @ D[0]) / np.linalg.norm(moved)
    # (not 1: the shift interpolates linearly between channels, the gradient is central)
    assert cos > 0.98


def _planted(seed=0, delta=1.0, k=2, noise=0.01):
    """Counts-free planted matrix (no Poisson normalisation): x_i = m + z_i W + noise, plus a
    shift delta d in a disc placed where the first bulk score is high (so the shift and the
    bulk scores are correlated, the case the trimmed regression is for)."""
    rng = np.random.default_rng(seed)
    m = _mean_spectrum()
    d = P.shift_directions(m, np.ones(C_CH), E, EDGE)[0]
    yy, xx = np.mgrid[:NY, :NX]
    z = np.stack([xx / NX - 0.5, np.sin(yy / 4.0)], -1).reshape(-1, 2)[:, :k]
    W = rng.normal(size=(k, C_CH)) * 0.3
    W -= np.outer(W @ d, d)  # the bulk itself has no loading on d
    disc = ((yy - 12) ** 2 + (xx - 19) ** 2 <= 9).ravel()
    X = m + z @ W + noise * rng.normal(size=(NY * NX, C_CH))
    X[disc] += delta * 0.05 * d
    return X, disc, d


def test_dload_is_exact_on_noiseless_rank_k_data_with_any_shift_loading():
    rng = np.random.default_rng(3)
    m = _mean_spectrum()
    Z = rng.normal(size=(NY * NX, 2))
    W = rng.normal(size=(2, C_CH))  # a generic loading, partly along the shift direction
    X = m + Z @ W
    for trim in (0.0, 0.1):
        fit = P.fit_dload(X, 2, False, (NY, NX), E, EDGE, trim=trim)
        np.testing.assert_allclose(fit["X_hat"], X, atol=1e-9)


def test_trimmed_shift_loading_leaves_the_disc_out_of_its_template():
    X, disc, d = _planted()
    ls = P.fit_dload(X, 2, False, (NY, NX), E, EDGE, trim=0.0)
    tr = P.fit_dload(X, 2, False, (NY, NX), E, EDGE, trim=0.1, dog=0.0)
    # the disc is what the trimmed regression leaves out
    assert not tr["kept"][disc].any() and tr["kept"].mean() == pytest.approx(0.9, abs=0.01)
    # the shift the template of a disc pixel already carries (so the test cannot see it)
    planted = 0.05
    absorbed_ls = float(((ls["X_hat"][disc] - X[~disc].mean(0)) @ d).mean()) / planted
    absorbed_tr = float(((tr["X_hat"][disc] - X[~disc].mean(0)) @ d).mean()) / planted
    assert absorbed_ls > 0.1, absorbed_ls
    assert abs(absorbed_tr) < 0.25 * absorbed_ls, (absorbed_tr, absorbed_ls)
    # normal pixels keep their fit: the residual of the trimmed template is no larger
    r_ls = np.linalg.norm(X[~disc] - ls["X_hat"][~disc])
    r_tr = np.linalg.norm(X[~disc] - tr["X_hat"][~disc])
    assert r_tr <= 1.01 * r_ls


def test_band_passed_trimming_leaves_a_smooth_drift_in_and_the_disc_out():
    """A smooth random field of shifts as large as the disc's (energy drift, correlation length
    ~ 8 px on a 40 x 40 map) is what a plain trimmed regression drops, not the disc; with the
    band-passed criterion (``dog`` = 12 px) the disc is dropped."""
    from workbench.physics.eels.synth import gaussian_filter

    n = 40
    rng = np.random.default_rng(0)
    m = _mean_spectrum()
    d = P.shift_directions(m, np.ones(C_CH), E, EDGE)[0]
    yy, xx = np.mgrid[:n, :n]
    z = np.stack([xx / n - 0.5, np.sin(yy / 4.0)], -1).reshape(-1, 2)
    W = rng.normal(size=(2, C_CH)) * 0.3
    W -= np.outer(W @ d, d)
    disc = ((yy - n // 2) ** 2 + (xx - 30) ** 2 <= 9).ravel()
    X = m + z @ W + 0.01 * rng.normal(size=(n * n, C_CH))
    X[disc] += 0.05 * d
    f = gaussian_filter(rng.normal(size=(n, n)), 8.0)
    X += 0.05 * np.outer(f.ravel() / np.abs(f).max(), d)
    plain = P.fit_dload(X, 2, False, (n, n), E, EDGE, trim=0.1, dog=0.0)
    band = P.fit_dload(X, 2, False, (n, n), E, EDGE, trim=0.1, dog=12.0)
    assert plain["kept"][disc].mean() > 0.9
    assert not band["kept"][disc].any()


def test_dload_loadings_split_into_a_basis_orthogonal_to_d_and_its_shift_loading():
    X, _, d = _planted(seed=1)
    fit = P.fit_dload(X, 2, False, (NY, NX), E, EDGE, trim=0.1)
    Dm = P.shift_directions(X.mean(0), np.ones(C_CH), E, EDGE)
    Vp = fit["V"] - np.outer(fit["V"] @ Dm[0], Dm[0])
    # the part of the loadings orthogonal to the shift direction is orthonormal
    np.testing.assert_allclose(Vp @ Vp.T, np.eye(2), atol=1e-9)
    np.testing.assert_allclose(fit["Xn_hat"], fit["mean"] + fit["z"] @ fit["V"], atol=1e-12)


def test_fit_template_rejects_an_unknown_template():
    from workbench.errors import InputError

    prep = P.Prepared(np.ones((16, 8)), E[:8], slice(2, 6), (4, 4))
    with pytest.raises(InputError):
        P.fit_template(prep, 1, True, "nope")


def test_trimmed_template_keeps_the_disc_out_of_every_component():
    """A disc shifted along the first- AND the second-order shift directions (a shift that is not
    small against the edge's width), placed where a bulk score is high: dload keeps only the
    first-order part out of the disc's template; the "trimmed" template, a PCA of the pixels
    dload's regression kept, keeps both out."""
    rng = np.random.default_rng(2)
    m = _mean_spectrum()
    D = P.shift_directions(m, np.ones(C_CH), E, EDGE, order=2)
    yy, xx = np.mgrid[:NY, :NX]
    z = np.stack([xx / NX - 0.5, np.sin(yy / 4.0)], -1).reshape(-1, 2)
    W = rng.normal(size=(2, C_CH)) * 0.3
    W -= (W @ D.T) @ D  # the bulk has no loading on either shift direction
    disc = ((yy - 12) ** 2 + (xx - 19) ** 2 <= 9).ravel()
    clean = m + z @ W
    X = clean + 0.01 * rng.normal(size=(NY * NX, C_CH))
    X[disc] += 0.05 * (D[0] + D[1])
    prep = P.Prepared(X, E, EDGE, (NY, NX))
    dl = P.fit_template(prep, 2, False, "dload", trim=0.1, dog=0.0)
    tr = P.fit_template(prep, 2, False, "trimmed", trim=0.1, dog=0.0)
    assert not tr["kept"][disc].any()
    np.testing.assert_array_equal(tr["kept"], dl["kept"])

    def absorbed(fit, j):
        # the share of the disc's planted shift along D[j] that its own template carries
        return float(((fit["X_hat"][disc] - clean[disc]) @ D[j]).mean()) / 0.05

    assert absorbed(dl, 1) > 0.05, absorbed(dl, 1)
    for j in (0, 1):
        assert abs(absorbed(tr, j)) < 0.25 * absorbed(dl, 1), (j, absorbed(tr, j))
