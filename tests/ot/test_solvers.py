"""Correctness of the OT solvers (spec ot.md §9): marginals, POT agreement, Newton properties."""

import math

import numpy as np
import pytest

from workbench.datasets import ot as dot
from workbench.physics.ot.metrics import marginal_error
from workbench.progress import Progress
from workbench.solvers.ot import _core, emd, sinkhorn
from workbench.solvers.ot import sinkhorn_newton as sns


def rect_problem(n=60, m=45, seed=0, zeros=True):
    """Rectangular, non-uniform point-cloud problem, optionally with zero masses."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, 2))
    Y = rng.random((m, 2)) * 0.8 + 0.3
    a = rng.random(n) + 0.05
    b = rng.random(m) + 0.05
    if zeros:
        a[[3, 17]] = 0.0
        b[[5]] = 0.0
    return dot.make_problem(a, b, X=X, Y=Y, cost="sqeuclidean", name="rect")


@pytest.mark.parametrize("mod", [sinkhorn, sns])
@pytest.mark.parametrize("reg", [1e-2, 2e-3])
def test_converges_rectangular_nonuniform(mod, reg):
    p = rect_problem()
    r = mod.solve(p, mod.Params(reg=reg, tol=1e-9, max_iter=200_000, device="cpu"))
    assert r.status == "converged"
    e = marginal_error(r.output, p.a, p.b)
    assert e < 1e-8
    # zero masses are re-inserted as zero rows / columns; potentials finite everywhere
    assert r.output.shape == (60, 45)
    assert np.all(r.output[[3, 17]] == 0) and np.all(r.output[:, 5] == 0)
    assert np.all(np.isfinite(r.extras["x"])) and np.all(np.isfinite(r.extras["y"]))


@pytest.mark.parametrize("mod", [sinkhorn, sns])
def test_plan_agrees_with_pot_sinkhorn_log(mod):
    import ot

    p = rect_problem(zeros=False)
    reg = 5e-3
    P_pot = ot.bregman.sinkhorn_log(p.a, p.b, p.C, reg, numItermax=200_000, stopThr=1e-13)
    assert marginal_error(P_pot, p.a, p.b) < 1e-9
    r = mod.solve(p, mod.Params(reg=reg, tol=1e-11, max_iter=200_000, device="cpu"))
    rel = np.abs(r.output - P_pot).sum() / np.abs(P_pot).sum()
    assert rel < 1e-6
    c_pot = float(np.sum(P_pot * p.C))
    c_ours = r.metrics["transport_cost_normalised"]
    assert abs(c_ours - c_pot) / c_pot < 1e-6
    assert r.metrics["transport_cost"] == pytest.approx(c_ours * p.cost_scale, rel=1e-12)


def test_cost_approaches_emd_monotonically():
    p = dot.random_assignment(60, seed=3)
    exact = emd.solve(p, emd.Params()).metrics["transport_cost"]
    costs = []
    for eta in (100, 400, 1600):
        r = sns.solve(p, sns.Params(reg=1.0 / eta, tol=1e-9, device="cpu"))
        assert r.status == "converged"
        costs.append(r.metrics["transport_cost"])
    gaps = [c - exact for c in costs]
    assert gaps[0] > gaps[1] > gaps[2] > -1e-12
    assert gaps[2] < 0.1 * gaps[0]


def test_newton_steps_increase_f_and_tail_is_superlinear():
    p = dot.random_assignment(200, seed=0)
    r = sns.solve(p, sns.Params(reg=1 / 1200, tol=1e-10, device="cpu"))
    assert r.status == "converged"
    h = r.history
    stage = np.array(h["stage"])
    newton = np.flatnonzero(stage == 1)
    assert newton.size >= 3
    df = np.array(h["df"])[newton]
    assert np.all(df > 0)
    f = np.array(h["f"])
    for i in newton:  # f itself (evaluated by log-sum-exp) never decreases beyond round-off
        assert f[i] >= f[i - 1] - 1e-12 * abs(f[i - 1])
    # superlinear tail: over the last three Newton steps the convergence accelerates (the last
    # ratio e_{k+1}/e_k is the smallest, <= 0.1 and well below a linear rate). Not a strictly
    # decreasing triple: before its quadratic phase the ill-conditioned dual (a near-permutation
    # plan at eta = 1200) can show two steps at an equal ratio (~0.07 here), and did so even
    # with the dense Hessian (kappa = 200), so that pattern depends on the trajectory only.
    e = np.array(h["e"])
    last = newton[-4:]
    assert np.all(stage[last[0] - 1 : last[-1] + 1][1:] == 1)
    ratios = e[last[1:]] / e[last[:-1]]
    assert ratios[-1] == ratios.min()
    assert ratios[-1] <= 0.02


def topk_pattern(prep, alpha, beta, k):
    """The kept Hessian block of SNS: the global top-k of P, selected blockwise."""
    import scipy.sparse as sp

    from workbench.physics.ot.cost import DenseCost
    from workbench.solvers.ot._blocks import LogKernel

    kern = LogKernel(DenseCost(-prep.Z.numpy() / prep.eta), prep.a, prep.b, prep.eta, 64)
    sel = kern.state(alpha, beta, k)
    idx = sel["idx"].numpy()
    assert idx.size == k and np.unique(idx).size == k
    P = _core.evaluate_state(prep, alpha, beta).P.numpy().ravel()
    assert np.sort(P[idx])[0] >= np.sort(P)[-k]  # exactly the k largest
    return sp.csr_matrix((sel["vals"].numpy(), np.divmod(idx, prep.m)), shape=(prep.n, prep.m))


def test_gauge_fixed_hessian_is_positive_definite():
    import torch

    p = rect_problem(n=20, m=15, zeros=False)
    prep = _core.prepare(p, 1e-2, "cpu")
    alpha = torch.zeros(prep.n, dtype=torch.float64)
    beta = torch.zeros(prep.m, dtype=torch.float64)
    for _ in range(5):
        alpha = _core.sinkhorn_x(prep, beta)
        beta = _core.sinkhorn_y(prep, alpha)
    st = _core.evaluate_state(prep, alpha, beta)
    rows, cols = st.rows.numpy(), st.cols.numpy()
    for k in (5, 40, 300):  # sparse, medium, full pattern
        Ps = topk_pattern(prep, alpha, beta, k)
        M = sns.hessian_dense(rows, cols, Ps)
        assert np.allclose(M, M.T)
        assert np.linalg.eigvalsh(M).min() > 0
        # matvec agrees with the dense matrix
        matvec, diag = sns.hessian_operator(rows, cols, Ps)
        v = np.random.default_rng(k).standard_normal(M.shape[0])
        assert np.allclose(matvec(v), M @ v)
        assert np.allclose(diag, np.diag(M))
    # without the gauge fix the full Hessian is singular
    full = np.zeros((35, 35))
    full[:20, :20] = np.diag(rows)
    full[20:, 20:] = np.diag(cols)
    full[:20, 20:] = st.P.numpy()
    full[20:, :20] = st.P.numpy().T
    assert abs(np.linalg.eigvalsh(full).min()) < 1e-12


@pytest.mark.parametrize("n,m", [(20, 15), (12, 25)])
def test_newton_system_dense_and_sparse_paths_solve_the_same_system(n, m):
    """The dense Schur path (small problems), the sparse one and the Schur-complement CG give
    the exact M^-1 g (CG to its tolerance), with and without a shift."""
    import scipy.sparse as sp
    import torch

    p = rect_problem(n=n, m=m, zeros=False)
    prep = _core.prepare(p, 1e-2, "cpu")
    alpha = torch.zeros(prep.n, dtype=torch.float64)
    beta = torch.zeros(prep.m, dtype=torch.float64)
    for _ in range(5):
        alpha = _core.sinkhorn_x(prep, beta)
        beta = _core.sinkhorn_y(prep, alpha)
    st = _core.evaluate_state(prep, alpha, beta)
    rows, cols = st.rows.numpy(), st.cols.numpy()
    Ps = topk_pattern(prep, alpha, beta, 3 * max(n, m))
    M = sns.hessian_dense(rows, cols, Ps)
    g = np.random.default_rng(n).standard_normal(M.shape[0])
    coo = Ps.tocoo()
    idx, vals = coo.row * m + coo.col, coo.data
    prm = sns.Params()
    kw = {"idx": idx, "vals": vals, "shape": (n, m)}
    dense = sns.NewtonSystem(rows, cols, None, prm, cg_first=False, **kw)
    assert isinstance(dense.G, np.ndarray) and not sp.issparse(dense.Pg)
    sparse = sns.NewtonSystem(rows, cols, Ps, prm, cg_first=False)
    assert sp.issparse(sparse.Pg)
    cg = sns.NewtonSystem(rows, cols, None, prm, cg_first=True, **kw)
    for mu in (0.0, 1e-2):
        Mmu = M + mu * np.diag(np.diag(M))
        for system in (dense, sparse, cg):
            dz = system.solve(g, mu)
            assert np.linalg.norm(Mmu @ dz - g) <= 1e-9 * np.linalg.norm(g)
    assert cg.G is None and cg.cg_iters > 0 and cg.cg_fallbacks == 0  # CG did it, no G formed
    # CG over its budget: the direct route takes over, exactly
    short = sns.NewtonSystem(rows, cols, None, prm, cg_first=True, **kw)
    short.cg_budget = 1
    dz = short.solve(g, 0.0)
    assert short.cg_fallbacks == 1 and short.G is not None
    assert np.linalg.norm(M @ dz - g) <= 1e-9 * np.linalg.norm(g)
    assert sns.use_dense(60, 60, 600) and not sns.use_dense(2000, 2000, 20000)


@pytest.mark.parametrize("mod,k", [(sinkhorn, 37), (sns, 23)])
def test_cancel_equals_max_iter(mod, k):
    p = dot.random_assignment(80, seed=1)
    a = mod.solve(p, mod.Params(reg=1 / 1200, max_iter=k, device="cpu"))
    b = mod.solve(p, mod.Params(reg=1 / 1200, device="cpu"), Progress(cancel_after=k))
    assert a.iterations == b.iterations == k
    assert b.status == "cancelled" and a.status == "max_iter"
    np.testing.assert_array_equal(a.output, b.output)


def test_no_nan_at_eta_1e4():
    p = dot.DOMAIN.sample("random_200")
    for mod, prm in [
        (sinkhorn, sinkhorn.Params(reg=1e-4, max_iter=300)),
        (sns, sns.Params(reg=1e-4, max_iter=60)),
    ]:
        r = mod.solve(p, prm)
        assert np.all(np.isfinite(r.output))
        assert np.all(np.isfinite(r.extras["x"])) and np.all(np.isfinite(r.extras["y"]))
        assert all(np.isfinite(v) for v in r.metrics.values())
        assert np.all(np.isfinite(r.history["e"]))
        assert r.status in ("converged", "max_iter")


def test_emd_status_and_iteration_cap():
    p = dot.random_assignment(50, seed=2)
    r = emd.solve(p, emd.Params())
    assert r.status == "converged" and r.metrics["marginal_error"] < 1e-12
    r1 = emd.solve(p, emd.Params(num_iter_max=3))
    assert r1.status == "max_iter" and "num_iter_max" in r1.message


def test_warm_start_and_eps_scaling():
    p = rect_problem(zeros=True)
    r = sinkhorn.solve(p, sinkhorn.Params(reg=2e-3, tol=1e-10, max_iter=100_000))
    again = sns.solve(p, sns.Params(reg=2e-3, tol=1e-9), init=(r.extras["x"], r.extras["y"]))
    assert again.status == "converged" and again.iterations <= 2
    scaled = sinkhorn.solve(p, sinkhorn.Params(reg=2e-3, tol=1e-9, eps_scaling=3, scaling_iters=20))
    assert scaled.status == "converged"
    np.testing.assert_allclose(scaled.output, r.output, atol=1e-9)
    s2 = sns.solve(p, sns.Params(reg=2e-3, tol=1e-9, stages=3))
    assert s2.status == "converged" and s2.metrics["stages"] == 3
    np.testing.assert_allclose(s2.output, r.output, atol=1e-8)
    k = 25  # cancelling inside the continuation equals max_iter
    a = sns.solve(p, sns.Params(reg=2e-3, stages=3, max_iter=k))
    b = sns.solve(p, sns.Params(reg=2e-3, stages=3), Progress(cancel_after=k))
    np.testing.assert_array_equal(a.output, b.output)


def test_sns_is_fast_on_paper_problem():
    """random_500 at eta = 1200: the paper's problem converges in <= 40 iterations."""
    r = sns.solve(dot.DOMAIN.sample("random_500"), sns.Params())
    assert r.status == "converged"
    assert r.iterations <= 40
    assert r.metrics["marginal_error"] <= 1e-8


def test_recommendation_picks_the_smaller_predicted_time():
    """The pick is the argmin of two measured predictions (no timing asserted here)."""
    from workbench.solvers.ot.recommend import recommend

    hard = recommend(dot.DOMAIN.sample("random_500"), 1 / 1200)
    assert hard.predicted_iterations > 2000  # Sinkhorn needs ~15 000 here
    assert math.isfinite(hard.predicted_sns_s) and hard.sns_probe_error <= 1e-4
    fastest = min(("sinkhorn", hard.predicted_sinkhorn_s), ("sinkhorn_newton", hard.predicted_sns_s),
                  key=lambda kv: kv[1])[0]  # fmt: skip
    assert hard.solver == fastest
    # Sinkhorn meets tol inside its probe: recommended outright, SNS not probed
    easy = recommend(dot.random_assignment(200), 0.1)
    assert easy.solver == "sinkhorn" and easy.predicted_iterations <= 50
    assert math.isnan(easy.predicted_sns_s)


def test_recommendation_iteration_fit_on_planted_decays():
    from workbench.solvers.ot.recommend import fit_iterations

    ks = np.arange(5, 55, 5, dtype=float)
    pred, rate, model = fit_iterations(ks, 0.9**ks, 1e-8)  # geometric: 0.9^k = 1e-8 at k = 174.8
    assert model == "geometric" and abs(rate - 0.9) < 1e-12 and abs(pred - 174.8) < 0.1
    pred, _, model = fit_iterations(ks, ks**-2.0, 1e-8)  # power law: k^-2 = 1e-8 at k = 1e4
    assert model.startswith("power law") and abs(pred / 1e4 - 1) < 1e-6
