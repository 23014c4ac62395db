"""RGNP forward model: the solution field of a parametric PDE with its uncertainty.

With a shipped checkpoint for the problem's family (``workbench train rgnp``), the solve is one
query of the forward network α at the problem's parameters: the mean field μ, the pointwise
standard deviation √(D²(σ² + ‖c‖²)) and the points. Any other 1-D problem (``mode=train``, or no
matching checkpoint) trains a fresh α on that problem alone with the same physics-only ELBO on
fresh random grids, plus the data term when the problem carries observations.
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


@dataclass(frozen=True)
class Params:
    mode: str = param(
        "auto",
        "auto: the shipped checkpoint of the problem's family when there is one, else train on this problem; train: always train",
        choices=("auto", "train"),
    )
    n_points: int = param(201, "output points (equispaced, ends included)", min=3, max=100_000)
    max_iter: int = param(1500, "training steps (train mode)", min=1, max=1_000_000)
    batch: int = param(8, "draws per step (train mode)", min=1, max=1024, advanced=True)
    points: int = param(64, "random collocation points per draw (train mode)", min=4, max=4096)
    lr: float = param(3e-3, "Adam learning rate (train mode)", min=1e-6, max=1.0, log=True)
    seed: int = param(0, "initialisation, grid and sample seed")


# --------------------------------------------------------------------------------------------
# shared with rgnp_inverse


def find_checkpoint(fam, fixed_grid: bool = False):
    """The shipped checkpoint whose family matches, or None."""
    from workbench.nets import pde_rgnp as R

    if not R.WEIGHTS_DIR.exists():
        return None
    for path in sorted(R.WEIGHTS_DIR.glob("rgnp_*.pt")):
        if path.name.endswith(".state.pt") or path.stem.endswith("_fixed") != fixed_grid:
            continue
        model, _ = R.load(path)
        if model.fam.matches(fam):
            return model
    return None


def param_row(problem: PDEProblem, names) -> np.ndarray:
    missing = [n for n in names if n not in problem.coefficients]
    if missing:
        raise InputError(f"the problem gives no value for parameter(s) {', '.join(missing)}")
    return np.array([float(problem.coefficients[n]) for n in names], float)


def single_family(problem: PDEProblem):
    """The problem alone as a family without parameters (every coefficient fixed)."""
    from workbench.nets import pde_rgnp as R

    fam = R.family_of(problem)
    return R.Family(
        operator=fam.operator,
        box=fam.box,
        source=fam.source,
        boundary=fam.boundary,
        fixed={k: float(v) for k, v in problem.coefficients.items()},
    )


def train_on_problem(problem: PDEProblem, params, progress: Progress, use_data: bool):
    """Train α on one PDE (no parameters) for ``params.max_iter`` steps; returns (model, run)."""
    import torch

    from workbench.nets import pde_rgnp as R

    fam = single_family(problem)
    lo, hi = fam.box[0]
    fns = R.FamilyFunctions(fam)
    xs = np.linspace(lo, hi, 257)[None]
    f_rms = float(np.sqrt(np.mean(fns.source(xs, np.zeros((1, 0))) ** 2)))
    # frequencies: cover the problem's frequency scale (cycles per unit x → per unit s)
    f_max = max(2.0, float(problem.freq_scale or 1.0) * (hi - lo) / 2)
    cfg = R.Config(eps_r=1e-2 * max(1.0, f_rms), f_max=f_max, n_points=params.points)
    model = R.RGNP(fam, cfg, seed=params.seed)
    data = None
    if use_data and problem.obs_points is not None and len(problem.obs_points):
        xo = torch.tensor(np.asarray(problem.obs_points, float)[:, 0], dtype=torch.float32)
        yo = torch.tensor(np.asarray(problem.obs_values, float), dtype=torch.float32)
        sy = max(float(problem.obs_sigma), 1e-3)

        def data(P, gen):
            return xo.expand(len(P), -1), yo.expand(len(P), -1), sy, 1.0

    run = R.train(
        model,
        steps=params.max_iter,
        batch=params.batch,
        lr=params.lr,
        seed=params.seed,
        fixed_params=torch.zeros(1, 0),
        data=data,
        progress=progress,
    )
    return model, run


def field_on(model, x: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch

    with torch.no_grad():
        m, s, _ = model.field(
            torch.tensor(x, dtype=torch.float32)[None],
            torch.tensor(np.atleast_2d(P), dtype=torch.float32).reshape(1, -1),
        )
    return m[0].double().numpy(), s[0].double().numpy()


def truth(problem: PDEProblem, fam, P: np.ndarray, x: np.ndarray) -> np.ndarray | None:
    """The exact solution at x, or the 201-node reference interpolated there."""
    from workbench.nets import pde_rgnp as R
    from workbench.physics.pde.compiled import compile_problem

    comp = compile_problem(problem)
    if comp.exact is not None:
        return comp.exact(x)
    xr, U = R.reference_fields(fam, np.atleast_2d(P))
    return np.interp(x, xr, U[0])


# --------------------------------------------------------------------------------------------


def solve(problem: PDEProblem, params: Params, progress: Progress | None = None) -> Result:
    """Mean field, pointwise std and points of the RGNP forward model (see the module docstring)."""
    import torch

    from workbench.nets import pde_rgnp as R
    from workbench.physics.pde.compiled import validate
    from workbench.physics.pde.metrics import rel_l2

    progress = ensure(progress)
    t0 = time.perf_counter()
    validate(problem)
    fam = R.family_of(problem)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
    if params.mode == "auto" and fam.names:
        progress.note("loading the trained model")
    model = find_checkpoint(fam) if params.mode == "auto" and fam.names else None
    hist: dict[str, list[float]] = {}
    status, message, its = "converged", "", 1
    if model is not None:
        P = param_row(problem, model.fam.names)
        progress(1, 1)
        message = "query of the shipped checkpoint"
        source = "checkpoint"
    else:
        model, run = train_on_problem(problem, params, progress, use_data=True)
        P = np.zeros(0)
        status = "cancelled" if run["status"] == "cancelled" else run["status"]
        if status in ("time_limit",):
            status = "max_iter"
        its = int(run["step"])
        hist = {k: list(v) for k, v in run["history"].items()}
        message = f"{its} training steps on this problem"
        source = "trained"
    lo, hi = model.lo, model.hi
    x = np.linspace(lo, hi, params.n_points)
    mean, std = field_on(model, x, P)
    xt = np.linspace(lo, hi, 300)
    mt, st = field_on(model, xt, P)
    metrics: dict[str, float] = {}
    ref = truth(problem, model.fam, P, xt)
    if ref is not None and np.all(np.isfinite(mt)):
        nse = float(np.sum((mt - ref) ** 2) / max(np.sum(ref**2), 1e-300))
        inside = np.abs(mt - ref)[1:-1] <= 2 * st[1:-1]
        metrics.update(nse_u=nse, rel_l2=rel_l2(mt, ref), coverage_2sd=float(inside.mean()))
    if not np.all(np.isfinite(mean)):
        status, message = "failed", "the network produced non-finite values"
    wall = time.perf_counter() - t0
    metrics["wall_s"] = wall
    return Result(
        output=mean,
        kind="field",
        status=status,
        iterations=its,
        metrics=metrics,
        history=hist,
        extras={
            "x": x,
            "std": std,
            "u_test": mt,
            "std_test": st,
            "params": P,
            "param_names": np.array(model.fam.names, dtype=str),
            "source": source,
        },
        meta={"seed": params.seed, "device": "cpu", "wall_s": wall, "versions": versions()},
        message=message,
    )


SPEC = SolverSpec(
    name="rgnp",
    domain="pde",
    title="RGNP forward (random-grid neural process)",
    Params=Params,
    solve=solve,
    description=(
        "Random-grid neural process: a Fourier-feature MLP on (x, z, w) giving a Gaussian random "
        "field (mean, variance, rank-2 factors) with hard Dirichlet conditions, trained "
        "physics-only on fresh random grids with the ELBO of Vadeboncoeur et al. Returns the mean "
        "field with its pointwise standard deviation; parametric samples use the shipped "
        "checkpoint, other 1-D problems train a model on the spot."
    ),
    reference=(
        "A. Vadeboncoeur, I. Kazlauskaite, Y. Papandreou, F. Cirak, M. Girolami, Ö. D. Akyildiz, "
        "Random Grid Neural Processes for Parametric Partial Differential Equations, ICML 2023."
    ),
    paper=True,
    train="workbench.train.pde_rgnp:main",
)
