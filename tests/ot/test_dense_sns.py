"""The dense NumPy path of SNS (small problems) runs the general path's algorithm: same plans,
iterations and statuses; converges at eta up to 1e5; cancel equals max_iter; warm starts."""

import numpy as np
import pytest

from workbench.datasets import ot as dot
from workbench.physics.ot.metrics import marginal_error
from workbench.progress import Progress
from workbench.solvers.ot import _dense_sns
from workbench.solvers.ot import sinkhorn_newton as sns


def _random(n, m, seed, zeros=False):
    rng = np.random.default_rng(seed)
    a, b = rng.random(n) + 0.1, rng.random(m) + 0.1
    if zeros:
        a[1], b[[0, 4]] = 0.0, 0.0
    return dot.make_problem(a, b, rng.random((n, m)), name="r")


def _cloud(n, m, seed):
    rng = np.random.default_rng(seed)
    X, Y = rng.random((n, 2)), rng.random((m, 2)) * 0.8 + 0.3
    return dot.make_problem(rng.random(n) + 0.1, rng.random(m) + 0.1, X=X, Y=Y, name="c")


def _general(p, prm, monkeypatch, **kw):
    with monkeypatch.context() as mp:
        mp.setattr(_dense_sns, "LEAN_MAX", 0)
        r = sns.solve(p, prm, **kw)
    assert r.meta.get("backend") != "numpy-dense"
    return r


@pytest.mark.parametrize(
    ("kind", "n", "m", "eta"),
    [
        ("random", 30, 22, 1e2),
        ("random", 25, 40, 1e4),
        ("cloud", 36, 30, 1e3),
        ("cloud", 20, 28, 1e5),
    ],
)
def test_dense_path_equals_general_path(kind, n, m, eta, monkeypatch):
    p = _random(n, m, 5) if kind == "random" else _cloud(n, m, 6)
    prm = sns.Params(reg=1.0 / eta, tol=1e-10, device="cpu")
    assert _dense_sns.applies(p, prm)
    rd = sns.solve(p, prm)
    rg = _general(p, prm, monkeypatch)
    assert rd.meta["backend"] == "numpy-dense"
    assert rd.status == rg.status == "converged"
    assert rd.extras["etas"] == rg.extras["etas"]
    # the same steps up to rounding: an iteration more or less at a stage exit at most
    assert abs(rd.iterations - rg.iterations) <= 2
    assert np.abs(rd.output - rg.output).sum() <= 1e-8
    np.testing.assert_allclose(rd.extras["x"], rg.extras["x"], atol=1e-8)
    for k in ("transport_cost", "entropic_objective", "dual_objective"):
        assert rd.metrics[k] == pytest.approx(rg.metrics[k], rel=1e-8, abs=1e-12)
    assert set(rg.metrics) <= set(rd.metrics) and set(rg.history) == set(rd.history)


@pytest.mark.parametrize("log_eta", [2, 3, 4, 5])
@pytest.mark.parametrize("seed", [11, 12])
def test_dense_path_converges_up_to_eta_1e5(log_eta, seed):
    """Rectangular, non-uniform, zero masses; random and point-cloud costs: converged at the
    defaults, with e from the returned plan, f non-decreasing over Newton steps of a stage."""
    for p in (_random(34, 27, seed, zeros=True), _cloud(30, 41, seed)):
        r = sns.solve(p, sns.Params(reg=10.0**-log_eta, device="cpu"))
        assert r.meta["backend"] == "numpy-dense"
        assert r.status == "converged", r.message
        assert marginal_error(r.output, p.a, p.b) <= 1e-8
        assert r.iterations <= 200
        h = r.history
        lv, st, f = np.array(h["level"]), np.array(h["stage"]), np.array(h["f"])
        for i in np.flatnonzero(st == 1):
            if i > 0 and lv[i - 1] == lv[i]:
                assert f[i] >= f[i - 1] - 1e-12 * abs(f[i - 1])
        if p.name == "r":
            assert np.all(r.output[1] == 0) and np.all(r.output[:, [0, 4]] == 0)


def test_dense_path_cancel_equals_max_iter_and_warm_start():
    p = _cloud(30, 25, 3)
    prm = sns.Params(reg=1e-4, device="cpu")
    r_c = sns.solve(p, prm, Progress(cancel_after=17))
    r_k = sns.solve(p, sns.Params(reg=1e-4, device="cpu", max_iter=17))
    assert r_c.status == "cancelled" and r_c.iterations == 17
    assert r_k.status == "max_iter" and r_k.meta["stop_reason"] == "budget"
    np.testing.assert_array_equal(r_c.output, r_k.output)
    # a warm start at the solution converges at once, with no continuation
    r = sns.solve(p, prm)
    r_w = sns.solve(p, prm, init=(r.extras["x"], r.extras["y"]))
    assert r_w.status == "converged" and r_w.iterations <= 2 and len(r_w.extras["etas"]) == 1


def test_large_or_float32_keeps_the_general_path():
    p = _random(30, 30, 0)
    assert _dense_sns.applies(p, sns.Params())
    assert not _dense_sns.applies(p, sns.Params(dtype="float32"))
    assert not _dense_sns.applies(p, sns.Params(device="cuda"))
    big = dot.random_assignment(int(np.sqrt(_dense_sns.LEAN_MAX)) + 1, seed=0)
    assert not _dense_sns.applies(big, sns.Params())


def test_dense_history_has_one_row_per_step_and_reports_are_throttled():
    """History rows are batched (tuples transposed at the end): every column has one entry per
    step, steps run 1..N, the clock never goes back, and the last e is the loop's final e.
    Reports go through Progress.due: fewer than the steps on a fast solve, the final step last."""
    p = _cloud(30, 25, 4)
    prog = Progress()
    r = sns.solve(p, sns.Params(reg=1e-4, device="cpu"), prog)
    h = r.history
    assert {len(v) for v in h.values()} == {r.iterations}
    assert h["step"] == list(range(1, r.iterations + 1))
    assert np.all(np.diff(h["time"]) >= 0) and h["time"][-1] <= r.meta["wall_s"]
    assert h["e"][-1] <= 1e-8 and r.status == "converged"
    steps = [rec["step"] for rec in prog.records]
    assert steps and steps[-1] == r.iterations and len(steps) < r.iterations
