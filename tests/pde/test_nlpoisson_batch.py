"""The batched FD solver of nlpoisson1d_param (the likelihood of the benchmark's exact Bayes
bound) against the reference solver, and the adaptive importance sampler on a posterior with a
closed form."""

from __future__ import annotations

import numpy as np

from workbench.datasets.pde import make_preset
from workbench.nets import pde_rgnp as R
from workbench.physics.pde.nlpoisson_batch import (
    importance_posterior,
    interpolate_nodes,
    solve_nl_poisson_batch,
)


def test_batched_solver_equals_reference_solver():
    fam = R.family_of(make_preset("nlpoisson1d_param"))
    rng = np.random.default_rng(4)
    P = np.c_[rng.uniform(-1, 1, (6, 5)), rng.uniform(1, 2, 6)]
    x_ref, U_ref = R.reference_fields(fam, P)
    x, U, res = solve_nl_poisson_batch(P[:, :5], P[:, 5])
    np.testing.assert_allclose(x, x_ref)
    assert np.all(res <= 1e-10)
    assert np.abs(U - U_ref).max() <= 1e-10 * np.abs(U_ref).max()


def test_interpolation_matches_numpy_interp():
    rng = np.random.default_rng(0)
    x = np.linspace(-1, 1, 21)
    U = rng.standard_normal((3, 21))
    xo = np.r_[rng.uniform(-1, 1, 7), -1.0, 1.0]
    want = np.array([np.interp(xo, x, u) for u in U])
    np.testing.assert_allclose(interpolate_nodes(x, U, xo), want, atol=1e-14)


def test_importance_posterior_matches_closed_form_gaussian():
    # y = A z + noise with a Gaussian likelihood whose posterior sits well inside the box:
    # the box prior is then flat where it matters and the posterior is N(m, S) in closed form
    rng = np.random.default_rng(1)
    d = 3
    A = rng.standard_normal((8, d))
    z_true = np.array([0.2, -0.3, 0.1])
    s = 0.3
    y = A @ z_true + s * rng.standard_normal(8)
    S = np.linalg.inv(A.T @ A / s**2)
    m = S @ A.T @ y / s**2

    def loglik(Z):
        r = Z @ A.T - y
        return -0.5 * (r * r).sum(1) / s**2

    post = importance_posterior(
        loglik, -3 * np.ones(d), 3 * np.ones(d), rng, n_stage=4000, ess_target=2000
    )
    assert post["ess"] >= 2000
    sd = np.sqrt(np.diag(S))
    assert np.all(np.abs(post["mean"] - m) <= 0.1 * sd)
    np.testing.assert_allclose(np.sqrt(np.diag(post["cov"])), sd, rtol=0.1)
