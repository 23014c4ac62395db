"""Exact U-solve of the GP-HM loss (usolve) and the source-based frequency scale."""

import math

import numpy as np
import pytest
import torch

from workbench.datasets.pde import make_preset
from workbench.physics.pde.compiled import compile_problem
from workbench.problems import PDEProblem
from workbench.solvers.pde import gp_hm
from workbench.solvers.pde import usolve as US
from workbench.solvers.pde.gp import source_freq_scale
from workbench.solvers.pde.kernels import ToeplitzGrid, kernel_parts

DT = torch.float64


def _kernel(n, h, q=4, seed=0, jitter=1e-6, log_w=None, freq=None, log_ls=None):
    g = torch.Generator().manual_seed(seed)
    t = ToeplitzGrid(n, h)
    log_w = torch.randn(q, generator=g, dtype=DT) * 0.3 - 1 if log_w is None else log_w
    freq = torch.rand(q, generator=g, dtype=DT) * 2 if freq is None else freq
    log_ls = torch.randn(q, generator=g, dtype=DT) * 0.2 if log_ls is None else log_ls
    k, k1, k2 = kernel_parts("stm", t.lags, log_w, freq, log_ls)
    k = torch.cat([k[:1] + jitter, k[1:]])
    return k[t.idx], t.sign * k1[t.idx], k2[t.idx]


def _dense_minimiser(K, D, mask, g, f, wb, wv):
    """argmin_U ½UᵀK⁻¹U + ½wb‖PU − g‖² + ½wv‖DU − f‖² by the dense normal equations."""
    P = torch.eye(K.shape[0], dtype=DT)[mask]
    H = torch.linalg.inv(K) + wb * P.T @ P + wv * D.T @ D
    return torch.linalg.solve(H, wb * P.T @ g + wv * D.T @ f)


def test_exact_u_solve_1d_matches_a_dense_solve_and_lowers_the_loss():
    p = PDEProblem(box=((0.0, 1.0),), exact="sin(6*x)", n_col=(24,), freq_scale=2.0)
    r = gp_hm.solve(p, gp_hm.Params(q=4, max_iter=40, n_checkpoints=2, exact_rounds=1))
    m = r.metrics
    assert m["loss_final"] <= m["loss_adam_final"]
    # rebuild the final kernel from the reported spectrum and solve the normal equations densely
    x = r.extras["x"]
    K, _, K2 = _kernel(
        24,
        x[1] - x[0],
        log_w=torch.tensor(np.log(r.extras["weights_x"])),
        freq=torch.tensor(r.extras["freqs_x"]),
        log_ls=torch.tensor(np.log(r.extras["inv_ls_x"])),
    )
    D = K2 @ torch.linalg.inv(K)
    comp = compile_problem(p)
    mask = torch.zeros(24, dtype=torch.bool)
    mask[0] = mask[-1] = True
    g = torch.tensor(comp.boundary(x)[[0, -1]])
    f = torch.tensor(comp.source(x))
    U = _dense_minimiser(K, D, mask, g, f, 200.0 * m["tau_b"], m["v"])
    np.testing.assert_allclose(r.output, U.numpy(), rtol=0, atol=1e-7 * float(U.abs().max()))


def test_gauss_newton_on_allen_cahn_lowers_the_loss_to_a_stationary_point():
    p = PDEProblem(
        operator="allen_cahn", box=((0.0, 1.0),), exact="sin(4*x)", n_col=(20,), freq_scale=2.0
    )
    r = gp_hm.solve(p, gp_hm.Params(q=3, max_iter=30, n_checkpoints=2, exact_rounds=1))
    m = r.metrics
    assert m["loss_final"] < m["loss_adam_final"]
    assert r.extras["u_solves"][-1]["gn_steps"] >= 2
    assert m["rel_l2_final"] < m["rel_l2_adam_final"]


def test_whitened_fields_and_fast_diagonalisation_match_dense_kronecker_algebra():
    n1, n2 = 9, 8
    K1, K1p, K1pp = _kernel(n1, 0.2, seed=1)
    K2, K2p, K2pp = _kernel(n2, 0.25, seed=2)
    w = US.whiten([K1, K2], [K1p, K2p], [K1pp, K2pp])
    Z = torch.randn(n1, n2, generator=torch.Generator().manual_seed(3), dtype=DT)
    U, d = US.fields(w, Z, {"x", "xx", "y", "yy"})
    Kinv = [torch.linalg.inv(K1), torch.linalg.inv(K2)]
    torch.testing.assert_close(
        U, K1 @ (Kinv[0] @ U @ Kinv[1]) @ K2
    )  # U = L₁ Z L₂ᵀ lies in K's range
    torch.testing.assert_close(Z, US.to_whitened(w, U))
    torch.testing.assert_close(d["xx"], K1pp @ Kinv[0] @ U)
    torch.testing.assert_close(d["yy"], U @ Kinv[1] @ K2pp.T)
    torch.testing.assert_close(d["y"], U @ Kinv[1] @ K2p.T)
    torch.testing.assert_close(d["x"], K1p @ Kinv[0] @ U)
    fd = US.FastDiag2D.build(w)
    I1, I2 = torch.eye(n1, dtype=DT), torch.eye(n2, dtype=DT)
    S = torch.kron(w.S[0], I2) + torch.kron(I1, w.S[1])
    torch.testing.assert_close(fd.apply_sum(Z).reshape(-1), S @ Z.reshape(-1))
    R = torch.randn(n1, n2, dtype=DT, generator=torch.Generator().manual_seed(4))
    X = fd.solve_sum(R, shift=-1.0)
    torch.testing.assert_close((S - torch.eye(n1 * n2, dtype=DT)) @ X.reshape(-1), R.reshape(-1))
    # the Laplacian D₁ ⊗ I + I ⊗ D₂ with D_d = K_d″ K_d⁻¹, solved by fast diagonalisation
    D = torch.kron(K1pp @ Kinv[0], I2) + torch.kron(I1, K2pp @ Kinv[1])
    Fr = torch.randn(n1, n2, dtype=DT, generator=torch.Generator().manual_seed(5))
    Uf = US.fast_diag_poisson(K1pp @ Kinv[0], K2pp @ Kinv[1], Fr)
    np.testing.assert_allclose((D @ Uf.reshape(-1)).numpy(), Fr.reshape(-1).numpy(), atol=1e-8)


def test_minimise_2d_matches_the_dense_normal_equations():
    n1, n2 = 10, 9
    K1, K1p, K1pp = _kernel(n1, 0.2, seed=1)
    K2, K2p, K2pp = _kernel(n2, 0.25, seed=2)
    w = US.whiten([K1, K2], [K1p, K2p], [K1pp, K2pp])
    mask = torch.zeros(n1, n2, dtype=torch.bool)
    mask[0] = mask[-1] = mask[:, 0] = mask[:, -1] = True
    gen = torch.Generator().manual_seed(0)
    f = torch.randn(n1, n2, dtype=DT, generator=gen)
    g = torch.randn(int(mask.sum()), dtype=DT, generator=gen)
    wb, wv = 600.0, 50.0
    loss = US.LossU(
        w, lambda U, d: d["xx"] + d["yy"] - f, {"xx", "yy"}, mask, g, math.sqrt(wb), math.sqrt(wv)
    )
    Z, gn, cg = US.minimise_2d(loss, torch.zeros(n1, n2, dtype=DT), US.FastDiag2D.build(w))
    I1, I2 = torch.eye(n1, dtype=DT), torch.eye(n2, dtype=DT)
    D = torch.kron(K1pp @ torch.linalg.inv(K1), I2) + torch.kron(I1, K2pp @ torch.linalg.inv(K2))
    Ud = _dense_minimiser(
        torch.kron(K1, K2), D, mask.reshape(-1), g, f.reshape(-1), wb, wv
    ).reshape(n1, n2)
    U = US.fields(w, Z, set())[0]
    assert float((U - Ud).norm() / Ud.norm()) < 1e-8
    assert loss.value(Z) <= loss.value(US.to_whitened(w, Ud)) * (1 + 1e-10)


def test_source_frequency_scale_follows_the_source_spectrum():
    p = make_preset("poisson1d_sin100")
    c = compile_problem(p)
    x = np.linspace(0, 2 * np.pi, 400)
    F = source_freq_scale(c.source(x), [x[1] - x[0]])
    assert 100 / (2 * np.pi) < F < 25  # just above the solution's 15.9 cycles per unit
    q = PDEProblem(box=((0.0, 1.0),), exact="sin(3*x) + x**2", n_col=(32,))
    xs = np.linspace(0, 1, 32)
    assert 2.0 <= source_freq_scale(compile_problem(q).source(xs), [xs[1] - xs[0]]) < 8


@pytest.mark.parametrize("exact", ["sin(3*x) + x**2", "exp(-x)*sin(2*x)"])
def test_gp_hm_does_not_stall_on_smooth_user_problems(exact):
    p = PDEProblem(box=((0.0, 1.0),), exact=exact, n_col=(32,))
    r = gp_hm.solve(p, gp_hm.Params(max_iter=500, n_checkpoints=2))
    assert r.metrics["rel_l2_final"] < 2e-3, r.metrics


def test_periodic_exact_solves_are_recorded_and_lower_the_loss():
    p = PDEProblem(box=((0.0, 1.0),), exact="sin(3*x) + x**2", n_col=(24,))
    prm = gp_hm.Params(
        q=6, max_iter=120, exact_every=40, n_checkpoints=2, warm_start="off", every_rounds=1
    )
    r = gp_hm.solve(p, prm)
    solves = r.extras["u_solves"]
    assert [s["step"] for s in solves] == [40, 80, 120]
    assert all(s["loss_after"] <= s["loss_before"] for s in solves)
    assert [s["rounds"] for s in solves] == [1, 1, 2]
    assert r.metrics["rel_l2_final"] < r.metrics["rel_l2_adam_final"]


def test_automatic_exact_steps_on_2d_grids():
    p2 = PDEProblem(
        box=((0.0, 1.0), (0.0, 1.0)), variables=("x", "y"), exact="sin(3*x)*y", n_col=(10, 9)
    )
    r2 = gp_hm.solve(p2, gp_hm.Params(q=3, max_iter=1001, n_checkpoints=2))
    assert [s["step"] for s in r2.extras["u_solves"]] == [1000, 1001]
    # 2-D grids keep their single-sweep periodic steps and no warm start (issue 20: the warm
    # start and the spectrum-based initialisation are automatic in 1-D only)
    assert [s["rounds"] for s in r2.extras["u_solves"]] == [1, 2]
    assert not r2.extras["init_peaks"]


@pytest.mark.parametrize("wb", [1e6, 1e14])
def test_boundary_rows_in_the_preconditioner_keep_cg_converged_at_large_weights(wb, monkeypatch):
    # τ_b after the precision sweep reaches 10⁶–10²⁰: the boundary block dominates the Hessian
    n1, n2 = 12, 11
    K1, K1p, K1pp = _kernel(n1, 0.2, seed=1)
    K2, K2p, K2pp = _kernel(n2, 0.25, seed=2)
    w = US.whiten([K1, K2], [K1p, K2p], [K1pp, K2pp])
    mask = torch.zeros(n1, n2, dtype=torch.bool)
    mask[0] = mask[-1] = mask[:, 0] = mask[:, -1] = True
    gen = torch.Generator().manual_seed(0)
    f = torch.randn(n1, n2, dtype=DT, generator=gen)
    g = torch.randn(int(mask.sum()), dtype=DT, generator=gen)
    wv = 50.0
    loss = US.LossU(
        w, lambda U, d: d["xx"] + d["yy"] - f, {"xx", "yy"}, mask, g, math.sqrt(wb), math.sqrt(wv)
    )
    fd = US.FastDiag2D.build(w)
    rep = US.CGReport()
    Z, _, cg = US.minimise_2d(loss, torch.zeros(n1, n2, dtype=DT), fd, cg_iter=60, report=rep)
    assert rep.converged and rep.cg_rel_residual <= 1e-9
    # the boundary data are met as closely as the dense minimiser meets them
    U = US.fields(w, Z, set())[0]
    I1, I2 = torch.eye(n1, dtype=DT), torch.eye(n2, dtype=DT)
    D = torch.kron(K1pp @ torch.linalg.inv(K1), I2) + torch.kron(I1, K2pp @ torch.linalg.inv(K2))
    Ud = _dense_minimiser(
        torch.kron(K1, K2), D, mask.reshape(-1), g, f.reshape(-1), wb, wv
    ).reshape(n1, n2)
    assert float((U[mask] - g).abs().max()) <= 10 * float((Ud[mask] - g).abs().max()) + 1e-9
    # the diagonal-only fallback (large grids) is still a valid preconditioner: CG converges
    # the diagonal-only fallback (grids too large for the explicit boundary block) needs more
    monkeypatch.setattr(US, "BOUNDARY_WOODBURY_MAX", 0)
    rep_d = US.CGReport()
    US.minimise_2d(loss, torch.zeros(n1, n2, dtype=DT), fd, cg_iter=60, report=rep_d)
    assert rep_d.cg_iter > cg or not rep_d.converged


def test_a_capped_cg_solve_is_reported_not_hidden():
    n1, n2 = 10, 9
    K1, K1p, K1pp = _kernel(n1, 0.2, seed=1)
    K2, K2p, K2pp = _kernel(n2, 0.25, seed=2)
    w = US.whiten([K1, K2], [K1p, K2p], [K1pp, K2pp])
    mask = torch.zeros(n1, n2, dtype=torch.bool)
    mask[0] = mask[-1] = mask[:, 0] = mask[:, -1] = True
    f = torch.randn(n1, n2, dtype=DT, generator=torch.Generator().manual_seed(0))
    g = torch.zeros(int(mask.sum()), dtype=DT)
    loss = US.LossU(w, lambda U, d: d["xx"] + d["yy"] - f, {"xx", "yy"}, mask, g, 1e3, 10.0)
    rep = US.CGReport()
    US.minimise_2d(loss, torch.zeros(n1, n2, dtype=DT), None, cg_iter=2, report=rep)
    assert not rep.converged and rep.cg_rel_residual > 1e-9 and rep.cg_iter >= 2


def test_gp_hm_2d_result_reports_a_capped_finish(monkeypatch):
    # a grid just above the dense limit takes the CG path; with the cap cut to 3 iterations the
    # finish cannot converge, and the Result must say so (issue 20: no silent cap)
    from functools import partial

    monkeypatch.setattr(US, "minimise_2d", partial(US.minimise_2d, cg_iter=3, max_gn=1))
    p = PDEProblem(
        box=((0.0, 1.0), (0.0, 1.0)), variables=("x", "y"), exact="sin(3*x)*y", n_col=(52, 50)
    )
    r = gp_hm.solve(p, gp_hm.Params(q=3, max_iter=3, n_checkpoints=1, exact_rounds=1))
    m = r.metrics
    assert m["finish_converged"] == 0.0 and m["finish_cg_iter"] == 3
    assert m["finish_cg_rel_residual"] > 1e-9 and np.isfinite(m["finish_grad_rel"])
    assert "iteration cap" in r.message


def test_frequency_bound_comes_from_the_data_not_the_exact_solution():
    from workbench.datasets.pde import _default_resolution
    from workbench.physics.pde.frequency import data_frequency_bound

    # the same problem given by its exact solution and by its source + boundary data
    a = PDEProblem(box=((0.0, 2 * np.pi),), exact="sin(20*x) + x", n_col=(200,))
    b = PDEProblem(
        box=((0.0, 2 * np.pi),), source="-400*sin(20*x)", boundary="sin(20*x) + x", n_col=(200,)
    )
    fa = data_frequency_bound(compile_problem(a), a.box, a.n_col)
    fb = data_frequency_bound(compile_problem(b), b.box, b.n_col)
    assert fa == fb and fa[1] == "source" and 20 / (2 * np.pi) < fa[0] < 1.6 * 20 / (2 * np.pi)
    assert _default_resolution(a) == _default_resolution(b)
    # advection moves boundary data: the source vanishes, the boundary data set F
    adv = make_preset("advection2d_beta200", n_col=128)
    F, origin = data_frequency_bound(compile_problem(adv), adv.box, adv.n_col)
    assert origin == "boundary" and 200 / (2 * np.pi) < F <= 1 / (2 * (1 / 127))
    # no preset with an exact solution carries a frequency scale set from that solution
    from workbench.datasets.pde import PRESETS

    assert all("freq_scale" not in fl for _, fl in PRESETS.values() if "exact" in fl)
