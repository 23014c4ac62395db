"""RGNP inverse model (GICNet): scattered noisy values of u → the posterior over the parameters.

The grid-invariant network β of the shipped checkpoint maps the observations (any number, any
placement) and the known inputs w to q(z | u, w) = N(m, diag s² + L Lᵀ) in one forward pass, no
retraining. The field it implies is the forward network's mean at posterior samples of z, with a
band from the spread of those fields and α's own variance.

Observations come from the problem (``observations`` in a JSON problem file, points clicked on the
page, or a CSV of x, u); a sample without observations gets ``n_obs`` random off-grid points of
its reference solution with noise σ_y, drawn from ``seed``. A problem without unknown parameters
is a data-assimilation problem: a forward model is trained on it with the data term.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from workbench.device import versions
from workbench.errors import InputError
from workbench.problems import PDEProblem
from workbench.progress import Progress, ensure
from workbench.registry import SolverSpec, param
from workbench.result import Result
from workbench.solvers.pde.rgnp import (
    field_on,
    find_checkpoint,
    param_row,
    train_on_problem,
    truth,
)


@dataclass(frozen=True)
class Params:
    n_obs: int = param(30, "simulated observations when the problem has none", min=1, max=100_000)
    sigma_y: float = param(0.05, "noise std of simulated observations", min=0.0, max=10.0)
    n_samples: int = param(200, "posterior samples of z", min=1, max=100_000)
    n_points: int = param(201, "output points (equispaced, ends included)", min=3, max=100_000)
    max_iter: int = param(
        1500, "training steps (problems without unknown parameters)", min=1, max=1_000_000
    )
    batch: int = param(8, "draws per step (training)", min=1, max=1024, advanced=True)
    points: int = param(64, "random collocation points per draw (training)", min=4, max=4096)
    lr: float = param(3e-3, "Adam learning rate (training)", min=1e-6, max=1.0, log=True)
    seed: int = param(0, "observation, sample and initialisation seed")


def observations(problem: PDEProblem, fam, P: np.ndarray, params: Params, rng):
    """The problem's observations, or simulated ones: random off-grid points, σ_y noise."""
    if problem.obs_points is not None and len(problem.obs_points):
        x = np.asarray(problem.obs_points, float)[:, 0]
        y = np.asarray(problem.obs_values, float)
        lo, hi = fam.box[0]
        if np.any(x < lo) or np.any(x > hi):
            raise InputError(f"observation points must lie in the domain [{lo:g}, {hi:g}]")
        return x, y, float(problem.obs_sigma), False
    lo, hi = fam.box[0]
    x = np.sort(rng.uniform(lo, hi, params.n_obs))
    u = truth(problem, fam, P, x)
    return x, u + params.sigma_y * rng.standard_normal(len(x)), params.sigma_y, True


def solve(problem: PDEProblem, params: Params, progress: Progress | None = None) -> Result:
    """Posterior over the parameters and the implied field (see the module docstring)."""
    import torch

    from workbench.nets import pde_rgnp as R
    from workbench.physics.pde.compiled import validate

    progress = ensure(progress)
    t0 = time.perf_counter()
    validate(problem)
    fam = R.family_of(problem)
    rng = np.random.default_rng(params.seed)
    if not fam.z_names:
        # nothing to infer: assimilate the observations into a forward model of this PDE
        P = np.zeros(0)
        xo, yo, sy, simulated = observations(problem, fam, P, params, rng)
        prob = problem
        if simulated:
            from dataclasses import replace

            prob = replace(problem, obs_points=xo[:, None], obs_values=yo, obs_sigma=sy)
        model, run = train_on_problem(prob, params, progress, use_data=True)
        x = np.linspace(model.lo, model.hi, params.n_points)
        mean, std = field_on(model, x, P)
        status = run["status"] if run["status"] in ("cancelled", "failed") else "max_iter"
        wall = time.perf_counter() - t0
        return Result(
            output=mean,
            kind="field",
            status=status,
            iterations=int(run["step"]),
            metrics={"wall_s": wall},
            history={k: list(v) for k, v in run["history"].items()},
            extras={"x": x, "std": std, "obs_x": xo, "obs_u": yo, "z_names": np.array([], str)},
            meta={"seed": params.seed, "device": "cpu", "wall_s": wall, "versions": versions()},
            message="no unknown parameters: the observations were assimilated into a forward model",
        )
    model = find_checkpoint(fam)
    if model is None:
        raise InputError(
            "no trained RGNP for this parametric family; train one with 'workbench train rgnp --problem NAME'"
        )
    nz = model.nz
    W = param_row(problem, model.fam.w_names)
    has_obs = problem.obs_points is not None and len(problem.obs_points) > 0
    # the problem's own parameter values are the truth only when we simulate the data from them
    Ptrue = None if has_obs else param_row(problem, model.fam.names)
    xo, yo, sy, simulated = observations(problem, model.fam, Ptrue, params, rng)
    tq = time.perf_counter()
    zm, zc = R.inverse_query(model, xo, yo, W)
    query_ms = 1e3 * (time.perf_counter() - tq)
    progress(1, 1)
    # posterior samples and the fields they imply
    Lc = np.linalg.cholesky(zc + 1e-12 * np.eye(nz))
    zs = zm + rng.standard_normal((params.n_samples, nz)) @ Lc.T
    x = np.linspace(model.lo, model.hi, params.n_points)
    Ps = np.concatenate([zs, np.broadcast_to(W, (len(zs), len(W)))], 1)
    with torch.no_grad():
        X = torch.tensor(np.broadcast_to(x, (len(zs), len(x))).copy(), dtype=torch.float32)
        fm, fs, _ = model.field(X, torch.tensor(Ps, dtype=torch.float32))
    fm, fs = fm.double().numpy(), fs.double().numpy()
    mean = fm.mean(0)
    std = np.sqrt(fm.var(0) + (fs**2).mean(0))  # law of total variance
    zsd = np.sqrt(np.diag(zc))
    metrics = {"query_ms": query_ms, "n_obs": float(len(xo))}
    extras_truth = {}
    if Ptrue is not None:
        ztrue = Ptrue[:nz]
        metrics["nse_z"] = float(np.sum((zm - ztrue) ** 2) / max(np.sum(ztrue**2), 1e-300))
        metrics["coverage_z_2sd"] = float(np.mean(np.abs(zm - ztrue) <= 2 * zsd))
        extras_truth["z_true"] = ztrue
        ref = truth(problem, model.fam, Ptrue, x)
        metrics["nse_u"] = float(np.sum((mean - ref) ** 2) / max(np.sum(ref**2), 1e-300))
        metrics["coverage_u_2sd"] = float(np.mean((np.abs(mean - ref) <= 2 * std)[1:-1]))
    wall = time.perf_counter() - t0
    metrics["wall_s"] = wall
    return Result(
        output=mean,
        kind="field",
        status="converged",
        iterations=1,
        metrics=metrics,
        history={},
        extras={
            "x": x,
            "std": std,
            "z_names": np.array(model.fam.z_names, dtype=str),
            "z_mean": zm,
            "z_cov": zc,
            "z_samples": zs,
            **extras_truth,
            "w": W,
            "obs_x": xo,
            "obs_u": yo,
            "obs_sigma": np.array(sy),
            "obs_simulated": np.array(simulated),
        },
        meta={"seed": params.seed, "device": "cpu", "wall_s": wall, "versions": versions()},
        message=f"q(z | {len(xo)} points) in {query_ms:.1f} ms"
        + (" (simulated observations)" if simulated else ""),
    )


SPEC = SolverSpec(
    name="rgnp_inverse",
    domain="pde",
    title="RGNP inverse (GICNet)",
    Params=Params,
    solve=solve,
    description=(
        "Grid-invariant convolutional network of the random-grid neural process: lifts scattered "
        "noisy values of u, kernel-interpolates them to a latent grid with learned length-scales, "
        "convolves and returns the posterior over the PDE parameters (mean, covariance, samples) "
        "and the solution field it implies with its band; invariant to the number and placement "
        "of the points, no retraining per query."
    ),
    reference=(
        "A. Vadeboncoeur, I. Kazlauskaite, Y. Papandreou, F. Cirak, M. Girolami, Ö. D. Akyildiz, "
        "Random Grid Neural Processes for Parametric Partial Differential Equations, ICML 2023."
    ),
    paper=True,
    train="workbench.train.pde_rgnp:main",
)
