"""PDE presets (GP-HM benchmark table, adaptive-sampling peaks, parametric problems), the JSON
loader for user problems, and the ground-truth metrics shared by every PDE solver."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from workbench.errors import InputError
from workbench.physics.pde.metrics import evaluate, prediction_on_test  # noqa: F401  (the domain's metrics)
from workbench.problems import PDEProblem
from workbench.registry import DomainSpec, Sample, param

TWO_PI = 2 * math.pi
PEAK1 = "exp(-1000*((x-0.5)**2 + (y-0.5)**2))"
PEAK2 = "exp(-1000*((x+0.5)**2 + (y+0.5)**2))"


@dataclass(frozen=True)
class Options:
    n_col: int = param(
        0,
        "collocation points per dimension for GP-HM and PINNs (0 = the preset's)",
        min=0,
        max=4096,
    )


# name -> (description, fields). The presets with an exact solution carry no freq_scale: the
# paper's F was set just above the true frequencies, i.e. from the answer (issue 20); the solvers
# derive it from the source term or the grid like for any user problem
# (workbench.physics.pde.frequency). The parametric presets keep theirs (no exact solution).
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "poisson1d_sin10": (
        "Cheap check: u_xx = f, u = sin(10x) on [0, 2π] (ten times lower frequency than the paper's case), 40 points",
        dict(operator="poisson", box=((0, TWO_PI),), exact="sin(10*x)", n_col=(40,)),
    ),
    "poisson1d_sin100": (
        "GP-HM table: u_xx = f, u = sin(100x) on [0, 2π] (100/2π ≈ 15.9 cycles per unit), 400 points",
        dict(
            operator="poisson",
            box=((0, TWO_PI),),
            exact="sin(100*x)",
            n_col=(400,),
        ),
    ),
    "poisson1d_sin6cos100": (
        "GP-HM table: u_xx = f, u = sin(6x)cos(100x) on [0, 2π], 400 points",
        dict(
            operator="poisson",
            box=((0, TWO_PI),),
            exact="sin(6*x)*cos(100*x)",
            n_col=(400,),
        ),
    ),
    "poisson1d_xsin200": (
        "GP-HM table: u_xx = f, u = x·sin(200x) on [0, 2π], 900 points",
        dict(
            operator="poisson",
            box=((0, TWO_PI),),
            exact="x*sin(200*x)",
            n_col=(900,),
        ),
    ),
    "poisson1d_mix": (
        "GP-HM table: u_xx = f, u = sin x + 0.1 sin 20x + 0.05 sin 100x on [0, 1] (the authors' code "
        "uses sin(100x); their README says cos), 900 points",
        dict(
            operator="poisson",
            box=((0, 1),),
            exact="sin(x) + 0.1*sin(20*x) + 0.05*sin(100*x)",
            n_col=(900,),
        ),
    ),
    "poisson1d_sin500_quad": (
        "GP-HM table: u_xx = f, u = sin(500x) − 2(x − 0.5)² on [0, 1], 400 points",
        dict(
            operator="poisson",
            box=((0, 1),),
            exact="sin(500*x) - 2*(x - 0.5)**2",
            n_col=(400,),
        ),
    ),
    "allencahn1d_sin100": (
        "GP-HM table: u_xx + u(u² − 1) = f, u = sin(100x) on [0, 2π], 400 points",
        dict(
            operator="allen_cahn",
            box=((0, TWO_PI),),
            exact="sin(100*x)",
            n_col=(400,),
        ),
    ),
    "allencahn1d_sin6cos100": (
        "GP-HM table: u_xx + u(u² − 1) = f, u = sin(6x)cos(100x) on [0, 2π], 400 points",
        dict(
            operator="allen_cahn",
            box=((0, TWO_PI),),
            exact="sin(6*x)*cos(100*x)",
            n_col=(400,),
        ),
    ),
    "poisson2d_sin100": (
        "GP-HM table: Δu = f, u = sin(100x)sin(100y) on [0, 2π]², 200² points (paper: 400²)",
        dict(
            operator="poisson",
            box=((0, TWO_PI), (0, TWO_PI)),
            variables=("x", "y"),
            exact="sin(100*x)*sin(100*y)",
            n_col=(200, 200),
        ),
    ),
    "poisson2d_sin6cos20": (
        "GP-HM table: Δu = f, u = sin 6x cos 20x + sin 6y cos 20y on [0, 2π]², 128² points (paper: 200²)",
        dict(
            operator="poisson",
            box=((0, TWO_PI), (0, TWO_PI)),
            variables=("x", "y"),
            exact="sin(6*x)*cos(20*x) + sin(6*y)*cos(20*y)",
            n_col=(128, 128),
        ),
    ),
    "allencahn2d_mix": (
        "GP-HM table: Δu + u(u² − 1) = f, u = (sin x + 0.1 sin 20x + cos 100x)(same in y) on [0, 1]², 200² points (paper: 400²)",
        dict(
            operator="allen_cahn",
            box=((0, 1), (0, 1)),
            variables=("x", "y"),
            exact="(sin(x) + 0.1*sin(20*x) + cos(100*x))*(sin(y) + 0.1*sin(20*y) + cos(100*y))",
            n_col=(200, 200),
        ),
    ),
    "advection2d_beta200": (
        "GP-HM table: β u_x + u_y = 0 with β = 200 (y plays time), u = sin(x − βy) on [0, 1]², 200² points",
        dict(
            operator="advection",
            box=((0, 1), (0, 1)),
            variables=("x", "y"),
            exact="sin(x - beta*y)",
            coefficients={"beta": 200.0},
            n_col=(200, 200),
            meta={"llk_weight": 500.0},
        ),
    ),
    "peak2d_single": (
        "Adaptive sampling (DAS/AAS): −Δu = s on [−1, 1]², u = exp(−1000[(x − 0.5)² + (y − 0.5)²]) "
        "(posed here as Δu = f with f = −s)",
        dict(
            operator="poisson",
            box=((-1, 1), (-1, 1)),
            variables=("x", "y"),
            exact=PEAK1,
            n_col=(64, 64),
        ),
    ),
    "peak2d_double": (
        "Adaptive sampling (DAS/AAS): Δu − ∇·[u ∇(x² + y²)] = s on [−1, 1]², two peaks at ±(0.5, 0.5)",
        dict(
            operator="drift_poisson",
            box=((-1, 1), (-1, 1)),
            variables=("x", "y"),
            exact=f"{PEAK1} + {PEAK2}",
            n_col=(64, 64),
        ),
    ),
    "nlpoisson1d_param": (
        "RGNP: (κ u′)′ + w = 0 on [−1, 1], u(±1) = 0, κ = softplus(u Σ z_n T_n(x)) + 0.1; one draw of "
        "z ~ U[−1, 1]⁵, w ~ U[1, 2] (priors stored for parametric solvers)",
        dict(
            operator="nl_poisson",
            box=((-1, 1),),
            source="-w",
            boundary="0",
            n_col=(64,),
            freq_scale=2.0,
            coefficients={"z0": 0.6, "z1": -0.4, "z2": 0.3, "z3": -0.2, "z4": 0.5, "w": 1.5},
            priors={**{f"z{k}": [-1.0, 1.0] for k in range(5)}, "w": [1.0, 2.0]},
        ),
    ),
    "burgers_param": (
        "RGNP: u_t + z1 u u_x − z0 u_xx = 0 on [0, 1]² (x, t), u(x, 0) = sin(2wπx) sin(πx), u = 0 at x = 0, 1",
        dict(
            operator="burgers",
            box=((0, 1), (0, 1)),
            variables=("x", "t"),
            bc="initial_boundary",
            source="0",
            boundary="sin(2*w*pi*x)*sin(pi*x)",
            n_col=(64, 64),
            freq_scale=4.0,
            coefficients={"z0": 0.05, "z1": 0.75, "w": 1.0},
            priors={"z0": [0.01, 0.1], "z1": [0.5, 1.0], "w": [0.5, 2.0]},
        ),
    ),
}


def make_preset(name: str, n_col: int = 0) -> PDEProblem:
    desc, fields = PRESETS[name]
    fields = dict(fields)
    meta = {"description": desc, "preset": name, **fields.pop("meta", {})}
    dim = len(fields["box"])
    if fields.get("variables") is None:
        fields["variables"] = ("x",)
    if n_col:
        fields["n_col"] = (int(n_col),) * dim
    return PDEProblem(name=name, meta=meta, **fields)


ALLOWED_KEYS = {
    "operator",
    "domain",
    "exact",
    "source",
    "boundary",
    "params",
    "name",
    "variables",
    "bc",
    "n_col",
    "freq_scale",
    "observations",
    "priors",
    "description",
}


def _box(domain: Any) -> tuple:
    msg = "domain must be a box: a list of [lo, hi] pairs, one per dimension (1-D or 2-D); other geometries are not supported"
    if not isinstance(domain, (list, tuple)) or not domain:
        raise InputError(msg)
    if len(domain) == 2 and all(isinstance(v, (int, float)) for v in domain):
        domain = [domain]
    out = []
    for iv in domain:
        if (
            not isinstance(iv, (list, tuple))
            or len(iv) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in iv)
        ):
            raise InputError(msg)
        lo, hi = float(iv[0]), float(iv[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise InputError(f"domain interval [{lo}, {hi}] must be finite with lo < hi")
        out.append((lo, hi))
    if len(out) > 2:
        raise InputError(f"only 1-D and 2-D boxes are supported, got {len(out)} dimensions")
    return tuple(out)


def _default_resolution(problem: PDEProblem) -> tuple[int, ...]:
    """Collocation size from the data, never the exact solution: ~8 points per period.

    Per dimension, the highest significant frequency of the source along a line through the box
    (:func:`workbench.physics.pde.frequency.highest_frequency` on 4096 samples); where the source
    vanishes (advection of boundary data), of the boundary data along the edge. For constant-
    coefficient linear operators the source's spectrum bounds the solution's from above.
    """
    from workbench.physics.pde.compiled import compile_problem
    from workbench.physics.pde.frequency import highest_frequency

    comp = compile_problem(problem)
    sizes = []
    for d, (lo, hi) in enumerate(problem.box):
        m = 4096
        t = np.linspace(lo, hi, m)
        inner = [np.full(m, 0.5 * (a + b) + 0.1234 * (b - a)) for a, b in problem.box]
        inner[d] = t
        fh = None
        f = np.broadcast_to(comp.source(*inner), t.shape)
        if np.abs(f).max() > 0:
            fh = highest_frequency(f, t[1] - t[0])
        if fh is None:
            edge = [np.full(m, a) for a, _ in problem.box]
            edge[d] = t
            fh = highest_frequency(np.broadcast_to(comp.boundary(*edge), t.shape), t[1] - t[0])
        cap = 1024 if problem.dim == 1 else 200
        n = 32 if fh is None else math.ceil(8 * fh * (hi - lo))
        sizes.append(int(min(cap, max(32, n))))
    return tuple(sizes)


def from_spec(spec: dict, name: str = "user problem") -> PDEProblem:
    """Build a problem from a JSON-like dict (see the module docstring of the loader)."""
    if not isinstance(spec, dict):
        raise InputError("the problem file must hold a JSON object")
    unknown = sorted(set(spec) - ALLOWED_KEYS)
    if unknown:
        raise InputError(
            f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(ALLOWED_KEYS))}"
        )
    from workbench.physics.pde.compiled import validate
    from workbench.physics.pde.expr import OPERATORS

    op = spec.get("operator", "poisson")
    if op not in OPERATORS:
        raise InputError(f"unknown operator {op!r}; known: {', '.join(OPERATORS)}")
    if "domain" not in spec:
        raise InputError("missing key 'domain' (one [lo, hi] per dimension)")
    box = _box(spec["domain"])
    dim = len(box)
    variables = tuple(
        spec.get("variables")
        or (("x",) if dim == 1 else ("x", "t") if op == "burgers" else ("x", "y"))
    )
    if len(variables) != dim or not all(
        isinstance(v, str) and v in ("x", "y", "t") for v in variables
    ):
        raise InputError("variables must name each dimension with x, y or t")
    exact, source, boundary = spec.get("exact"), spec.get("source"), spec.get("boundary")
    for key, val in (("exact", exact), ("source", source), ("boundary", boundary)):
        if val is not None and not isinstance(val, (str, int, float)):
            raise InputError(f"{key!r} must be an expression string")
    exact, source, boundary = (None if v is None else str(v) for v in (exact, source, boundary))
    if exact is None and (source is None or boundary is None):
        raise InputError("give 'exact', or both 'source' and 'boundary'")
    params = spec.get("params") or {}
    if not isinstance(params, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in params.values()
    ):
        raise InputError("'params' must map names to finite numbers, e.g. {\"beta\": 200}")
    bc = spec.get("bc") or ("initial_boundary" if op == "burgers" else "dirichlet")
    obs = spec.get("observations")
    obs_fields: dict[str, Any] = {}
    if obs is not None:
        try:
            pts = np.asarray(obs["points"], float).reshape(-1, dim)
            vals = np.asarray(obs["values"], float).ravel()
            sigma = float(obs.get("sigma", 0.0))
        except (KeyError, TypeError, ValueError):
            raise InputError(
                "'observations' needs 'points' (n × dim), 'values' (n) and optional 'sigma'"
            ) from None
        if len(pts) != len(vals) or not (np.all(np.isfinite(pts)) and np.all(np.isfinite(vals))):
            raise InputError("observations: points and values must be finite and of equal length")
        if not (math.isfinite(sigma) and sigma >= 0):
            raise InputError("observations: 'sigma' must be a finite number >= 0")
        obs_fields = dict(obs_points=pts, obs_values=vals, obs_sigma=sigma)
    freq = spec.get("freq_scale")
    if freq is not None and not (
        isinstance(freq, (int, float))
        and not isinstance(freq, bool)
        and math.isfinite(freq)
        and freq > 0
    ):
        raise InputError("'freq_scale' must be a finite positive number")
    base = dict(
        name=str(spec.get("name") or name)[:80],
        meta={"description": str(spec.get("description") or f"user {op} problem"), "spec": spec},
        operator=op,
        box=box,
        variables=variables,
        bc=bc,
        coefficients={str(k): float(v) for k, v in params.items()},
        exact=exact,
        source=source,
        boundary=boundary,
        freq_scale=None if freq is None else float(freq),
        priors=spec.get("priors") or {},
        n_col=(32,) * dim,
        **obs_fields,
    )
    n_col = spec.get("n_col")
    problem = PDEProblem(**base)
    validate(problem)
    if n_col is None:
        n_col = _default_resolution(problem)
    elif isinstance(n_col, int):
        n_col = (n_col,) * dim
    try:
        n_col = tuple(int(n) for n in n_col)
    except (TypeError, ValueError):
        raise InputError("'n_col' must be an integer or one integer per dimension") from None
    if len(n_col) != dim or min(n_col) < 3 or max(n_col) > 4096:
        raise InputError("'n_col' needs one value in [3, 4096] per dimension")
    base["n_col"] = n_col
    problem = PDEProblem(**base)
    validate(problem)
    return problem


def _no_constant(name: str):
    raise ValueError(f"{name} is not a finite number; specs take finite numbers only")


def load(data: bytes, filename: str = "problem.json", n_col: int = 0) -> PDEProblem:
    """Read a JSON problem spec such as ``{"operator": "poisson", "domain": [[0, 1]],
    "exact": "sin(50*x) + x**2"}`` (keys: operator, domain, exact | source + boundary, params,
    optional name, variables, bc, n_col, freq_scale, observations). A ``.csv`` holds scattered
    observations for a parametric sample (:func:`load_observations`)."""
    if filename.lower().endswith(".csv"):
        return load_observations(data, filename)
    if len(data) > 100_000:
        raise InputError("problem file is too large (limit 100 kB)")
    try:
        spec = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise InputError(f"{filename}: not valid JSON ({str(e).splitlines()[0][:120]})") from None
    except ValueError as e:  # NaN or Infinity
        raise InputError(f"{filename}: {e}") from None
    name = filename.rsplit("/", 1)[-1].rsplit(".", 1)[0] or "user problem"
    if n_col and isinstance(spec, dict):
        spec = {**spec, "n_col": int(n_col)}
    return from_spec(spec, name=name)


def load_observations(data: bytes, filename: str = "observations.csv") -> PDEProblem:
    """Scattered observations ``x,u`` (CSV, :mod:`workbench.io.pde_obs`) attached to a sample:
    header lines name it (``# problem: nlpoisson1d_param``, the default), the noise (``# sigma:``)
    and known coefficients (``# w: 1.5``); for the RGNP inverse solver."""
    import dataclasses

    from workbench.io.pde_obs import read_observations

    obs = read_observations(data, filename)
    name = obs.header.get("problem", "nlpoisson1d_param")
    if name not in PRESETS:
        raise InputError(f"{filename}: unknown problem {name!r} in the header")
    base = make_preset(name)
    if obs.points.shape[1] != base.dim:
        raise InputError(
            f"{filename}: {name} is {base.dim}-D, the file has {obs.points.shape[1]} coordinate(s)"
        )
    for d, (lo, hi) in enumerate(base.box):
        if np.any(obs.points[:, d] < lo) or np.any(obs.points[:, d] > hi):
            raise InputError(f"{filename}: points must lie in the domain [{lo:g}, {hi:g}]")
    coeffs = dict(base.coefficients)
    for key, val in obs.header.items():
        if key in coeffs:
            try:
                coeffs[key] = float(val)
            except ValueError:
                raise InputError(f"{filename}: header {key!r} must be a number") from None
    sigma = obs.sigma
    return dataclasses.replace(
        base,
        name=filename.rsplit("/", 1)[-1].rsplit(".", 1)[0][:80] or name,
        meta={**base.meta, "observations_file": filename},
        coefficients=coeffs,
        obs_points=obs.points,
        obs_values=obs.values,
        obs_sigma=0.0 if sigma is None else max(sigma, 0.0),
    )


DOMAIN = DomainSpec(
    name="pde",
    title="PDEs",
    problem_type=PDEProblem,
    key_metric="rel_l2",
    key_metric_higher=False,
    samples=tuple(Sample(n, d, partial(make_preset, n)) for n, (d, _) in PRESETS.items()),
    evaluate=evaluate,
    figure="workbench.viz.pde:result_figure",
    compare_figure="workbench.viz.pde:solutions_figure",
    description=(
        "Solve a PDE on a box (1-D or 2-D) from a preset or your own expression; compare GP-HM, "
        "GP baselines and PINNs with a spectral reference solution."
    ),
    load=load,
    upload_types=("json", "csv"),
    Options=Options,
)
