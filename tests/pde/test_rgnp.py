"""RGNP (random-grid neural processes): low-rank densities, GICNet invariances, hard boundary
conditions, the solvers' outputs on nlpoisson1d_param, and resumable training."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from workbench import registry
from workbench.datasets.pde import make_preset
from workbench.nets import pde_rgnp as R


@pytest.fixture(scope="module")
def fam():
    return R.family_of(make_preset("nlpoisson1d_param"))


@pytest.fixture(scope="module")
def model(fam):
    return R.RGNP(fam, R.Config(), seed=3)


def test_lowrank_logpdf_matches_dense():
    g = torch.Generator().manual_seed(0)
    B, n, k = 3, 17, 2
    v = torch.randn(B, n, generator=g, dtype=torch.float64)
    mu = torch.randn(B, n, generator=g, dtype=torch.float64)
    lv = 0.5 * torch.randn(B, n, generator=g, dtype=torch.float64)
    C = torch.randn(B, n, k, generator=g, dtype=torch.float64)
    cov = torch.diag_embed(torch.exp(lv)) + C @ C.transpose(-1, -2)
    dense = torch.distributions.MultivariateNormal(mu, covariance_matrix=cov).log_prob(v)
    torch.testing.assert_close(R.lowrank_logpdf(v, mu, lv, C), dense, rtol=1e-10, atol=1e-10)
    # rank 0 is the diagonal Gaussian; the marginal std is the root of the diagonal of Σ
    diag = torch.distributions.Normal(mu, torch.exp(0.5 * lv)).log_prob(v).sum(-1)
    torch.testing.assert_close(R.lowrank_logpdf(v, mu, lv, C[..., :0]), diag)
    torch.testing.assert_close(R.lowrank_std(lv, C), torch.sqrt(torch.diagonal(cov, 0, -2, -1)))


def test_gicnet_permutation_invariant(model):
    g = torch.Generator().manual_seed(1)
    x = -1 + 2 * torch.rand(2, 40, generator=g)
    u = torch.sin(3 * x) + 0.1 * torch.randn(2, 40, generator=g)
    W = torch.tensor([[1.3], [1.8]])
    perm = torch.randperm(40, generator=g)
    with torch.no_grad():
        a = model.posterior(x, u, W)
        b = model.posterior(x[:, perm], u[:, perm], W)
    for s, t in zip(a, b, strict=True):
        torch.testing.assert_close(s, t, rtol=1e-5, atol=1e-5)


def test_gicnet_interpolation_nearly_invariant_to_resampling(model):
    """The kernel-interpolation layer sees the field, not the sample: two random samplings of
    the same smooth field (different sizes) give nearly the same latent grid in every channel
    whose length-scale exceeds the sample spacing."""
    g = torch.Generator().manual_seed(2)
    net = model.beta
    f = lambda s: torch.sin(2 * s) + 0.5 * s**2  # noqa: E731
    s1 = torch.sort(-1 + 2 * torch.rand(1, 400, generator=g)).values
    s2 = torch.sort(-1 + 2 * torch.rand(1, 900, generator=g)).values
    with torch.no_grad():
        y1 = net.interpolate(s1, f(s1).unsqueeze(-1).expand(-1, -1, len(net.log_ls)))
        y2 = net.interpolate(s2, f(s2).unsqueeze(-1).expand(-1, -1, len(net.log_ls)))
    wide = torch.exp(net.log_ls) >= 0.05
    assert wide.sum() >= 5
    err = (y1 - y2)[0, wide].abs().max()
    # what remains is the kernel smoother's sampling noise (largest at the ends, where the
    # one-sided density of points differs between samplings): a few % of the field's range
    assert err < 0.05 * 1.4, err


def test_inverse_nearly_invariant_to_resampling_trained():
    """The shipped GICNet gives nearly the same posterior mean from two different random point
    sets (30 and 60 points) of the same reference field, compared with the prior's width."""
    from workbench.solvers.pde.rgnp import find_checkpoint

    fam = R.family_of(make_preset("nlpoisson1d_param"))
    model = find_checkpoint(fam)
    if model is None:
        pytest.skip("no shipped checkpoint")
    rng = np.random.default_rng(5)
    P = np.array([[0.3, -0.5, 0.2, 0.4, -0.1, 1.4]])
    x, U = R.reference_fields(fam, P)
    means = []
    for m in (30, 60):
        xo = np.sort(rng.uniform(-1, 1, m))
        means.append(R.inverse_query(model, xo, np.interp(xo, x, U[0]), P[0, 5:])[0])
    assert np.abs(means[0] - means[1]).max() < 0.2  # prior width is 2 per parameter


def test_hard_boundary_conditions_exact(model):
    """u = B + D û equals the boundary data exactly at both ends, whatever the network says."""
    P = torch.tensor([[0.1, -0.2, 0.3, 0.9, -1.0, 1.7], [-0.5, 0.5, 0.0, 0.2, 0.1, 1.1]])
    x = torch.tensor([[-1.0, -0.3, 0.4, 1.0]] * 2)
    with torch.no_grad():
        mean, std, _ = model.field(x, P)
    assert torch.all(mean[:, [0, -1]] == 0.0)
    assert torch.all(std[:, [0, -1]] == 0.0)
    # the same for non-zero data on another interval (single-PDE family)
    prob = make_preset("poisson1d_sin10")
    from workbench.solvers.pde.rgnp import single_family

    m2 = R.RGNP(single_family(prob), R.Config(), seed=0)
    xb = torch.tensor([[0.0, 1.0, 2 * math.pi]])
    with torch.no_grad():
        mb, sb, _ = m2.field(xb, torch.zeros(1, 0))
    g = torch.tensor(np.sin(10 * np.array([0.0, 2 * math.pi])), dtype=torch.float32)
    assert mb[0, 0] == g[0] and mb[0, -1] == g[1]
    assert sb[0, 0] == 0 and sb[0, -1] == 0


def test_elbo_residual_matches_reference_solution(fam, model):
    """The residual inside the ELBO is the PDE's: a field equal to the FD reference (pushed
    through B + D û by construction) has a residual at the FD truncation level."""
    P = np.array([[0.4, -0.3, 0.2, -0.1, 0.5, 1.5]])
    x, U = R.reference_fields(fam, P, n=2000)
    from workbench.physics.pde.operators import apply_operator

    xt = torch.tensor(x[1:-1], dtype=torch.float64)
    u = torch.tensor(U[0, 1:-1])
    h = x[1] - x[0]
    ux = torch.tensor(np.gradient(U[0], h)[1:-1])
    uxx = torch.tensor((U[0, 2:] - 2 * U[0, 1:-1] + U[0, :-2]) / h**2)
    coeffs = {k: torch.tensor(v) for k, v in zip(fam.names, P[0], strict=True)}
    r = apply_operator("nl_poisson", u, {"x": ux, "xx": uxx}, coeffs, [xt]) + P[0, 5]
    assert float(r[10:-10].abs().max()) < 1e-2 * P[0, 5]


def test_forward_solver_on_nlpoisson_param():
    spec = registry.get_solver("pde", "rgnp")
    prob = make_preset("nlpoisson1d_param")
    r = spec.solve(prob, spec.params(max_iter=300))
    x, std = r.extras["x"], r.extras["std"]
    assert r.output.shape == x.shape == std.shape
    assert np.all(np.isfinite(r.output)) and np.all(np.isfinite(std))
    assert np.all(std[1:-1] > 0) and std[0] == 0 == std[-1]  # exact boundary data
    assert x[0] == -1 and x[-1] == 1
    # the forward map is close to the 201-node reference (checkpoint, or 300 steps if none)
    assert r.metrics["nse_u"] < 1e-2


def test_single_problem_training_recovers_reference():
    """A planted answer: trained on one nonlinear Poisson problem alone, the RGNP mean field
    matches the FD reference solution."""
    from workbench.solvers.pde.rgnp import Params, field_on, single_family, train_on_problem, truth

    prob = make_preset("nlpoisson1d_param")
    params = Params(max_iter=200, batch=4, points=32)
    model, run = train_on_problem(prob, params, None, use_data=False)
    x = np.linspace(-1, 1, 101)
    mean, _ = field_on(model, x, np.zeros(0))
    ref = truth(prob, single_family(prob), np.zeros(0), x)
    assert np.sum((mean - ref) ** 2) / np.sum(ref**2) < 1e-3
    assert run["history"]["loss"][-1] < run["history"]["loss"][0]


def test_inverse_solver_outputs():
    from workbench.solvers.pde.rgnp import find_checkpoint

    prob = make_preset("nlpoisson1d_param")
    if find_checkpoint(R.family_of(prob)) is None:
        pytest.skip("no shipped checkpoint")
    spec = registry.get_solver("pde", "rgnp_inverse")
    r = spec.solve(prob, spec.params(n_samples=50))
    e = r.extras
    assert e["z_mean"].shape == (5,) and e["z_cov"].shape == (5, 5)
    np.testing.assert_allclose(e["z_cov"], e["z_cov"].T)
    assert np.all(np.linalg.eigvalsh(e["z_cov"]) > 0)
    assert e["z_samples"].shape == (50, 5) and len(e["obs_x"]) == 30
    assert np.all(np.isfinite(r.output)) and np.all(e["std"][1:-1] > 0)
    # same seed, same answer; the observations are off the output grid
    r2 = spec.solve(prob, spec.params(n_samples=50))
    np.testing.assert_array_equal(r.output, r2.output)


def test_train_resume_equals_straight_run(tmp_path):
    from workbench.train.pde_rgnp import main

    small = ["--batch", "3", "--points", "6", "--val", "2", "--save-every", "2"]
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    assert main(["--steps", "6", "--out", str(a), *small]) == 0
    assert main(["--steps", "3", "--out", str(b), *small]) == 0
    assert main(["--steps", "6", "--out", str(b), "--resume", *small]) == 0
    ma, _ = R.load(a)
    mb, _ = R.load(b)
    for (k, va), vb in zip(ma.state_dict().items(), mb.state_dict().values(), strict=True):
        torch.testing.assert_close(va, vb, rtol=0, atol=0, msg=k)
    man = json.loads(b.with_suffix(".json").read_text())
    assert man["commands"][0].startswith("workbench train rgnp --steps 3")
    assert "--resume" in man["commands"][1] and man["metrics"]["steps"] == 6
    # the resumed command keeps the first command's schedule origin (step 0, no seconds used)
    st = torch.load(b.with_suffix(".state.pt"), weights_only=True)
    assert st["lr_origin"] == [0, 0.0]


def test_resumed_decay_continues_the_schedule(fam):
    """A run stopped at step 3 of 6 and resumed from its saved states ends where the straight run
    does: the geometric decay and the warm-up continue from the schedule's origin, not restart."""
    cfg = R.Config(n_points=6)
    kw = dict(steps=6, batch=3, lr=1e-3, seed=0, lr_final=1e-5, lr_warmup=2)
    straight = R.RGNP(fam, cfg, seed=0)
    R.train(straight, **kw)

    class StopAt3:
        cancelled = False

        def __call__(self, step, total, **m):
            self.cancelled = step == 3

    part = R.RGNP(fam, cfg, seed=0)
    first = R.train(part, progress=StopAt3(), **kw)
    assert first["step"] == 3 and first["status"] == "cancelled"
    states = dict(opt_state=first["opt_state"], gen_state=first["gen_state"])
    restarted = R.RGNP(fam, cfg, seed=0)
    restarted.load_state_dict(part.state_dict())
    R.train(part, start=3, lr_origin=(0, 0.0), **states, **kw)
    R.train(restarted, start=3, **states, **kw)  # the old behaviour: the decay restarts at 3
    for k, v in straight.state_dict().items():
        torch.testing.assert_close(part.state_dict()[k], v, rtol=0, atol=0, msg=k)
    assert any(
        not torch.equal(restarted.state_dict()[k], v) for k, v in straight.state_dict().items()
    )


def test_train_init_continues_the_manifest_chain_with_a_decaying_lr(tmp_path):
    from workbench.train.pde_rgnp import main

    small = ["--batch", "3", "--points", "6", "--val", "2"]
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    assert main(["--steps", "4", "--seed", "1", "--out", str(a), *small]) == 0
    cont = ["--steps", "8", "--lr-final", "1e-5", "--lr-warmup", "1", "--out", str(b)]
    assert main(["--init", str(a), *cont, *small]) == 0
    man = json.loads(b.with_suffix(".json").read_text())
    assert man["commands"][0].startswith("workbench train rgnp --steps 4 --seed 1")
    assert "--init" in man["commands"][1] and man["metrics"]["steps"] == 8
    st = torch.load(b.with_suffix(".state.pt"), weights_only=True)
    # geometric decay 1e-3 → 1e-5 over steps 5..8: the last step is 3/4 of the way
    assert st["opt"]["param_groups"][0]["lr"] == pytest.approx(1e-3 * (1e-2) ** 0.75)
    # the continuation starts from a's weights (seed 1), not from its own seed's initialisation
    ma, _ = R.load(a)
    mb, _ = R.load(b)
    fresh = R.RGNP(ma.fam, ma.cfg, seed=0)

    def dist(m1, m2):
        return sum(
            float((x - y).detach().abs().max())
            for x, y in zip(m1.parameters(), m2.parameters(), strict=True)
        )

    assert dist(ma, mb) < 0.2 * dist(fresh, mb)


def test_views_build_and_calibration_is_exact_for_gaussian_errors():
    from workbench.result import Result
    from workbench.viz import pde_rgnp as V

    prob = make_preset("nlpoisson1d_param")
    x = np.linspace(-1, 1, 41)
    ref = V.reference_on(prob, x)
    assert abs(ref[0]) < 1e-12 and abs(ref[-1]) < 1e-12 and np.all(ref[1:-1] > 0)
    rng = np.random.default_rng(0)
    std = np.full_like(x, 0.01)
    std[[0, -1]] = 0
    fwd = Result(
        output=ref + 0.01 * rng.standard_normal(len(x)), kind="field", extras={"x": x, "std": std}
    )
    assert len(V.field_band_figure(prob, fwd, reference=ref).data) == 5
    inv = Result(
        output=ref,
        kind="field",
        extras={
            "x": x,
            "std": std,
            "obs_x": x[::4],
            "obs_u": ref[::4],
            "z_samples": rng.standard_normal((100, 3)),
            "z_names": np.array(["z0", "z1", "z2"]),
            "z_true": np.zeros(3),
        },
    )
    assert len(V.inverse_figure(prob, inv, reference=ref).data) == 4
    corner = V.corner_figure(inv)
    assert sum(t.type == "histogram" for t in corner.data) == 3
    # a parameter has one range down its column and along its row (the panels line up)
    lay = corner.layout
    assert lay.xaxis.range == lay.xaxis4.range == lay.xaxis7.range  # z0's column
    assert lay.yaxis4.range == lay.xaxis5.range  # z1: row 2's scatter y, its histogram's x
    # errors drawn from N(0, σ²): the empirical coverage tracks the nominal level
    m = rng.standard_normal(200_000)
    lv, emp = V.calibration_curve(m, np.ones_like(m), np.zeros_like(m), [0.5, 0.9, 0.954])
    np.testing.assert_allclose(emp, lv, atol=5e-3)
    assert len(V.calibration_figure([("a", lv, emp)]).data) == 2


def test_observations_csv_round_trip_and_hostile_files():
    from workbench.datasets.pde import load
    from workbench.errors import InputError
    from workbench.io.pde_obs import read_observations, write_observations

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 25)
    u = np.sin(x)
    raw = write_observations(x, u, {"problem": "nlpoisson1d_param", "sigma": 0.05, "w": 1.25})
    obs = read_observations(raw)
    np.testing.assert_array_equal(obs.points[:, 0], x)
    np.testing.assert_array_equal(obs.values, u)
    prob = load(raw, "mine.csv")
    assert prob.operator == "nl_poisson" and prob.coefficients["w"] == 1.25
    assert prob.obs_sigma == 0.05 and prob.obs_points.shape == (25, 1)
    bad = {
        b"u,x\n1,2\n": "header",
        b"x,u\n0.1,nan\n": "finite",
        b"x,u\n0.1,abc\n": "not a number",
        b"x,u\n0.1\n": "expected 2",
        b"x,u\n": "no observations",
        b"\xff\xfe": "UTF-8",
        b"x,u\n" + b"0.1,0.2\n" * 300_000: "too large",
    }
    for data, msg in bad.items():
        with pytest.raises(InputError, match=msg):
            read_observations(data)
    with pytest.raises(InputError, match="domain"):
        load(b"x,u\n3.0,0.1\n", "far.csv")
    with pytest.raises(InputError, match="unknown problem"):
        load(b"# problem: nope\nx,u\n0.1,0.1\n", "p.csv")


def test_inverse_from_csv_is_permutation_invariant():
    from workbench.datasets.pde import load
    from workbench.io.pde_obs import write_observations
    from workbench.solvers.pde.rgnp import find_checkpoint

    if find_checkpoint(R.family_of(make_preset("nlpoisson1d_param"))) is None:
        pytest.skip("no shipped checkpoint")
    fam = R.family_of(make_preset("nlpoisson1d_param"))
    P = np.array([[0.5, 0.2, -0.3, 0.1, 0.0, 1.6]])
    xr, U = R.reference_fields(fam, P)
    rng = np.random.default_rng(3)
    xo = rng.uniform(-1, 1, 30)
    yo = np.interp(xo, xr, U[0]) + 0.05 * rng.standard_normal(30)
    spec = registry.get_solver("pde", "rgnp_inverse")
    out = []
    for perm in (np.arange(30), rng.permutation(30)):
        prob = load(write_observations(xo[perm], yo[perm], {"sigma": 0.05, "w": 1.6}), "o.csv")
        r = spec.solve(prob, spec.params(n_samples=20))
        assert "nse_z" not in r.metrics  # the truth of user data is unknown
        out.append(r.extras["z_mean"])
    np.testing.assert_allclose(out[0], out[1], rtol=1e-5, atol=1e-6)


def test_page_shows_rgnp_band_and_calibration():
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from workbench.jobs import execute
    from workbench.store import RunStore

    root = Path(__file__).resolve().parents[2]
    dom = registry.get_domain("pde")
    problem = dom.sample(dom.samples[0].name)
    spec = registry.get_solver("pde", "rgnp")
    execute(spec, problem, spec.params(max_iter=5, points=16), store=RunStore())
    at = AppTest.from_file(str(root / "app_pages/pde.py"), default_timeout=180).run()
    assert not at.exception
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("RGNP mean" in s and "reference" in s for s in specs)
    assert any("Calibration" in s for s in specs)


def test_clicked_points_become_observations_and_page_renders_panel():
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from workbench.ui.pde_rgnp import click_grid, problem_from_points

    prob = make_preset("nlpoisson1d_param")
    x, ref, gx, gu = click_grid(prob)
    assert gx.min() == -1 and gx.max() == 1 and gu.min() < ref.min() and gu.max() > ref.max()
    p2 = problem_from_points(prob, [-1.5, 0.0, 0.5], [0.1, 0.9, 0.7], 0.05)
    np.testing.assert_array_equal(p2.obs_points[:, 0], [-1.0, 0.0, 0.5])  # clipped to Ω
    assert p2.obs_sigma == 0.05 and p2.coefficients == prob.coefficients

    root = Path(__file__).resolve().parents[2]
    at = AppTest.from_file(str(root / "app_pages/pde.py"), default_timeout=180).run()
    at.selectbox(key="wb.pde.picker.sample").set_value("nlpoisson1d_param").run()
    assert not at.exception
    assert any("Click points" in c.proto.spec for c in at.get("plotly_chart"))


def test_elbo_data_term_is_the_gaussian_likelihood(fam, model):
    """The optional data term is Σ log N(y | B + D μ, D² (σ² + ‖c‖²) + σ_y²) at the data points."""
    g = torch.Generator().manual_seed(4)
    P = model.sample_params(2, g)
    x = model.sample_points(2, 8, g)
    xo = torch.tensor([[-0.9, -0.2, 0.3, 0.95]] * 2)
    yo = torch.tensor([[0.1, 0.5, 0.4, 0.05], [0.0, 0.2, 0.3, 0.1]])
    _, terms = model.elbo(P, x, torch.Generator().manual_seed(0), (xo, yo, 0.05))
    with torch.no_grad():
        mean, std, _ = model.field(xo, P)
        expected = torch.distributions.Normal(mean, torch.sqrt(std**2 + 0.05**2)).log_prob(yo)
    assert terms["log_data"] == pytest.approx(float(expected.sum(-1).mean()), rel=1e-5)


def test_stratified_grid_has_one_point_per_cell(fam):
    m = R.RGNP(fam, R.Config(grid="stratified", n_points=10), seed=0)
    x = m.sample_points(4, 10, torch.Generator().manual_seed(1))
    cell = torch.floor((x - m.lo) / (m.hi - m.lo) * 10)
    assert torch.equal(cell, torch.arange(10.0).expand(4, 10))
    # fresh points every call, unlike the fixed grid
    assert not torch.equal(x, m.sample_points(4, 10, torch.Generator().manual_seed(2)))


def test_trainable_eps_r_is_stationary_at_the_residual_rms(fam):
    """∂ELBO/∂ log ε_r = Σ r² / ε_r² − N vanishes at ε_r² = mean r² (the ELBO's maximiser)."""
    m = R.RGNP(fam, R.Config(eps_r_trainable=True, eps_r=0.3), seed=2)
    g = torch.Generator().manual_seed(0)
    P, x = m.sample_params(3, g), m.sample_points(3, 12, g)
    _, terms = m.elbo(P, x, torch.Generator().manual_seed(5))

    def grad_at(log_eps):
        with torch.no_grad():
            m.log_eps_r.fill_(log_eps)
        m.zero_grad()
        elbo, _ = m.elbo(P, x, torch.Generator().manual_seed(5))
        elbo.sum().backward()
        return float(m.log_eps_r.grad)

    rms = terms["residual_rms"]
    assert abs(grad_at(math.log(rms))) < 1e-3 * 36
    assert grad_at(math.log(rms) - 0.5) > 1 and grad_at(math.log(rms) + 0.5) < -1
    assert m.eps_r == pytest.approx(rms * math.exp(0.5))
    # fixed ε_r models are unchanged: no parameter, the config's value
    assert not hasattr(R.RGNP(fam, R.Config(), seed=0), "log_eps_r")


def test_train_init_switches_to_stratified_grid(tmp_path):
    from workbench.errors import InputError
    from workbench.train.pde_rgnp import main

    small = ["--batch", "3", "--points", "6", "--val", "2"]
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    assert main(["--steps", "3", "--eps-r", "0.2", "--out", str(a), *small]) == 0
    cont = ["--steps", "6", "--grid", "stratified", "--eps-r", "0.1", "--out", str(b)]
    assert main(["--init", str(a), *cont, *small]) == 0
    ma, _ = R.load(a)
    mb, _ = R.load(b)
    assert mb.cfg.grid == "stratified" and mb.eps_r == pytest.approx(0.1)
    man = json.loads(b.with_suffix(".json").read_text())
    assert man["metrics"]["eps_r"] == pytest.approx(0.1) and "stratified" in man["data"]
    # the weights continue a's: 3 Adam steps of lr 1e-3 move each weight by ≲ 3e-3
    pa, pb = (torch.cat([q.detach().flatten() for q in m.alpha.mlp.parameters()]) for m in (ma, mb))
    assert float((pa - pb).abs().max()) < 0.05
    # a fixed-grid checkpoint cannot be continued on random grids (its inverse reads its grid)
    c = tmp_path / "c.pt"
    assert main(["--steps", "2", "--grid", "fixed", "--out", str(c), *small]) == 0
    with pytest.raises(InputError):
        main(["--init", str(c), "--steps", "3", "--out", str(tmp_path / "d.pt"), *small])
