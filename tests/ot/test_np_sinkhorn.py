"""The NumPy path of the log-domain Sinkhorn gives the torch path's result, and the small exact
cost from HiGHS equals POT's network simplex (both exist only so that small solves import
neither torch nor POT)."""

import numpy as np
import pytest

from workbench.datasets import ot as dot
from workbench.physics.ot import exact
from workbench.physics.ot.metrics import marginal_error
from workbench.progress import Progress
from workbench.solvers.ot import _np_sinkhorn, sinkhorn


def _problem(n=40, m=30, seed=0, zeros=True):
    rng = np.random.default_rng(seed)
    a = rng.random(n) + 0.05
    b = rng.random(m) + 0.05
    if zeros:
        a[[2, 11]] = 0.0
        b[[7]] = 0.0
    X, Y = rng.random((n, 2)), rng.random((m, 2)) * 0.8 + 0.3
    return dot.make_problem(a, b, X=X, Y=Y, cost="sqeuclidean", name="rect")


def _both(problem, params, monkeypatch, **kw):
    """(numpy result, torch result) of the same call to ``sinkhorn.solve``."""
    assert _np_sinkhorn.applies(problem, params)
    r_np = sinkhorn.solve(problem, params, **kw)
    with monkeypatch.context() as mp:
        mp.setattr(_np_sinkhorn, "KERNEL_MAX", 0)  # force the torch path
        assert not _np_sinkhorn.applies(problem, params)
        r_t = sinkhorn.solve(problem, params, **kw)
    assert r_np.meta.get("backend") == "numpy" and "backend" not in r_t.meta
    return r_np, r_t


def _same(r_np, r_t):
    assert r_np.status == r_t.status and r_np.iterations == r_t.iterations
    np.testing.assert_allclose(r_np.output, r_t.output, rtol=1e-10, atol=1e-300)
    for k in ("x", "y"):
        np.testing.assert_allclose(r_np.extras[k], r_t.extras[k], rtol=1e-9, atol=1e-12)
    # the scaling form sums u * (K v) where the log path sums exp(log P): rounding of ~1e-15
    np.testing.assert_allclose(r_np.history["e"], r_t.history["e"], rtol=1e-6, atol=1e-13)
    assert r_np.history["step"] == r_t.history["step"]
    for k, v in r_t.metrics.items():
        if k != "wall_s":
            assert r_np.metrics[k] == pytest.approx(v, rel=1e-9, abs=1e-13), k


@pytest.mark.parametrize(
    "kw",
    [
        {"reg": 1e-2, "tol": 1e-9},  # converges, zero masses re-inserted
        {"reg": 2e-3, "tol": 1e-12, "max_iter": 150},  # stops at the cap
        {"reg": 1e-3, "tol": 1e-9, "eps_scaling": 3, "scaling_iters": 20, "check_every": 7},
    ],
)
def test_numpy_path_equals_torch_path(kw, monkeypatch):
    p = _problem()
    _same(*_both(p, sinkhorn.Params(device="cpu", **kw), monkeypatch))


def test_numpy_path_warm_start_and_cancel(monkeypatch):
    p = _problem(zeros=False, seed=3)
    prm = sinkhorn.Params(reg=5e-3, tol=1e-10, device="auto")
    r0 = sinkhorn.solve(p, sinkhorn.Params(reg=2e-2, tol=1e-8))
    _same(*_both(p, prm, monkeypatch, init=(r0.extras["x"], r0.extras["y"])))

    r_np = sinkhorn.solve(p, prm, Progress(cancel_after=23))
    r_cap = sinkhorn.solve(p, sinkhorn.Params(reg=5e-3, tol=1e-10, max_iter=23))
    assert r_np.status == "cancelled" and r_np.iterations == 23
    np.testing.assert_array_equal(r_np.output, r_cap.output)


def test_large_or_cuda_keeps_torch(monkeypatch):
    big = dot.random_assignment(300, seed=0)  # 90 000 entries: NumPy on the CPU, torch on CUDA
    assert _np_sinkhorn.applies(big, sinkhorn.Params(device="cpu"))
    with monkeypatch.context() as mp:
        mp.setattr(_np_sinkhorn, "KERNEL_MAX", 80_000)
        assert not _np_sinkhorn.applies(big, sinkhorn.Params(device="cpu"))
    small = _problem()
    assert not _np_sinkhorn.applies(small, sinkhorn.Params(device="cuda"))
    assert _np_sinkhorn.applies(small, sinkhorn.Params())


@pytest.mark.parametrize(
    ("n", "m", "reg", "absorbs"),
    [(40, 30, 1e-2, False), (50, 45, 1e-3, True)],
)
def test_scaling_path_matches_pot_sinkhorn_log(n, m, reg, absorbs):
    """The kernel-domain iteration gives POT's log-domain plan (to 1e-6 relative L1 with both at
    e <= 1e-10) on rectangular non-uniform problems; at eta = 1000 (costs in [0, 1]) the
    scalings leave [1/TAU, TAU] and are absorbed."""
    ot = pytest.importorskip("ot")
    rng = np.random.default_rng(n + m)
    a, b = rng.random(n) + 0.1, rng.random(m) + 0.1
    X, Y = rng.random((n, 2)), rng.random((m, 2)) * 0.7 + 0.3
    p = dot.make_problem(a, b, X=X, Y=Y, cost="sqeuclidean", name="abs")
    r = sinkhorn.solve(p, sinkhorn.Params(reg=reg, tol=1e-11, device="cpu"))
    assert r.meta["backend"] == "numpy" and r.status == "converged"
    assert marginal_error(r.output, p.a, p.b) <= 1e-11
    assert (r.metrics["absorptions"] > 0) == absorbs
    Pref = ot.bregman.sinkhorn_log(
        p.a, p.b, np.ascontiguousarray(p.C), reg, numItermax=10**6, stopThr=1e-13, warn=False
    )
    assert marginal_error(Pref, p.a, p.b) <= 1e-10
    assert np.abs(r.output - Pref).sum() <= 1e-6 * Pref.sum()
    # potentials: P = exp(eta (x + y - C) - 1) holds for the returned (gauge-fixed) x, y
    logP = (r.extras["x"][:, None] + r.extras["y"][None, :] - p.C) / reg - 1.0
    # (the plan is u K v: a subnormal kernel entry times the scalings carries its rounding, an
    # absolute error far below 1e-280)
    np.testing.assert_allclose(np.exp(logP), r.output, rtol=1e-9, atol=1e-280)


def test_scaling_path_underflowing_kernel_matches_log_path(monkeypatch):
    """A source point far from every target at eta = 4000: its whole row of exp(-eta C - 1)
    underflows (eta min_j C_0j > 745), so the first row update must be a log-domain half-step;
    the result equals the torch log-domain path's (plan, potentials, iterations)."""
    n, m = 30, 40
    rng = np.random.default_rng(70)
    a, b = rng.random(n) + 0.1, rng.random(m) + 0.1
    X, Y = rng.random((n, 2)), rng.random((m, 2)) * 0.7 + 0.6
    X[0] = 0.0
    p = dot.make_problem(a, b, X=X, Y=Y, cost="sqeuclidean", name="far")
    prm = sinkhorn.Params(reg=2.5e-4, tol=1e-9, device="cpu")
    assert np.min(p.C[0]) / prm.reg > 745.0
    r_np, r_t = _both(p, prm, monkeypatch)
    assert r_np.metrics["log_half_steps"] > 0 and r_np.metrics["absorptions"] > 0
    assert r_np.status == r_t.status == "converged"
    assert abs(r_np.iterations - r_t.iterations) <= prm.check_every
    assert np.abs(r_np.output - r_t.output).sum() <= 1e-8
    np.testing.assert_allclose(r_np.extras["x"], r_t.extras["x"], atol=1e-9)


def test_scaling_path_status_and_cap():
    """An unreachable tol ends at the cap with status max_iter (decided from the plan), and the
    history's errors are those of the plan at the recorded iterations."""
    p = _problem(zeros=False, seed=5)
    r = sinkhorn.solve(p, sinkhorn.Params(reg=1e-3, tol=1e-14, max_iter=37, device="cpu"))
    assert r.status == "max_iter" and r.iterations == 37
    assert r.history["step"][-1] == 37
    assert r.history["e"][-1] == pytest.approx(r.metrics["marginal_error"], rel=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_exact_costs_equal_pot_emd(seed):
    """Both POT-free exact methods give ot.emd's optimal value, with ties (rounded costs) and
    zero masses; the SSP plan is feasible."""
    ot = pytest.importorskip("ot")
    rng = np.random.default_rng(seed)
    probs = [_problem(seed=seed), _problem(23, 23, seed=seed, zeros=False), dot.hist1d()]
    for n, m in ((10, 10), (7, 12), (15, 20)):
        a, b = rng.random(n), rng.random(m)
        a[0] = 0.0
        C = np.round(rng.random((n, m)) * 4) / 4  # many ties: a degenerate LP
        probs.append(dot.make_problem(a / a.sum(), b / b.sum(), C, name="ties"))
    for p in probs:
        a, b, C = p.a, p.b, np.ascontiguousarray(p.C)
        ref = float(np.sum(ot.emd(a, b, C, numItermax=10_000_000) * C))
        assert exact.exact_cost_lp(a, b, C) == pytest.approx(ref, rel=1e-12, abs=1e-15)
        if p.n * p.m <= 1000:
            cost, P = exact.exact_cost_ssp(a, b, C)
            assert cost == pytest.approx(ref, rel=1e-12, abs=1e-15)
            assert P.min() >= 0 and marginal_error(P, a, b) < 1e-12
    tiny = dot.make_problem(np.full(10, 0.1), np.full(10, 0.1), rng.random((10, 10)), name="t")
    assert tiny.n * tiny.m <= dot.SSP_MAX_ENTRIES  # the CLI's trivial solve imports no SciPy
    assert dot.exact_cost(tiny) == pytest.approx(
        float(np.sum(ot.emd(tiny.a, tiny.b, tiny.C) * tiny.C)) * tiny.cost_scale, rel=1e-12
    )
