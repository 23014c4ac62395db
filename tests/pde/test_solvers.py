import random

import numpy as np
import pytest
import torch

from workbench.datasets.pde import evaluate, make_preset
from workbench.problems import PDEProblem
from workbench.progress import Progress
from workbench.solvers.pde import gp_hm, gp_matern, gp_se, pinn, pinn_fourier


@pytest.mark.parametrize(
    "start, level",
    # the defaults (the paper's start: U = 0, frequency grid) reach 1e-4 here; the opt-in warm
    # start (spectrum initialisation, exact steps every 1000) measured 1.9e-4 at this q = 10,
    # 1000-step budget: a small loss on a single-scale problem, kept visible here
    [({"warm_start": "off"}, 1e-4), ({"warm_start": "on"}, 3e-4)],
)
def test_gp_hm_solves_low_frequency_problem_to_1e4(start, level):
    p = make_preset("poisson1d_sin10")
    r = gp_hm.solve(p, gp_hm.Params(max_iter=1000, q=10, n_checkpoints=5, **start))
    assert r.metrics["rel_l2_final"] <= level, r.metrics
    # the exact finish minimises the same loss: never above the Adam iterate's
    assert r.metrics["loss_final"] <= r.metrics["loss_adam_final"]
    assert evaluate(p, r)["rel_l2"] == pytest.approx(r.metrics["rel_l2_final"], rel=1e-9)
    assert r.metrics["rel_l2_best"] <= r.metrics["rel_l2_final"]
    w, f = r.extras["weights_x"], r.extras["freqs_x"]
    assert w.shape == f.shape == (10,)
    if start["warm_start"] == "off":
        # from the paper's start the dominant component sits near the solution's frequency
        # 10/(2π) ≈ 1.59 cycles per unit; from the warm start it does not (measured: 0.16, the
        # kernel piles weight on a slow component once U is exact), so it is not asserted there
        assert abs(f[np.argmax(w)] - 10 / (2 * np.pi)) < 0.3


def test_gp_hm_matches_the_papers_early_trajectory_on_sin100():
    """Spec §3.7/§7.2: rel L2 ≈ 0.26–0.28 after 100 Adam steps on poisson1d_sin100 (400 points),
    with the paper's optimiser (Adam's usual β₂ = 0.999)."""
    p = make_preset("poisson1d_sin100")
    # the paper's start: U = 0 and the frequency grid (no warm start, no spectrum initialisation)
    prm = gp_hm.Params(
        max_iter=100, n_checkpoints=2, adam_beta2=0.999, warm_start="off", spectrum_init="grid"
    )
    r = gp_hm.solve(p, prm)
    assert 0.2 < r.metrics["rel_l2_adam_final"] < 0.32
    assert r.metrics["loss_final"] <= r.metrics["loss_adam_final"]


@pytest.mark.parametrize("kernel", ["stm", "gm"])
def test_gp_hm_2d_kronecker_and_cancel(kernel):
    p = PDEProblem(
        operator="poisson",
        box=((0.0, 1.0), (0.0, 1.0)),
        variables=("x", "y"),
        exact="sin(6*x)*sin(5*y)",
        n_col=(12, 10),
        freq_scale=2.0,
    )
    prm = gp_hm.Params(kernel=kernel, q=5, max_iter=30, n_checkpoints=3)
    r = gp_hm.solve(p, prm)
    assert r.output.shape == (12, 10) and r.extras["y"].shape == (10,)
    assert r.extras["u_test"].shape == (300, 300)
    assert r.history["rel_l2"][-1] < r.history["rel_l2"][0]
    c = gp_hm.solve(p, prm, Progress(cancel_after=10))
    k = gp_hm.solve(p, gp_hm.Params(kernel=kernel, q=5, max_iter=10, n_checkpoints=3))
    assert c.status == "cancelled"
    np.testing.assert_array_equal(c.output, k.output)


@pytest.mark.parametrize(
    "operator,exact",
    [
        ("allen_cahn", "sin(3*x)*cos(2*y)"),
        ("advection", "sin(x - beta*y)"),
        ("drift_poisson", "exp(-(x**2+y**2))"),
    ],
)
def test_gp_operators_reduce_the_error(operator, exact):
    p = PDEProblem(
        operator=operator,
        box=((0.0, 1.0), (0.0, 1.0)),
        variables=("x", "y"),
        exact=exact,
        coefficients={"beta": 2.0} if operator == "advection" else {},
        n_col=(10, 10),
        freq_scale=1.0,
    )
    r = gp_hm.solve(p, gp_hm.Params(q=3, max_iter=60, n_checkpoints=3))
    assert np.isfinite(r.metrics["rel_l2_final"]) and r.metrics["rel_l2_final"] < 1.0


def test_gp_baselines_run():
    p = make_preset("poisson1d_sin10")
    for mod in (gp_se, gp_matern):
        r = mod.solve(p, mod.Params(max_iter=50, n_checkpoints=2))
        assert r.status == "max_iter" and r.extras["weights_x"].shape == (1,)


def test_pinn_trains_and_leaves_global_rng_alone():
    p = PDEProblem(box=((0.0, 1.0),), exact="sin(2*x)", n_col=(32,))
    states = (
        random.getstate(),
        np.random.get_state()[1].copy(),  # noqa: NPY002
        torch.random.get_rng_state().clone(),
    )
    prm = pinn.Params(width=32, depth=2, max_iter=420, adam_iter=400, lr=1e-2, n_checkpoints=5)
    r = pinn.solve(p, prm)
    assert random.getstate() == states[0] and np.array_equal(
        np.random.get_state()[1],  # noqa: NPY002
        states[1],
    )
    assert torch.equal(torch.random.get_rng_state(), states[2])
    assert r.history["loss"][-1] < 1e-2 * r.history["loss"][0]
    assert r.metrics["rel_l2_final"] < 5e-2
    r2 = pinn.solve(p, prm)
    np.testing.assert_array_equal(r.output, r2.output)


def test_pinn_uniform_sampler_and_fourier_variant():
    p = PDEProblem(
        box=((0.0, 1.0), (0.0, 1.0)), variables=("x", "y"), exact="sin(2*x)*y", n_col=(8, 8)
    )
    r = pinn.solve(
        p, pinn.Params(width=16, depth=2, max_iter=20, sampler="uniform", seed=3, n_col=8)
    )
    assert r.output.shape == (8, 8) and r.extras["residual_grid"].shape == (8, 8)
    f = pinn_fourier.solve(
        p, pinn_fourier.Params(width=16, depth=2, max_iter=20, n_features=8, sigma=1.0, n_col=8)
    )
    assert np.all(np.isfinite(f.output))
    assert f.extras["fourier_sigma"] == 1.0


def test_gp_uses_scattered_observations():
    """A problem whose boundary data are wrong is pulled back by exact observations inside."""
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, (15, 1))
    base = dict(box=((0.0, 1.0),), exact="sin(6*x)", boundary="0", n_col=(16,), freq_scale=2.0)
    plain = PDEProblem(**base)
    obs = PDEProblem(**base, obs_points=pts, obs_values=np.sin(6 * pts[:, 0]), obs_sigma=1e-3)
    prm = gp_hm.Params(q=5, max_iter=300, n_checkpoints=2)
    e_plain = gp_hm.solve(plain, prm).metrics["rel_l2_final"]
    e_obs = gp_hm.solve(obs, prm).metrics["rel_l2_final"]
    assert e_obs < 0.5 * e_plain


def test_gp_hm_spectrum_concentrates_on_the_planted_frequency():
    """The learned weights gather at the solution's frequency (the paper's pruning effect):
    u = sin(20x) on [0, 2π], components initialised over [0, 6] cycles per unit, Adam with a
    short second-moment memory so that 600 steps suffice."""
    p = PDEProblem(
        operator="poisson", box=((0.0, 2 * np.pi),), exact="sin(20*x)", n_col=(100,), freq_scale=6.0
    )
    # the paper's start (U = 0, frequency grid): its pruning mechanism is what is tested here
    prm = gp_hm.Params(
        max_iter=600, q=10, n_checkpoints=3, adam_beta2=0.9, warm_start="off", spectrum_init="grid"
    )
    r = gp_hm.solve(p, prm)
    w, f = r.extras["weights_x"], r.extras["freqs_x"]
    target = 20 / (2 * np.pi)
    assert abs(f[np.argmax(w)] - target) < 0.01 * target
    assert w[np.abs(f - target) < 0.02 * target].sum() >= 0.9 * w.sum()
    assert r.metrics["rel_l2_final"] <= 1e-3


@pytest.mark.parametrize("module", [gp_se, gp_matern])
def test_single_kernel_gps_expose_the_exact_finish(module):
    p = PDEProblem(box=((0.0, 1.0),), exact="sin(3*x)", n_col=(24,))
    plain = module.solve(p, module.Params(max_iter=60, exact_u=False, n_checkpoints=2))
    assert "u_solves" not in plain.extras
    assert plain.metrics["rel_l2_final"] == pytest.approx(plain.metrics["rel_l2_adam_final"])
    done = module.solve(p, module.Params(max_iter=60, n_checkpoints=2))
    assert done.metrics["loss_final"] <= done.metrics["loss_adam_final"]
    assert done.metrics["rel_l2_final"] < plain.metrics["rel_l2_final"]
