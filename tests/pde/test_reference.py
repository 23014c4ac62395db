import math

import numpy as np
import pytest

from workbench.datasets.pde import make_preset
from workbench.physics.pde import cheb, fd
from workbench.physics.pde import spectral as S
from workbench.physics.pde.compiled import compile_problem
from workbench.physics.pde.metrics import rel_l2
from workbench.problems import PDEProblem
from workbench.solvers.pde import reference


def _err_1d(problem, method, n):
    r = reference.solve(problem, reference.Params(method=method, n=n))
    return r.metrics["rel_l2"]


def test_chebyshev_differentiation_and_interpolation_are_spectral():
    x = S.cheb_points(40, 0.0, 2.0)
    D = S.cheb_diff(x)
    np.testing.assert_allclose(D @ np.sin(3 * x), 3 * np.cos(3 * x), atol=1e-10)
    xs = np.linspace(0, 2, 101)
    np.testing.assert_allclose(S.bary_matrix(x, xs) @ np.exp(x), np.exp(xs), atol=1e-13)


def test_fd_second_order_1d():
    p = PDEProblem(box=((0.0, 1.0),), exact="sin(3*x) + x**2")
    errs = [_err_1d(p, "fd", n) for n in (32, 64, 128, 256)]
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(orders - 2) <= 0.15), orders


def test_fd_second_order_2d_and_allen_cahn_newton():
    p = PDEProblem(
        operator="allen_cahn",
        box=((0.0, 1.0), (0.0, 1.0)),
        variables=("x", "y"),
        exact="sin(2*x)*cos(3*y)",
        n_col=(8, 8),
    )
    errs = [
        reference.solve(p, reference.Params(method="fd", n=n)).metrics["rel_l2"]
        for n in (16, 32, 64)
    ]
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(orders - 2) <= 0.15), orders


def test_chebyshev_converges_geometrically_to_1e10():
    p = PDEProblem(box=((0.0, 1.0),), exact="exp(sin(4*x))")
    errs = [_err_1d(p, "chebyshev", n) for n in (8, 16, 24, 32, 48)]
    assert errs[-1] <= 1e-10
    assert errs[1] < errs[0] / 10 and errs[2] < errs[1] / 10


def test_chebyshev_high_frequency_resolution_rule():
    """sin(100x) on [0, 2π]: N = 400 resolves it (≤ 1e-9), N = 300 does not (spec §2.1)."""
    p = make_preset("poisson1d_sin100")
    assert _err_1d(p, "chebyshev", 400) <= 1e-9
    assert _err_1d(p, "chebyshev", 300) > 1e-2


@pytest.mark.parametrize("operator", ["poisson", "allen_cahn", "drift_poisson"])
def test_chebyshev_2d_operators(operator):
    p = PDEProblem(
        operator=operator,
        box=((-1.0, 1.0), (0.0, 2.0)),
        variables=("x", "y"),
        exact="exp(-x**2)*sin(2*y) + 0.3*x",
        n_col=(8, 8),
    )
    r = reference.solve(p, reference.Params(method="chebyshev"))
    assert r.status == "converged"
    assert r.metrics["rel_l2"] <= 1e-10


def test_fast_diagonalisation_matches_dense_solve():
    x = S.cheb_points(10)
    y = S.cheb_points(8, 0, 3)
    Ax = (S.cheb_diff(x) @ S.cheb_diff(x))[1:-1, 1:-1]
    Ay = (S.cheb_diff(y) @ S.cheb_diff(y))[1:-1, 1:-1]
    R = np.random.default_rng(0).standard_normal((9, 7))
    V = S.FastDiag(Ax, Ay).solve(R)
    np.testing.assert_allclose(Ax @ V + V @ Ay.T, R, atol=1e-9)


def test_nonlinear_poisson_newton_fd_vs_chebyshev():
    p = make_preset("nlpoisson1d_param")
    comp = compile_problem(p)
    x = np.linspace(-1, 1, 201)
    u_fd, it, res = fd.solve_1d("nl_poisson", x, comp.source(x), 0.0, 0.0, comp.coeffs)
    assert it <= 8 and res <= 1e-10
    xc, uc, itc, _ = cheb.solve_1d("nl_poisson", 128, p.box, comp.source, (0.0, 0.0), comp.coeffs)
    assert rel_l2(u_fd, S.bary_matrix(xc, x) @ uc) <= 5e-5


def test_advection_characteristics_and_burgers_mol():
    p = make_preset("advection2d_beta200")
    r = reference.solve(p, reference.Params())
    assert r.metrics["rel_l2"] <= 1e-12
    b = PDEProblem(
        operator="burgers",
        box=((0.0, 1.0), (0.0, 0.5)),
        variables=("x", "t"),
        bc="initial_boundary",
        source="0",
        boundary="sin(pi*x)",
        coefficients={"z0": 0.1, "z1": 1.0},
        n_col=(8, 8),
    )
    r1 = reference.solve(b, reference.Params(n=128))
    r2 = reference.solve(b, reference.Params(n=256))
    d = rel_l2(r1.extras["u_test"], r2.extras["u_test"])
    assert d < 1e-4
    u = r2.extras["u_test"]
    assert (
        np.abs(u[:, 0] - np.sin(math.pi * np.linspace(0, 1, 300))).max() < 1e-9
    )  # initial condition
    assert np.abs(u[:, -1]).max() < 1.0  # decays


def test_adaptive_refinement_reports_steps_and_cancels():
    from workbench.progress import Progress

    p = make_preset("poisson1d_sin100")
    r = reference.solve(p, reference.Params())
    assert r.status == "converged" and r.metrics["rel_l2"] <= 1e-9
    assert r.history["n"] == sorted(r.history["n"]) and len(r.history["n"]) >= 3
    c = reference.solve(p, reference.Params(), Progress(cancel_after=2))
    assert c.status == "cancelled" and c.iterations == 2
