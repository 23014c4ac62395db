"""Optimal transport problems: bundled samples, the upload loader, ground-truth metrics.

Every factory returns an :class:`~workbench.problems.OTProblem` whose cost matrix is divided by
its maximum (``cost_scale`` records the factor), so that ``reg`` has a fixed meaning across
problems. Masses are validated (finite, non-negative, positive total) and renormalised to 1 when
they are off by more than 1e-9, with a notice in ``meta["notices"]``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.errors import InputError
from workbench.physics.ot import exact
from workbench.physics.ot.cost import COSTS, pairwise_cost
from workbench.problems import OTProblem
from workbench.registry import DomainSpec, Sample, param

#: Largest accepted problem (n * m entries of the dense cost / plan).
MAX_ENTRIES = 25_000_000
MAX_POINTS = 20_000


@dataclass(frozen=True)
class Options:
    cost: str = param(
        "auto",
        "Ground cost for point clouds and images: sqeuclidean (W2), euclidean (W1); auto = the "
        "sample's own (sqeuclidean for uploads).",
        choices=("auto", "sqeuclidean", "euclidean"),
    )
    floor: float = param(
        0.0,
        "Images only: add this floor (relative to the mean pixel mass, e.g. 1e-6) before "
        "normalising, instead of dropping zero pixels.",
        min=0.0,
        max=1.0,
    )


# ------------------------------------------------------------------------------------------
# Validation and construction
# ------------------------------------------------------------------------------------------


def _weights(w: Any, name: str, notices: list[str]) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64) if not isinstance(w, np.ndarray) else w
    if w.dtype.kind not in "fiu":
        raise InputError(f"{name}: weights must be numeric, got dtype {w.dtype}")
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 1:
        raise InputError(f"{name}: weights must be a 1-D array, got shape {w.shape}")
    if w.size == 0:
        raise InputError(f"{name}: empty measure")
    if w.size > MAX_POINTS:
        raise InputError(f"{name}: {w.size} points is more than the {MAX_POINTS} supported")
    if not np.all(np.isfinite(w)):
        raise InputError(f"{name}: weights contain NaN or inf")
    if np.any(w < 0):
        raise InputError(f"{name}: weights must be non-negative (min {w.min():.3g})")
    s = w.sum()
    if not s > 0:
        raise InputError(f"{name}: total mass is zero")
    if abs(s - 1.0) > 1e-9:
        notices.append(f"{name} summed to {s:.12g}; renormalised to 1")
    return w / s


def make_problem(
    a: Any,
    b: Any,
    C: Any = None,
    *,
    X: Any = None,
    Y: Any = None,
    cost: str = "sqeuclidean",
    name: str = "problem",
    meta: dict | None = None,
    shape_a: tuple | None = None,
    shape_b: tuple | None = None,
    index_a: Any = None,
    index_b: Any = None,
) -> OTProblem:
    """Validate masses and costs, normalise the cost by its maximum and build the problem.

    Either ``C`` (a custom cost, shape (n, m)) or support points ``X`` (n, d), ``Y`` (m, d) with
    ``cost`` in ``sqeuclidean``/``euclidean`` must be given.
    """
    notices: list[str] = []
    a = _weights(a, "a (source)", notices)
    b = _weights(b, "b (target)", notices)
    n, m = a.size, b.size
    if n * m > MAX_ENTRIES:
        raise InputError(f"problem too large: {n} x {m} = {n * m:,} entries > {MAX_ENTRIES:,}")
    if X is not None or Y is not None:
        if X is None or Y is None:
            raise InputError("both point sets X and Y are needed")
        X = np.asarray(X, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.float64)
        X = X[:, None] if X.ndim == 1 else X
        Y = Y[:, None] if Y.ndim == 1 else Y
        if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1]:
            raise InputError(f"point sets must be (n, d) and (m, d), got {X.shape} and {Y.shape}")
        if X.shape[0] != n or Y.shape[0] != m:
            raise InputError(
                f"{X.shape[0]} source / {Y.shape[0]} target points but {n} / {m} weights"
            )
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(Y))):
            raise InputError("point coordinates contain NaN or inf")
    if C is None:
        if X is None:
            raise InputError("give a cost matrix C or point sets X and Y")
        C = pairwise_cost(X, Y, cost)
    else:
        C = np.asarray(C)
        if C.dtype.kind not in "fiu":
            raise InputError(f"cost matrix must be numeric, got dtype {C.dtype}")
        C = np.asarray(C, dtype=np.float64)
        if C.shape != (n, m):
            raise InputError(f"cost matrix has shape {C.shape}, expected ({n}, {m}) from a and b")
        if not np.all(np.isfinite(C)):
            raise InputError("cost matrix contains NaN or inf")
        if np.any(C < 0):
            raise InputError(f"cost matrix must be non-negative (min {C.min():.3g})")
        if X is None:
            cost = "custom"
    scale = float(C.max())
    if not scale > 0:
        raise InputError("cost matrix is identically zero: every plan is optimal")
    meta = dict(meta or {})
    if notices:
        meta["notices"] = meta.get("notices", []) + notices
    return OTProblem(
        name=name,
        meta=meta,
        a=a,
        b=b,
        C=C / scale,
        cost_scale=scale,
        cost=cost,
        X=X,
        Y=Y,
        shape_a=tuple(shape_a) if shape_a is not None else None,
        shape_b=tuple(shape_b) if shape_b is not None else None,
        index_a=None if index_a is None else np.asarray(index_a, dtype=np.int64),
        index_b=None if index_b is None else np.asarray(index_b, dtype=np.int64),
    )


def _image_measure(
    img: np.ndarray, name: str, floor: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image -> (weights of kept pixels, pixel centres in [0,1]^2 as (row, col), flat indices)."""
    img = np.asarray(img)
    if img.dtype.kind not in "fiub":
        raise InputError(f"{name}: image must be numeric, got dtype {img.dtype}")
    img = np.asarray(img, dtype=np.float64)
    if img.ndim != 2:
        raise InputError(f"{name}: image must be 2-D, got shape {img.shape}")
    if not np.all(np.isfinite(img)):
        raise InputError(f"{name}: image contains NaN or inf")
    if np.any(img < 0):
        raise InputError(f"{name}: image has negative values (min {img.min():.3g})")
    if not img.sum() > 0:
        raise InputError(f"{name}: image is all zero")
    if img.size > MAX_POINTS:
        raise InputError(f"{name}: {img.shape} has more than {MAX_POINTS} pixels")
    if floor > 0:
        img = img + floor * img.mean()
    h, w = img.shape
    flat = img.ravel()
    idx = np.flatnonzero(flat > 0)
    rr, cc = np.divmod(idx, w)
    pts = np.stack([(rr + 0.5) / h, (cc + 0.5) / w], axis=1)
    return flat[idx], pts, idx


def from_images(
    img_a: np.ndarray,
    img_b: np.ndarray,
    *,
    cost: str = "sqeuclidean",
    floor: float = 0.0,
    name: str = "images",
    meta: dict | None = None,
) -> OTProblem:
    """Two non-negative 2-D images as densities on pixel centres in [0, 1]^2 (zero pixels dropped)."""
    wa, Xa, ia = _image_measure(img_a, "source image", floor)
    wb, Xb, ib = _image_measure(img_b, "target image", floor)
    return make_problem(
        wa,
        wb,
        X=Xa,
        Y=Xb,
        cost=cost,
        name=name,
        meta=meta,
        shape_a=np.shape(img_a),
        shape_b=np.shape(img_b),
        index_a=ia,
        index_b=ib,
    )


def _cost_option(cost: str, default: str) -> str:
    return default if cost in (None, "", "auto") else cost


# ------------------------------------------------------------------------------------------
# Samples
# ------------------------------------------------------------------------------------------


def random_assignment(n: int, m: int | None = None, seed: int = 0, **_: Any) -> OTProblem:
    """The paper's random assignment problem: C_ij ~ U[0, 1] i.i.d., uniform marginals."""
    m = n if m is None else m
    rng = np.random.default_rng(seed)
    C = rng.random((n, m))
    eta = 1200.0 if max(n, m) <= 500 else 2.4 * max(n, m)
    return make_problem(
        np.full(n, 1.0 / n),
        np.full(m, 1.0 / m),
        C,
        name=f"random_{n}" if m == n else f"random_{n}x{m}",
        meta={
            "description": f"random assignment, n={n}, C ~ U[0,1], uniform marginals",
            "suggested_reg": 1.0 / eta,
            "seed": seed,
        },
    )


def _mixture(t: np.ndarray, comps: list[tuple[float, float, float]]) -> np.ndarray:
    return sum(w * np.exp(-0.5 * ((t - mu) / s) ** 2) / s for w, mu, s in comps)


def hist1d(n: int = 64, m: int = 48, cost: str = "auto", **_: Any) -> OTProblem:
    """Two Gaussian-mixture histograms on n and m bins of [0, 1], squared distance (rectangular)."""
    x = (np.arange(n) + 0.5) / n
    y = (np.arange(m) + 0.5) / m
    a = _mixture(x, [(0.6, 0.25, 0.07), (0.4, 0.65, 0.1)])
    b = _mixture(y, [(0.3, 0.3, 0.05), (0.5, 0.55, 0.08), (0.2, 0.85, 0.04)])
    return make_problem(
        a,
        b,
        X=x[:, None],
        Y=y[:, None],
        cost=_cost_option(cost, "sqeuclidean"),
        name="hist1d",
        meta={
            "description": f"1-D Gaussian-mixture histograms, {n} and {m} bins (small, fast)",
            "suggested_reg": 1e-2,
        },
    )


def gauss_clouds(
    n: int = 500, m: int = 500, seed: int = 1, cost: str = "auto", **_: Any
) -> OTProblem:
    """Two 2-D Gaussian clouds with different means and covariances, uniform weights."""
    rng = np.random.default_rng(seed)
    X = rng.multivariate_normal([0.0, 0.0], [[1.0, 0.6], [0.6, 0.8]], size=n)
    Y = rng.multivariate_normal([2.5, 1.0], [[0.5, -0.3], [-0.3, 1.2]], size=m)
    return make_problem(
        np.full(n, 1.0 / n),
        np.full(m, 1.0 / m),
        X=X,
        Y=Y,
        cost=_cost_option(cost, "sqeuclidean"),
        name="gauss_clouds",
        meta={
            "description": f"two 2-D Gaussian clouds ({n} + {m} points)",
            "suggested_reg": 1 / 1200,
        },
    )


def cloud_500(seed: int = 2, cost: str = "auto", **_: Any) -> OTProblem:
    """X ~ U[0,1]^2, Y ~ U[0.3,1.1]^2 (500 each), weights ∝ U[0,1] + 0.1."""
    rng = np.random.default_rng(seed)
    X = rng.random((500, 2))
    Y = 0.3 + 0.8 * rng.random((500, 2))
    a = rng.random(500) + 0.1
    b = rng.random(500) + 0.1
    return make_problem(
        a / a.sum(),
        b / b.sum(),
        X=X,
        Y=Y,
        cost=_cost_option(cost, "sqeuclidean"),
        name="cloud_500",
        meta={
            "description": "uniform clouds on shifted squares, non-uniform weights (500 + 500)",
            "suggested_reg": 1 / 1200,
        },
    )


def digit_images(first: int = 3, second: int = 8, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """Two scikit-learn digits (8x8, bundled) upsampled bilinearly to size x size, clipped >= 0."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    d = load_digits()
    ia = int(np.flatnonzero(d.target == first)[0])
    ib = int(np.flatnonzero(d.target == second)[0])
    out = []
    for i in (ia, ib):
        img = zoom(d.images[i].astype(np.float64), size / 8.0, order=1)
        img = np.clip(img, 0.0, None)
        img[img < 1e-3 * img.max()] = 0.0
        out.append(img)
    return out[0], out[1]


def digits(
    cost: str = "sqeuclidean", floor: float = 0.0, name: str = "digits_w2", **_: Any
) -> OTProblem:
    A, B = digit_images()
    return from_images(
        A,
        B,
        cost=cost,
        floor=floor,
        name=name,
        meta={
            "description": f"digits 3 -> 8 (sklearn 8x8 upsampled to 28x28), {'W2' if cost == 'sqeuclidean' else 'W1'} cost",
            "suggested_reg": 1 / 1200,
        },
    )


def digits_w2(floor: float = 0.0, **_: Any) -> OTProblem:
    return digits("sqeuclidean", floor, "digits_w2")


def digits_w1(floor: float = 0.0, **_: Any) -> OTProblem:
    return digits("euclidean", floor, "digits_w1")


def _random(n: int):
    def factory(**_: Any) -> OTProblem:
        return random_assignment(n)

    return factory


SAMPLES = (
    Sample("hist1d", "1-D Gaussian-mixture histograms, 64 x 48 bins (small, fast)", hist1d),
    Sample(
        "random_200", "random assignment, n = 200, C ~ U[0,1] (suggested eta 1200)", _random(200)
    ),
    Sample(
        "random_500", "random assignment, n = 500 (the paper's problem, eta 1200)", _random(500)
    ),
    Sample("random_1000", "random assignment, n = 1000 (suggested eta 2400)", _random(1000)),
    Sample("random_2000", "random assignment, n = 2000 (suggested eta 4800)", _random(2000)),
    Sample(
        "gauss_clouds", "two 2-D Gaussian clouds, 500 + 500 points, squared Euclidean", gauss_clouds
    ),
    Sample(
        "cloud_500",
        "uniform clouds on shifted squares, non-uniform weights, squared Euclidean",
        cloud_500,
    ),
    Sample("digits_w2", "two 28x28 digit images (3 -> 8), squared Euclidean (W2)", digits_w2),
    Sample("digits_w1", "two 28x28 digit images (3 -> 8), Euclidean (W1)", digits_w1),
)


# ------------------------------------------------------------------------------------------
# Upload loader
# ------------------------------------------------------------------------------------------


def load(data: bytes, filename: str, cost: str = "auto", floor: float = 0.0, **_: Any) -> OTProblem:
    """Build a problem from an uploaded file (see :mod:`workbench.io.ot` for the formats)."""
    from workbench.io import ot as oio

    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    cost = _cost_option(cost, "sqeuclidean")
    if cost not in COSTS:
        raise InputError(f"unknown cost {cost!r}; use one of {', '.join(COSTS)}")
    name = filename.rsplit("/", 1)[-1]
    meta = {"description": f"uploaded {name}", "source": name}
    if ext == "npz":
        z = oio.read_npz(data)
        if "C" in z:
            missing = [k for k in ("a", "b") if k not in z]
            if missing:
                raise InputError(f"NPZ with a cost matrix C also needs {' and '.join(missing)}")
            return make_problem(z["a"], z["b"], z["C"], name=name, meta=meta)
        if "X" in z and "Y" in z:
            X, Y = np.asarray(z["X"]), np.asarray(z["Y"])
            if X.dtype.kind not in "fiu" or Y.dtype.kind not in "fiu":
                raise InputError("X and Y must be numeric arrays")
            n = X.shape[0] if X.ndim else 0
            m = Y.shape[0] if Y.ndim else 0
            a = z.get("a", np.ones(max(n, 1)) / max(n, 1))
            b = z.get("b", np.ones(max(m, 1)) / max(m, 1))
            return make_problem(a, b, X=X, Y=Y, cost=cost, name=name, meta=meta)
        if "source" in z and "target" in z:
            return from_images(
                z["source"], z["target"], cost=cost, floor=floor, name=name, meta=meta
            )
        raise InputError(
            f"NPZ must hold a, b, C; or X, Y [, a, b]; or source, target images (found: {', '.join(z) or 'nothing'})"
        )
    if ext == "csv":
        X, Y, a, b = oio.read_csv_clouds(data)
        a = np.full(len(X), 1.0 / len(X)) if a is None else a
        b = np.full(len(Y), 1.0 / len(Y)) if b is None else b
        return make_problem(a, b, X=X, Y=Y, cost=cost, name=name, meta=meta)
    if ext == "npy":
        arr = oio.read_npy(data)
        if arr.ndim != 3 or arr.shape[0] != 2:
            raise InputError(
                f"NPY must be an array of shape (2, H, W) (source, target), got {arr.shape}"
            )
        return from_images(arr[0], arr[1], cost=cost, floor=floor, name=name, meta=meta)
    if ext == "png":
        A, B = oio.read_png_pair(data)
        return from_images(A, B, cost=cost, floor=floor, name=name, meta=meta)
    raise InputError(f"unsupported file type {ext or '(none)'!r}; use npz, csv, npy or png")


# ------------------------------------------------------------------------------------------
# Ground-truth metrics
# ------------------------------------------------------------------------------------------

_EMD_CACHE: OrderedDict[str, float] = OrderedDict()
EMD_MAX_ENTRIES = 4_000_000
#: Exact cost without POT (whose import costs more than a second: it pulls in scikit-learn and
#: torch) on small problems -- the same optimal value, checked against ``ot.emd`` by the tests:
#: NumPy successive shortest paths up to SSP_MAX_ENTRIES, SciPy's HiGHS up to LP_MAX_ENTRIES.
SSP_MAX_ENTRIES = 400
LP_MAX_ENTRIES = 40_000


def exact_cost(problem: OTProblem) -> float | None:
    """Exact OT cost (user units) when n*m <= 4e6; cached per problem id.

    :func:`~workbench.physics.ot.exact.exact_cost_ssp` up to :data:`SSP_MAX_ENTRIES` entries,
    :func:`~workbench.physics.ot.exact.exact_cost_lp` up to :data:`LP_MAX_ENTRIES`, ``ot.emd``
    above.
    """
    if problem.n * problem.m > EMD_MAX_ENTRIES:
        return None
    key = problem.id
    if key not in _EMD_CACHE:
        a = np.asarray(problem.a, dtype=np.float64)
        b = np.asarray(problem.b, dtype=np.float64)
        C = np.ascontiguousarray(problem.C, dtype=np.float64)
        if problem.n * problem.m <= SSP_MAX_ENTRIES:
            value = exact.exact_cost_ssp(a, b, C)[0]
        elif problem.n * problem.m <= LP_MAX_ENTRIES:
            value = exact.exact_cost_lp(a, b, C)
        else:
            import ot

            value = float(np.sum(ot.emd(a, b, C, numItermax=10_000_000) * C))
        _EMD_CACHE[key] = value * problem.cost_scale
        while len(_EMD_CACHE) > 32:
            _EMD_CACHE.popitem(last=False)
    return _EMD_CACHE[key]


def evaluate(problem: OTProblem, result: Any) -> dict[str, float]:
    """Metrics from the returned plan, the same for every solver."""
    from workbench.physics.ot.metrics import plan_metrics

    P = np.asarray(result.output, dtype=np.float64)
    if P.shape != (problem.n, problem.m):
        return {}
    reg = (result.meta or {}).get("reg")
    out = plan_metrics(problem, P, reg)
    exact = exact_cost(problem)
    if exact is not None:
        out["exact_cost"] = exact
        out["cost_gap"] = out["transport_cost"] - exact
        out["relative_cost_gap"] = out["cost_gap"] / exact if exact > 0 else float("nan")
    return out


DOMAIN = DomainSpec(
    name="ot",
    title="Optimal transport",
    problem_type=OTProblem,
    key_metric="marginal_error",
    key_metric_higher=False,
    samples=SAMPLES,
    evaluate=evaluate,
    figure="workbench.viz.ot:result_figure",
    compare_figure="workbench.viz.ot:compare_figure",
    description=(
        "Two measures and a cost -> the entropic optimal plan, potentials and transport cost. "
        "Log-domain Sinkhorn, Sinkhorn–Newton–Sparse (ICLR 2024) and POT's exact network simplex."
    ),
    load=load,
    upload_types=("npz", "csv", "npy", "png"),
    Options=Options,
)
