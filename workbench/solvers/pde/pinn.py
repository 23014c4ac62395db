"""Physics-informed neural network (MLP, uniform collocation, Adam then optional L-BFGS).

Loss J(θ) = mean_S r(x; θ)² + γ · mean_{S_b} (u − g)², residuals by autograd. ``pinn_fourier``
reuses this module with a random-Fourier-feature input layer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from workbench.device import resolve_device, versions
from workbench.errors import InputError
from workbench.nets.pde_mlp import MLP
from workbench.physics.pde.compiled import boundary_mask, compile_problem, validate
from workbench.physics.pde.metrics import rel_l2, truth_on_test
from workbench.physics.pde.operators import NEEDS, apply_operator
from workbench.problems import PDEProblem
from workbench.progress import Progress, append_history, ensure
from workbench.registry import SolverSpec, param
from workbench.result import Result


@dataclass(frozen=True)
class Params:
    width: int = param(64, "hidden units per layer", min=4, max=1024)
    depth: int = param(4, "hidden layers", min=1, max=12)
    activation: str = param("tanh", "activation", choices=("tanh", "sin"))
    max_iter: int = param(2000, "Adam steps", min=1, max=10_000_000)
    lr: float = param(1e-3, "Adam learning rate", min=1e-6, max=1.0, log=True)
    lbfgs_iter: int = param(
        0, "L-BFGS iterations after Adam (strong Wolfe); 0 = none", min=0, max=100_000
    )
    gamma: float = param(100.0, "boundary loss weight γ", min=0.0, log=True)
    sampler: str = param(
        "grid",
        "collocation: grid (the problem's equispaced nodes) or uniform (pseudo-random, fixed)",
        choices=("grid", "uniform"),
    )
    n_col: int = param(0, "collocation points per dimension (0 = the problem's)", min=0, max=4096)
    dtype: str = param(
        "float32", "network precision", choices=("float32", "float64"), advanced=True
    )
    n_checkpoints: int = param(
        50, "test-grid evaluations during training", min=1, max=10_000, advanced=True
    )
    seed: int = param(0, "initialisation and sampling seed")
    device: str = param("auto", "auto, cpu or cuda", advanced=True)


@dataclass(frozen=True)
class FourierParams(Params):
    n_features: int = param(64, "random Fourier features (cos and sin of each)", min=1, max=4096)
    sigma: float = param(
        0.0,
        "std of the feature frequencies B ~ N(0, σ²), cycles per unit (0 = the problem's frequency scale)",
        min=0.0,
    )


def _derivs(net, X: torch.Tensor, need: set[str]) -> tuple[torch.Tensor, dict]:
    X = X.detach().requires_grad_(True)
    u = net(X)
    d: dict[str, torch.Tensor] = {}
    if not need:
        return u, d
    g = torch.autograd.grad(u.sum(), X, create_graph=True)[0]
    names = ("x", "y")
    for j in range(X.shape[1]):
        d[names[j]] = g[:, j]
        if names[j] * 2 in need:
            d[names[j] * 2] = torch.autograd.grad(g[:, j].sum(), X, create_graph=True)[0][:, j]
    return u, d


def solve_pinn(
    problem: PDEProblem, params: Params, progress: Progress | None, fourier: bool
) -> Result:
    progress = ensure(progress)
    t0 = time.perf_counter()
    validate(problem)
    comp = compile_problem(problem)
    dev = resolve_device(params.device)
    dt = torch.float64 if params.dtype == "float64" else torch.float32
    dim = problem.dim
    gen = torch.Generator(device="cpu").manual_seed(int(params.seed))
    rng = np.random.default_rng(params.seed)
    ns = [params.n_col] * dim if params.n_col else list(problem.n_col)
    axes = [np.linspace(lo, hi, n) for (lo, hi), n in zip(problem.box, ns, strict=False)]
    mesh = comp.mesh(axes)
    mask = boundary_mask(tuple(ns), problem.bc)
    if params.sampler == "grid":
        Xc = np.stack([m.ravel() for m in mesh], -1)
    else:
        m = int(np.prod(ns))
        Xc = np.stack([rng.uniform(lo, hi, m) for lo, hi in problem.box], -1)
    Xb = np.stack([m[mask] for m in mesh], -1)
    fc = comp.source(*Xc.T)
    gb = comp.boundary(*Xb.T)
    need = {n for n in NEEDS[problem.operator] if dim == 2 or "y" not in n}
    B = None
    if fourier:
        sigma = params.sigma or (problem.freq_scale or 1.0 / (2 * min(a[1] - a[0] for a in axes)))
        B = torch.randn(params.n_features, dim, generator=gen, dtype=torch.float64) * sigma
    net = MLP(problem.box, params.width, params.depth, params.activation, gen, dt, B).to(dev)
    Xc_t = torch.tensor(Xc, dtype=dt, device=dev)
    Xb_t = torch.tensor(Xb, dtype=dt, device=dev)
    fc_t = torch.tensor(fc, dtype=dt, device=dev)
    gb_t = torch.tensor(gb, dtype=dt, device=dev)
    grids = [Xc_t[:, j] for j in range(dim)]
    coeffs = comp.coeffs
    gamma = params.gamma
    true = truth_on_test(problem)
    t_axes = comp.test_axes()
    Xt = torch.tensor(np.stack([m.ravel() for m in comp.mesh(t_axes)], -1), dtype=dt, device=dev)
    fnorm = float(np.sqrt(np.mean(fc**2))) or 1.0

    def losses():
        u, d = _derivs(net, Xc_t, need)
        r = apply_operator(problem.operator, u, d, coeffs, grids) - fc_t
        lr_ = (r * r).mean()
        lb = ((net(Xb_t) - gb_t) ** 2).mean()
        return lr_ + gamma * lb, lr_, lb

    def predict(X):
        with torch.no_grad():
            return (
                torch.cat([net(X[i : i + 20000]) for i in range(0, len(X), 20000)])
                .double()
                .cpu()
                .numpy()
            )

    total = params.max_iter + params.lbfgs_iter
    every = max(1, total // max(1, params.n_checkpoints))
    hist: dict[str, list[float]] = {
        k: [] for k in ("step", "loss", "loss_residual", "loss_boundary", "rel_l2", "time")
    }
    best = (float("inf"), 0)
    status, message = "max_iter", ""

    def log(step, loss, lr_, lb):
        nonlocal best
        err = rel_l2(predict(Xt).reshape(true.shape), true)
        if err < best[0]:
            best = (err, step)
        append_history(
            hist,
            step=step,
            loss=loss,
            loss_residual=lr_,
            loss_boundary=lb,
            rel_l2=err,
            time=time.perf_counter() - t0,
        )
        return err

    opt = torch.optim.Adam(net.parameters(), lr=params.lr)
    step = 0
    cancelled = False
    for step in range(1, params.max_iter + 1):
        opt.zero_grad(set_to_none=True)
        loss, lr_, lb = losses()
        if not torch.isfinite(loss):
            status, message = "failed", f"loss became non-finite at step {step}"
            break
        loss.backward()
        opt.step()
        vals = (float(loss.detach()), float(lr_.detach()), float(lb.detach()))
        if step % every == 0 or step == 1 or step == total:
            err = log(step, *vals)
            progress(step, total, loss=vals[0], rel_l2=err)
        else:
            progress(step, total, loss=vals[0])
        if progress.cancelled:
            status, message, cancelled = "cancelled", f"cancelled at step {step}", True
            break
    lbfgs_note = ""
    if params.lbfgs_iter and not cancelled and status != "failed":
        lb_opt = torch.optim.LBFGS(
            net.parameters(),
            lr=1.0,
            max_iter=1,
            history_size=50,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-9,
            tolerance_change=1e-12,
        )

        def closure():
            lb_opt.zero_grad(set_to_none=True)
            loss, _, _ = losses()
            loss.backward()
            return loss

        prev = None
        for k in range(1, params.lbfgs_iter + 1):
            step = params.max_iter + k
            lb_opt.step(closure)
            with torch.enable_grad():
                loss_v, lr_, lb = losses()
            vals = (float(loss_v.detach()), float(lr_.detach()), float(lb.detach()))
            if step % every == 0 or step == total:
                err = log(step, *vals)
                progress(step, total, loss=vals[0], rel_l2=err)
            else:
                progress(step, total, loss=vals[0])
            if not np.isfinite(vals[0]):
                status, message = "failed", f"L-BFGS diverged at iteration {k}"
                break
            if progress.cancelled:
                status, message = "cancelled", f"cancelled at step {step}"
                break
            if prev is not None and abs(prev - vals[0]) <= 1e-12 * max(1.0, abs(vals[0])):
                lbfgs_note = f"L-BFGS stopped early after {k} of {params.lbfgs_iter} iterations: loss change below 1e-12"
                break
            prev = vals[0]
    u_test = predict(Xt).reshape(true.shape)
    Xg = torch.tensor(np.stack([m.ravel() for m in mesh], -1), dtype=dt, device=dev)
    u_grid = predict(Xg).reshape(tuple(ns))
    with torch.enable_grad():
        ug, dg = _derivs(net, Xg, need)
        res = apply_operator(
            problem.operator, ug, dg, coeffs, [Xg[:, j] for j in range(dim)]
        ) - torch.tensor(comp.source(*[m.ravel() for m in mesh]), dtype=dt, device=dev)
    res_grid = res.detach().double().cpu().numpy().reshape(tuple(ns))
    final = rel_l2(u_test, true)
    if final < best[0]:
        best = (final, step)
    wall = time.perf_counter() - t0
    extras = {
        "x": axes[0],
        "u_test": u_test,
        "residual_grid": res_grid,
        "n_col": [int(n) for n in ns],
    }
    if dim == 2:
        extras["y"] = axes[1]
    if lbfgs_note:
        extras["lbfgs_note"] = lbfgs_note
    if B is not None:
        extras["fourier_sigma"] = float(sigma)
    metrics = {
        "rel_l2_final": final,
        "rel_l2_best": float(best[0]),
        "rel_l2_best_step": float(best[1]),
        "residual_rms_rel": float(np.sqrt(np.mean(res_grid**2)) / fnorm),
        "wall_s": wall,
        "s_per_step": wall / max(1, step),
    }
    return Result(
        output=u_grid,
        kind="field",
        status=status,
        iterations=int(step),
        metrics=metrics,
        history=hist,
        extras=extras,
        meta={"seed": params.seed, "device": dev, "wall_s": wall, "versions": versions()},
        message=message or lbfgs_note or f"{step} optimisation steps",
    )


def solve(problem: PDEProblem, params: Params, progress: Progress | None = None) -> Result:
    """Train an MLP PINN on the problem's collocation points; see :func:`solve_pinn`."""
    if isinstance(params, FourierParams):
        raise InputError("use the pinn_fourier solver for Fourier features")
    return solve_pinn(problem, params, progress, fourier=False)


SPEC = SolverSpec(
    name="pinn",
    domain="pde",
    title="PINN (MLP)",
    Params=Params,
    solve=solve,
    description="Physics-informed neural network: an MLP (tanh or sin) trained on the squared PDE residual at fixed collocation points plus γ times the boundary misfit, Adam then optional L-BFGS.",
    reference="M. Raissi, P. Perdikaris, G. E. Karniadakis, J. Comput. Phys. 378 (2019) 686–707.",
)
