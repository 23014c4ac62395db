"""Balanced PINN, exact boundary conditions, the box flow and the collocation samplers."""

import numpy as np
import pytest
import torch

from workbench.nets.pde_flow import BoxFlow
from workbench.nets.pde_mlp import MLP
from workbench.physics.pde.compiled import compile_problem
from workbench.physics.pde.constraints import DirichletLift, torch_function
from workbench.physics.pde.operators import NEEDS, apply_operator
from workbench.physics.pde.uniformity import residual_uniformity
from workbench.problems import PDEProblem
from workbench.solvers.pde import pinn, pinn_aas, pinn_rad, pinn_rar, pinn_uniform
from workbench.solvers.pde import pinn_samplers as PS

BOX2 = ((-1.0, 1.0), (0.0, 2.0))


def _perturbed_flow(box, seed=0, scale=0.3, n_base=0):
    g = torch.Generator().manual_seed(seed)
    flow = BoxFlow(box, n_layers=4, width=16, generator=g, dtype=torch.float64, n_base=n_base)
    with torch.no_grad():  # move away from the near-identity start
        for p in flow.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return flow


def test_flow_is_invertible_with_the_right_log_determinant():
    flow = _perturbed_flow(BOX2)
    z = torch.randn(20, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x, logdet = flow.forward_map(z)
    z_back, logdet_inv = flow.inverse_map(x)
    torch.testing.assert_close(z_back, z, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(logdet_inv, -logdet, rtol=1e-9, atol=1e-9)
    for i in range(5):  # change of variables: log|det ∂x/∂z| against the autograd Jacobian
        J = torch.autograd.functional.jacobian(lambda v: flow.forward_map(v[None])[0][0], z[i])
        assert float(torch.linalg.slogdet(J)[1]) == pytest.approx(float(logdet[i]), abs=1e-9)


@pytest.mark.parametrize("box", [BOX2, ((0.5, 3.0),)])
def test_flow_density_integrates_to_one_on_the_box(box):
    flow = _perturbed_flow(box, seed=2, scale=0.2)
    n = 400 if len(box) == 2 else 20001
    # midpoint rule on the box; the density is smooth, so 400² cells are plenty
    axes = [lo + (np.arange(n) + 0.5) * (hi - lo) / n for lo, hi in box]
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(box))
    with torch.no_grad():
        p = torch.exp(flow.log_prob(torch.as_tensor(mesh))).numpy()
    vol = np.prod([hi - lo for lo, hi in box])
    assert p.mean() * vol == pytest.approx(1.0, abs=2e-2)


def test_mixture_base_flow_density_integrates_to_one_and_matches_its_samples():
    """With a Gaussian-mixture base the flow is still a density on the box, and its sampler
    draws from that density: the share of 40 000 samples in each of 4×4 cells agrees with the
    cell's integral of p (midpoint rule, 400² nodes) within 4 binomial standard deviations."""
    flow = _perturbed_flow(BOX2, seed=4, scale=0.2, n_base=5)
    n = 400
    axes = [lo + (np.arange(n) + 0.5) * (hi - lo) / n for lo, hi in BOX2]
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        p = torch.exp(flow.log_prob(torch.as_tensor(mesh))).numpy().reshape(n, n)
    cell = 4.0 / n**2  # |Ω| / n²
    assert p.sum() * cell == pytest.approx(1.0, abs=2e-2)
    mass = p.reshape(4, n // 4, 4, n // 4).sum((1, 3)) * cell
    x = flow.sample(40_000, torch.Generator().manual_seed(5)).numpy()
    ix = np.clip(((x[:, 0] + 1.0) / 2.0 * 4).astype(int), 0, 3)
    iy = np.clip((x[:, 1] / 2.0 * 4).astype(int), 0, 3)
    share = np.bincount(ix * 4 + iy, minlength=16).reshape(4, 4) / len(x)
    sd = np.sqrt(mass * (1 - mass) / len(x))
    assert np.all(np.abs(share - mass) <= 4 * sd + 2e-3), (share, mass)
    assert mass.max() < 0.5  # a perturbed mixture, not one cell


@pytest.mark.parametrize("box", [BOX2, ((0.5, 3.0),)])
def test_flow_samples_stay_in_the_box(box):
    flow = _perturbed_flow(box, seed=3, scale=1.0)
    x = flow.sample(5000, torch.Generator().manual_seed(0)).numpy()
    lo = np.array([b[0] for b in box])
    hi = np.array([b[1] for b in box])
    assert np.all(x >= lo) and np.all(x <= hi) and np.isfinite(x).all()
    assert x.std(0).min() > 0


def _ctx(residual2, box=BOX2, seed=0):
    return PS.Context(
        box, np.random.default_rng(seed), torch.Generator().manual_seed(seed), residual2
    )


def _peak_r2(P):
    return np.exp(-50 * ((P[:, 0] - 0.5) ** 2 + (P[:, 1] - 1.5) ** 2))


def test_rar_adds_the_points_with_the_largest_residual():
    s = PS.RARSampler(100, n_candidates=5000, n_add=20)
    ctx = _ctx(_peak_r2)
    X0 = s.init(ctx)
    X1 = s.update(ctx, 1, X0)
    assert len(X1) == 120 and np.array_equal(X1[:100], X0)
    added = _peak_r2(X1[100:])
    # the added points are the top 20 of the same candidates: redraw them with the same seed
    ctx2 = _ctx(_peak_r2)
    ctx2.uniform(100)
    cand = ctx2.uniform(5000)
    assert added.min() >= np.sort(_peak_r2(cand))[-20] - 1e-15
    assert np.all(np.hypot(X1[100:, 0] - 0.5, X1[100:, 1] - 1.5) < 0.15)


def test_rad_concentrates_where_the_residual_is_large_but_keeps_a_floor():
    s = PS.RADSampler(2000, n_candidates=20000, k=2.0, c=0.5)
    ctx = _ctx(_peak_r2)
    X = s.update(ctx, 1, s.init(ctx))
    near = np.hypot(X[:, 0] - 0.5, X[:, 1] - 1.5) < 0.3
    frac_uniform = np.pi * 0.3**2 / 4.0
    assert len(X) == 2000 and near.mean() > 3 * frac_uniform
    assert (~near).mean() > 0.2  # c > 0: the rest of the box is still sampled


def test_aas_flow_moves_mass_to_the_residual_peak():
    s = PS.AASSampler(500, n_alpha=200, lr_alpha=5e-3, beta=1e-3, zeta=0.0, batch=500)
    ctx = _ctx(_peak_r2)
    X = s.update(ctx, 1, s.init(ctx))
    near = np.hypot(X[:, 0] - 0.5, X[:, 1] - 1.5) < 0.5
    assert near.mean() > 1.5 * np.pi * 0.25 / 4.0  # uniform: π·0.5² / |Ω|
    lo, hi = np.array([-1.0, 0.0]), np.array([1.0, 2.0])
    assert np.all(X >= lo) and np.all(X <= hi)


@pytest.mark.slow  # 5 stages × 200 flow steps: ~30 s on one free core
def test_aas_flow_alone_finds_both_of_two_equal_residual_bumps():
    """Issue 15's AS4 capability without a PINN: against a FIXED r² with two equal narrow
    bumps, the AAS sampler with its defaults (ζ = 0.25 of the samples uniform included) puts
    ≥ 12 % of a stage's samples within 0.1 of each bump after 5 stages (15.8 % / 20.2 %
    measured). The one-Gaussian flow (the defaults before 2026-12-07) put 21–31 % near one
    bump and < 3 % near the other on the validation densities. AS4's 20 % near each bump is
    NOT reached here (it was on one validation density, 20.1 % / 18.8 %): the Sobolev
    penalty at β = 3e-4 caps it near 24 % at the optimum and the mass shifts between the
    bumps only slowly. This density (centres, width) chose no setting."""
    centres = [(0.4, -0.5), (-0.5, 0.45)]

    def r2(P):
        return sum(
            np.exp(-((P[:, 0] - a) ** 2 + (P[:, 1] - b) ** 2) / (2 * 0.03**2)) for a, b in centres
        )

    s = PS.AASSampler(1000)
    ctx = _ctx(r2, box=((-1.0, 1.0), (-1.0, 1.0)))
    X = s.init(ctx)
    for k in range(5):
        X = s.update(ctx, k + 1, X)
    near = [np.mean(np.hypot(X[:, 0] - a, X[:, 1] - b) < 0.1) for a, b in centres]
    assert min(near) >= 0.12, near
    assert np.all(np.abs(X) <= 1.0)


@pytest.mark.parametrize(
    "operator,exact,box",
    [
        ("poisson", "sin(3*x) + x**2", ((0.0, 1.0),)),
        ("poisson", "exp(-10*((x-0.2)**2 + y**2))", ((-1.0, 1.0), (-1.0, 1.0))),
        ("allen_cahn", "sin(2*x)*cos(y)", ((0.0, 1.0), (0.0, 1.0))),
        ("drift_poisson", "exp(-(x**2 + y**2))*cos(x)", ((-1.0, 1.0), (-1.0, 1.0))),
        ("advection", "sin(x - beta*y)", ((0.0, 1.0), (0.0, 1.0))),
    ],
)
def test_manufactured_solution_has_zero_residual_to_round_off(operator, exact, box):
    dim = len(box)
    p = PDEProblem(
        operator=operator,
        box=box,
        variables=("x", "y")[:dim],
        exact=exact,
        coefficients={"beta": 3.0} if operator == "advection" else {},
        n_col=(8,) * dim,
    )
    comp = compile_problem(p)
    u_fn = torch_function(exact, p)
    X = torch.as_tensor(
        np.random.default_rng(0).uniform([b[0] for b in box], [b[1] for b in box], (200, dim))
    ).requires_grad_(True)
    model = torch.nn.Module()
    model.forward = lambda Y: u_fn(*[Y[:, j] for j in range(dim)])
    need = {n for n in NEEDS[operator] if dim == 2 or "y" not in n}
    u, d = pinn._derivs(model, X, need)
    r = apply_operator(operator, u, d, comp.coeffs, [X[:, j] for j in range(dim)])
    f = torch.as_tensor(comp.source(*X.detach().numpy().T))
    scale = float(f.abs().max()) + 1.0
    assert float((r - f).abs().max()) <= 1e-11 * scale


@pytest.mark.parametrize("bc", ["dirichlet", "initial_boundary"])
def test_exact_bc_lift_matches_the_data_on_the_boundary(bc):
    p = PDEProblem(
        operator="poisson" if bc == "dirichlet" else "burgers",
        box=((0.0, 1.0), (0.0, 2.0)),
        variables=("x", "y"),
        bc=bc,
        exact="exp(x)*cos(y) + x*y",
        n_col=(8, 8),
    )
    lift = DirichletLift(p)
    t = torch.linspace(0, 1, 50, dtype=torch.float64)
    faces = [
        torch.stack([torch.zeros_like(t), 2 * t], 1),
        torch.stack([torch.ones_like(t), 2 * t], 1),
        torch.stack([t, torch.zeros_like(t)], 1),
    ]
    if bc == "dirichlet":
        faces.append(torch.stack([t, 2 * torch.ones_like(t)], 1))
    for F in faces:
        g = torch.exp(F[:, 0]) * torch.cos(F[:, 1]) + F[:, 0] * F[:, 1]
        torch.testing.assert_close(lift.lift(F), g, rtol=1e-12, atol=1e-12)
        assert float(lift.distance(F).abs().max()) == 0.0
    inside = torch.tensor([[0.3, 0.7], [0.5, 1.0]], dtype=torch.float64)
    assert float(lift.distance(inside).min()) > 0


def test_balanced_pinn_solves_a_low_frequency_problem_with_nonzero_boundary_values():
    p = PDEProblem(box=((0.0, 2.0),), exact="exp(x/2)*cos(2*x) + 1", n_col=(64,))
    prm = pinn.Params(width=24, depth=2, max_iter=700, adam_iter=400, lr=5e-3, n_checkpoints=4)
    r = pinn.solve(p, prm)
    assert r.metrics["rel_l2_final"] < 1e-3, r.metrics
    assert r.metrics["boundary_misfit_rel"] < 1e-6  # exact by construction
    assert r.metrics["suspect"] == 0.0
    # a budget far too short is flagged, not shown like any other run
    short = pinn.solve(p, pinn.Params(width=24, depth=2, max_iter=3, adam_iter=3))
    assert short.metrics["suspect"] == 1.0 and short.message.startswith("SUSPECT")
    assert "residual" in short.extras["suspect_reasons"]


@pytest.mark.parametrize("bc", ["adaptive", "penalty"])
def test_soft_boundary_modes_hold_the_boundary_data(bc):
    p = PDEProblem(box=((0.0, 2.0),), exact="exp(x/2)*cos(2*x) + 1", n_col=(64,))
    prm = pinn.Params(
        width=24, depth=2, max_iter=900, adam_iter=500, lr=5e-3, bc=bc, n_checkpoints=4
    )
    r = pinn.solve(p, prm)
    assert r.metrics["rel_l2_final"] < 1e-2, r.metrics
    assert r.metrics["boundary_misfit_rel"] < 1e-2
    if bc == "adaptive":
        assert r.metrics["gamma_final"] != 100.0


def test_residual_uniformity_reference_values():
    box1 = ((0.0, 2.0),)
    flat = residual_uniformity(np.ones(1001), box1)
    assert flat["cv"] == pytest.approx(0.0, abs=1e-12) and flat["w1"] < 1e-2
    # all the mass at the left end: W1 to uniform on [0, L] is L/2
    spike = np.zeros(1001)
    spike[0] = 1.0
    assert residual_uniformity(spike, box1)["w1"] == pytest.approx(1.0, abs=5e-3)
    box2 = ((-1.0, 1.0), (-1.0, 1.0))
    x = np.linspace(-1, 1, 96)
    X, Y = np.meshgrid(x, x, indexing="ij")
    peak = np.exp(-200 * ((X - 0.5) ** 2 + (Y - 0.5) ** 2))
    u2 = residual_uniformity(np.ones_like(X), box2)
    p2 = residual_uniformity(peak, box2)
    assert u2["w1"] < 1e-9 and p2["w1"] > 0.5 and p2["cv"] > 5


@pytest.mark.parametrize("module", [pinn_uniform, pinn_rar, pinn_rad, pinn_aas])
def test_staged_solvers_record_their_stages(module):
    p = PDEProblem(
        box=((-1.0, 1.0), (-1.0, 1.0)),
        variables=("x", "y"),
        exact="exp(-4*((x-0.3)**2 + y**2))",
        n_col=(12, 12),
    )
    kw = dict(width=16, depth=2, n_points=64, stage_steps=10, max_iter=35, adam_iter=30)
    extra = {"n_candidates": 500} if module in (pinn_rar, pinn_rad) else {}
    if module is pinn_aas:
        extra = {"n_alpha": 3, "flow_batch": 64, "flow_layers": 2}
    r = module.solve(p, module.Params(**kw, **extra))
    pts = r.extras["stage_points"]
    assert pts.shape[0] == 3 and pts.shape[2] == 2  # stages start at steps 0, 10, 20
    assert r.output.shape == (64, 64) and r.extras["y"].shape == (64,)  # at least 64² output
    assert len(r.extras["stage_rel_l2"]) == 3 and np.isfinite(r.metrics["residual_w1"])
    n = [int(np.isfinite(s[:, 0]).sum()) for s in pts]
    if module is pinn_rar:
        assert n == [64, 70, 76]
    else:
        assert n == [64, 64, 64]
    if module is pinn_aas:
        assert r.extras["stage_density"].shape == (2, 64, 64)
        lo, hi = -1.0, 1.0
        assert np.nanmin(pts) >= lo and np.nanmax(pts) <= hi


def _autograd_derivs(model, X, need):
    """The reference: reverse-mode autograd through the module's forward (nested grads)."""

    class Plain(torch.nn.Module):
        def forward(self, Y):
            return model(Y)

    return pinn._derivs(Plain(), X, need)


@pytest.mark.parametrize(
    "dim,activation,fourier,exact",
    [
        (1, "sin", False, "exp(x)*cos(3*x)"),
        (2, "tanh", False, "exp(x)*cos(y) + x*y"),
        (2, "sin", True, "sin(x)*y**2"),
        (1, "tanh", True, "x**3"),
    ],
)
def test_forward_mode_derivatives_match_autograd(dim, activation, fourier, exact):
    box = ((0.0, 2.0),) if dim == 1 else ((-1.0, 1.0), (0.0, 2.0))
    p = PDEProblem(box=box, variables=("x", "y")[:dim], exact=exact, n_col=(8,) * dim)
    gen = torch.Generator().manual_seed(0)
    B = torch.randn(8, dim, generator=gen, dtype=torch.float64) if fourier else None
    net = MLP(box, 16, 3, activation, gen, torch.float64, B, 2.5, 1.7)
    need = {"x", "xx", "y", "yy"} if dim == 2 else {"xx"}
    X = torch.rand(40, dim, dtype=torch.float64, generator=gen) * 2 + torch.tensor(
        [b[0] for b in box], dtype=torch.float64
    )
    for lift in (None, DirichletLift(p)):
        model = pinn._Model(net, lift)
        model.pin(X, need)
        u, d = pinn._derivs(model, X, need)
        u0, d0 = _autograd_derivs(model, X, need)
        torch.testing.assert_close(u, u0, rtol=1e-12, atol=1e-12)
        assert sorted(d) == sorted(d0)
        for k in d0:
            torch.testing.assert_close(d[k], d0[k], rtol=1e-11, atol=1e-11)
        # the loss gradient in the weights agrees too (the forward pass stays differentiable)
        ps = list(net.parameters())
        g = torch.autograd.grad((d["xx"] ** 2).sum(), ps, allow_unused=True)
        g0 = torch.autograd.grad((d0["xx"] ** 2).sum(), ps, allow_unused=True)
        for a, b in zip(g, g0, strict=True):
            assert (a is None) == (b is None)
            if b is not None:
                torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_forward_mode_laplacian_of_a_one_neuron_network_is_analytic():
    # u(x, y) = s·sin(a·h_x + b·h_y + c) + s·e with h the inputs mapped to [−1, 1]: a
    # manufactured solution, Δu = −(a² + b²)(2/L)²·s·sin(·) on a square box of side L
    box = ((0.0, 3.0), (-1.0, 2.0))
    net = MLP(box, 1, 1, "sin", torch.Generator().manual_seed(0), torch.float64, None, 1.7)
    a, b, c, e = 0.8, -1.3, 0.4, 0.25
    with torch.no_grad():
        net.weights[0].copy_(torch.tensor([[a, b]], dtype=torch.float64))
        net.biases[0].copy_(torch.tensor([c], dtype=torch.float64))
        net.weights[1].copy_(torch.tensor([[1.0]]))
        net.biases[1].copy_(torch.tensor([e], dtype=torch.float64))
    X = torch.rand(30, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 3
    X[:, 1] -= 1.0
    u, d = pinn._derivs(pinn._Model(net), X, {"xx", "yy"})
    arg = a * (2 * X[:, 0] / 3 - 1) + b * (2 * (X[:, 1] + 1) / 3 - 1) + c
    torch.testing.assert_close(u, 1.7 * (torch.sin(arg) + e), rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(d["x"], 1.7 * a * (2 / 3) * torch.cos(arg), rtol=1e-13, atol=1e-13)
    lap = d["xx"] + d["yy"]
    ref = -1.7 * (a**2 + b**2) * (2 / 3) ** 2 * torch.sin(arg)
    torch.testing.assert_close(lap, ref, rtol=1e-12, atol=1e-13)


def test_w1_on_the_excess_and_deficit_equals_the_full_transport():
    import ot

    rng = np.random.default_rng(4)
    box = ((-1.0, 1.0), (0.0, 2.0))
    for r2 in (
        rng.random((64, 64)),
        _peak_r2(
            np.stack(
                np.meshgrid(np.linspace(-1, 1, 64), np.linspace(0, 2, 64), indexing="ij"), -1
            ).reshape(-1, 2)
        ).reshape(64, 64),
    ):
        got = residual_uniformity(r2, box, n_agg=16)["w1"]
        # the reference: the full 16² × 16² transport between μ_r and U on the cell centres
        mass = r2.reshape(16, 4, 16, 4).sum((1, 3)).ravel()
        a, b = mass / mass.sum(), np.full(256, 1 / 256)
        c1 = -1 + (np.arange(16) + 0.5) * 2 / 16
        c2 = (np.arange(16) + 0.5) * 2 / 16
        P = np.stack(np.meshgrid(c1, c2, indexing="ij"), -1).reshape(-1, 2)
        M = np.sqrt(((P[:, None] - P[None]) ** 2).sum(-1))
        assert got == pytest.approx(ot.emd2(a, b, M), rel=1e-9)


@pytest.mark.parametrize("bc", ["exact", "penalty"])
def test_levenberg_marquardt_finish_lowers_the_loss_monotonically_and_solves(bc):
    p = PDEProblem(box=((0.0, 2.0),), exact="exp(x/2)*cos(3*x) + 1", n_col=(48,))
    prm = pinn.Params(width=16, depth=2, max_iter=260, adam_iter=200, lr=5e-3, finish="lm", bc=bc)
    prm = type(prm)(**{**prm.__dict__, "n_checkpoints": 260})  # log every step
    r = pinn.solve(p, prm)
    assert r.extras["finish"] == "lm"
    steps = np.array(r.history["step"])
    loss = np.array(r.history["loss"])[steps > 200]
    assert len(loss) >= 50
    # accepted LM steps only ever lower the loss (rejected ones keep the iterate)
    assert np.all(np.diff(loss) <= 1e-12 * loss[:-1])
    assert loss[-1] < 1e-3 * np.array(r.history["loss"])[steps == 200][0]
    assert r.metrics["rel_l2_final"] < 1e-3, r.metrics
    assert r.metrics["boundary_misfit_rel"] < 1e-3


@pytest.mark.slow  # two solves with their test-grid diagnostics: ~4 s alone, 20 s on a loaded machine
def test_levenberg_marquardt_reusing_the_gram_matrix_gives_the_same_iterates(monkeypatch):
    """A rejected LM step keeps the Jacobian, so its Gram matrix is reused (the speed-up of
    2026-12-07): for a fixed seed the run equals one that forms AAᵀ every iteration."""
    import functools

    p = PDEProblem(
        box=((-1.0, 1.0), (-1.0, 1.0)),
        variables=("x", "y"),
        exact="exp(-20*((x-0.3)**2 + y**2))",
        n_col=(12, 12),
    )
    kw = dict(width=10, depth=2, n_points=60, stage_steps=20, adam_iter=20, max_iter=45)
    fast = pinn_uniform.solve(p, pinn_uniform.Params(**kw))
    orig = pinn.levenberg_marquardt
    monkeypatch.setattr(pinn, "levenberg_marquardt", functools.partial(orig, reuse_gram=False))
    slow = pinn_uniform.solve(p, pinn_uniform.Params(**kw))
    assert fast.iterations == slow.iterations == 45
    np.testing.assert_allclose(fast.output, slow.output, rtol=0, atol=1e-12)
    assert fast.metrics["loss_final"] == pytest.approx(slow.metrics["loss_final"], rel=1e-10)


def test_finish_auto_picks_lm_for_small_point_sets_only():
    p = PDEProblem(box=((0.0, 1.0),), exact="sin(2*x)", n_col=(32,))
    kw = dict(width=40, depth=2, max_iter=6, adam_iter=5)  # 1801 weights
    assert pinn.solve(p, pinn.Params(**kw)).extras["finish"] == "lm"  # 128 points
    r = pinn.solve(p, pinn.Params(**kw, n_col=1100))  # points and weights > 1024
    assert r.extras["finish"] == "lbfgs"


def test_sup_output_scale_sizes_a_localised_peak_and_agrees_with_rms_on_a_mode():
    """The staged solvers scale the output by the sup-norm estimate max|f| / k̄²: within a
    factor 2 of a narrow peak's height, where the rms estimate is 100× too small; on a Fourier
    mode the two differ by √2 only (the ratio of a sine's maximum to its rms)."""
    box = ((-1.0, 1.0), (-1.0, 1.0))
    peak = PDEProblem(box=box, variables=("x", "y"), exact="exp(-800*((x+0.2)**2 + (y-0.3)**2))")
    rms = pinn.solution_scale(peak, norm="rms")[0]
    sup = pinn.solution_scale(peak, norm="sup")[0]
    assert 0.5 <= sup <= 2.0 and rms < 0.02
    mode = PDEProblem(box=((0.0, np.pi),), variables=("x",), exact="sin(6*x)", n_col=(64,))
    r1, s1 = (pinn.solution_scale(mode, norm=n)[0] for n in ("rms", "sup"))
    assert s1 / r1 == pytest.approx(np.sqrt(2), rel=0.05)
    assert s1 == pytest.approx(1.0, rel=0.1)


def test_staged_defaults_finish_with_levenberg_marquardt_on_the_last_set():
    """Every sampler gets the same finish (LM on the last collocation set) and the loss it
    reports is the loss of that set: on a smooth 2-D problem 40 LM iterations after 60 Adam
    steps bring rel L2 below 1e-3 (3e-4 measured; the 60 Adam steps alone leave 4e-2, and 40 L-BFGS-B iterations
    instead of LM 2e-3), and
    the boundary data hold exactly."""
    p = PDEProblem(
        box=((-1.0, 1.0), (-1.0, 1.0)),
        variables=("x", "y"),
        exact="exp(-2*((x-0.3)**2 + y**2)) + 0.5*x",
        n_col=(12, 12),
    )
    kw = dict(width=16, depth=2, n_points=150, stage_steps=30, adam_iter=60, max_iter=100, lr=5e-3)
    r = pinn_uniform.solve(p, pinn_uniform.Params(**kw))
    assert r.extras["finish"] == "lm"
    assert r.metrics["rel_l2_final"] < 1e-3
    assert r.metrics["boundary_misfit_rel"] < 1e-6


def test_zero_output_init_starts_at_the_lift_with_the_same_hidden_layers():
    """zero_last: N ≡ 0 at the start (u = G), hidden layers drawn exactly as Xavier draws them."""
    box = ((-1.0, 1.0), (-1.0, 1.0))
    nets = [
        MLP(box, 16, 3, "tanh", torch.Generator().manual_seed(4), torch.float64, zero_last=z)
        for z in (False, True)
    ]
    for a, b in zip(nets[0].weights[:-1], nets[1].weights[:-1], strict=True):
        assert torch.equal(a, b)
    assert nets[0].weights[-1].abs().max() > 0 and torch.count_nonzero(nets[1].weights[-1]) == 0
    X = torch.rand(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    u, du, d2u = nets[1].taylor(X)
    assert torch.count_nonzero(u) == 0 and torch.count_nonzero(du) == 0
    assert torch.count_nonzero(d2u) == 0


class _OracleSampler(PS.Sampler):
    """Half of N uniform, half from a Gaussian of twice the peak's std around its centre."""

    name = "oracle"

    def __init__(self, n: int, centre, std: float) -> None:
        super().__init__(n)
        self.centre, self.std = np.asarray(centre, float), float(std)

    def init(self, ctx: PS.Context) -> np.ndarray:
        m = self.n // 2
        u = ctx.uniform(self.n - m)
        g = self.centre + self.std * ctx.rng.standard_normal((4 * m, 2))
        return np.concatenate([u, g[np.all(np.abs(g) < 1, axis=1)][:m]])


@pytest.mark.slow
def test_staged_pinn_with_oracle_points_solves_a_narrow_validation_peak():
    """The staged solvers' network and optimiser (4×64 tanh, exact BCs, Adam with the decaying
    rate, LM finish) solve the validation peak u = exp(−500|x − (−0.3, 0.25)|²) (0.3 % of the
    box) from a point set that sees it: rel L2 0.090 measured (the constant rate ended at 0.20,
    and every sampler above 1 before that). The tolerance 0.15 is the issue's "small" error with
    room for seeds; N ≡ 0 scores 1."""
    a, c = 500.0, (-0.3, 0.25)
    p = PDEProblem(
        box=((-1.0, 1.0), (-1.0, 1.0)),
        variables=("x", "y"),
        exact=f"exp(-{a}*((x+0.3)**2 + (y-0.25)**2))",
        n_col=(64, 64),
    )
    prm = pinn_uniform.Params(n_points=1000, stage_steps=300, adam_iter=1500, max_iter=1550)
    assert prm.lr_decay == 0.01  # the default under test
    r = pinn.train(p, prm, None, _OracleSampler(prm.n_points, c, 2 / np.sqrt(2 * a)))
    assert r.metrics["rel_l2_final"] < 0.15, r.metrics
    assert r.metrics["boundary_misfit_rel"] < 1e-6


def test_stage_lm_runs_levenberg_marquardt_before_each_sampler_update():
    """``stage_lm``: LM iterations at the end of every stage but the last, on that stage's set,
    before the sampler acts; the first stage's recorded error (taken after its LM) falls far
    below the Adam-only stage's, and the run ends better; it needs the LM finish."""
    p = PDEProblem(
        box=((-1.0, 1.0), (-1.0, 1.0)),
        variables=("x", "y"),
        exact="exp(-2*((x-0.3)**2 + y**2)) + 0.5*x",
        n_col=(12, 12),
    )
    kw = dict(width=16, depth=2, n_points=150, stage_steps=30, adam_iter=60, max_iter=60, lr=5e-3)
    r0 = pinn_rad.solve(p, pinn_rad.Params(**kw, n_candidates=500))
    r1 = pinn_rad.solve(p, pinn_rad.Params(**kw, n_candidates=500, stage_lm=20))
    assert r1.extras["stage_rel_l2"][0] < 0.1 * r0.extras["stage_rel_l2"][0]
    assert r1.metrics["rel_l2_final"] < r0.metrics["rel_l2_final"]
    assert r1.output.dtype == np.float64 and np.all(np.isfinite(r1.output))
    with pytest.raises(Exception, match="stage_lm"):
        pinn_uniform.solve(p, pinn_uniform.Params(**kw, stage_lm=5, finish="lbfgs"))


def test_aas_keep_carries_a_fraction_of_the_previous_set_at_a_fixed_size():
    """``keep``: round(keep·N) of the previous points survive (a subset, no repeats), the rest
    are fresh (flow and ζ uniform), and the set keeps its size N inside the box."""
    s = PS.AASSampler(200, n_alpha=2, batch=64, n_layers=2, width=8, zeta=0.25, keep=0.4)
    ctx = _ctx(_peak_r2)
    X0 = s.init(ctx)
    X1 = s.update(ctx, 1, X0)
    old = {tuple(p) for p in X0}
    kept = [tuple(p) in old for p in X1]
    assert len(X1) == 200 and sum(kept) == 80 and len({tuple(p) for p in X1}) == 200
    lo, hi = np.array([-1.0, 0.0]), np.array([1.0, 2.0])
    assert np.all(X1 >= lo) and np.all(X1 <= hi)


def test_aas_average_samples_the_mean_of_the_stage_flows():
    """``average`` (fictitious play): after K updates the sampler holds K frozen copies of the
    flow; the density it reports is their mean, a density on the box, and the flow share of
    the next set follows that mean (cells of 4×4 within 4 binomial sd), not the last flow."""
    s = PS.AASSampler(20_000, n_alpha=1, batch=64, n_layers=4, width=16, zeta=0.0, average=True)
    ctx = _ctx(_peak_r2)
    X = s.init(ctx)
    s.update(ctx, 1, X)
    # two clearly different flows as the stage-1 and stage-2 players
    s.flow = _perturbed_flow(BOX2, seed=1, scale=0.2, n_base=5)
    s.past[0] = _perturbed_flow(BOX2, seed=4, scale=0.2, n_base=5)
    s.n_alpha = 0
    X2 = s.update(ctx, 2, X)
    assert len(s.past) == 2 and s.past[1] is not s.flow
    n = 400
    axes = [lo + (np.arange(n) + 0.5) * (hi - lo) / n for lo, hi in BOX2]
    p = s.density(axes)
    cell = 4.0 / n**2
    assert p.sum() * cell == pytest.approx(1.0, abs=2e-2)
    mass = p.reshape(4, n // 4, 4, n // 4).sum((1, 3)) * cell
    ix = np.clip(((X2[:, 0] + 1.0) / 2.0 * 4).astype(int), 0, 3)
    iy = np.clip((X2[:, 1] / 2.0 * 4).astype(int), 0, 3)
    share = np.bincount(ix * 4 + iy, minlength=16).reshape(4, 4) / len(X2)
    sd = np.sqrt(mass * (1 - mass) / len(X2))
    assert np.all(np.abs(share - mass) <= 4 * sd + 2e-3), (share, mass)
    s.average = False  # the last flow alone is a different density: the test can tell them apart
    p_last = s.density(axes).reshape(4, n // 4, 4, n // 4).sum((1, 3)) * cell
    assert np.abs(p_last - mass).max() > 10 * sd.max()
