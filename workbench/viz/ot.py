"""Views of optimal-transport problems and runs (pure functions returning plotly figures).

- :func:`measures_figure`: the two measures (1-D histograms, images, point clouds or cost matrix);
- :func:`plan_heatmap`: the plan, log10 scale;
- :func:`convergence_figure`: L1 marginal error against iterations and against seconds, all runs;
- :func:`sparsity_figure`: the Hessian pattern kept by SNS over the plan;
- :func:`displacement_figure`: McCann displacement interpolation of 2-D measures from a plan;
- :func:`histograms_1d`: source/target histograms with the plan's marginals;
- :func:`result_figure`: plan + convergence of one run (the figure the CLI exports).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
MAX_CELLS = 400  # heatmaps are block-reduced to at most this many rows/columns


def _reduce(P: np.ndarray, cap: int = MAX_CELLS) -> tuple[np.ndarray, int, int]:
    """Sum-pool a large matrix to at most cap x cap cells (mass is preserved)."""
    n, m = P.shape
    fr, fc = max(1, -(-n // cap)), max(1, -(-m // cap))
    if fr == 1 and fc == 1:
        return P, 1, 1
    pn, pm = -(-n // fr) * fr, -(-m // fc) * fc
    Q = np.zeros((pn, pm))
    Q[:n, :m] = P
    return Q.reshape(pn // fr, fr, pm // fc, fc).sum(axis=(1, 3)), fr, fc


def plan_heatmap(
    P: np.ndarray, title: str = "plan (log10)", zmin: float | None = None, zmax: float | None = None
) -> go.Figure:
    P = np.asarray(P, dtype=np.float64)
    Q, fr, fc = _reduce(P)
    with np.errstate(divide="ignore"):
        L = np.log10(np.where(Q > 0, Q, np.nan))
    finite = L[np.isfinite(L)]
    zmax = float(finite.max()) if zmax is None and finite.size else zmax
    zmin = max(float(finite.min()), (zmax or 0) - 12) if zmin is None and finite.size else zmin
    fig = go.Figure(
        go.Heatmap(
            z=L,
            x=np.arange(Q.shape[1]) * fc,
            y=np.arange(Q.shape[0]) * fr,
            colorscale="Viridis",
            zmin=zmin,
            zmax=zmax,
            colorbar={"title": "log10 P"},
        )
    )
    fig.update_yaxes(autorange="reversed", title="source i")
    fig.update_xaxes(title="target j")
    fig.update_layout(
        title=title + ("" if fr == fc == 1 else f" ({fr}x{fc} blocks summed)"),
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
    )
    return fig


def _label(i: int, item: Any) -> tuple[str, Any]:
    if isinstance(item, tuple):
        return str(item[0]), item[1]
    solver = (getattr(item, "meta", {}) or {}).get("solver", "run")
    return f"{i + 1}. {solver}", item


def convergence_figure(runs: Sequence[Any], title: str = "convergence") -> go.Figure:
    """e = ||P1-a||_1 + ||P^T1-b||_1 (log scale) vs iterations and vs seconds for several runs.

    ``runs`` holds Results or (label, Result) pairs.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("vs iterations", "vs seconds"))
    for i, item in enumerate(runs):
        label, res = _label(i, item)
        h = getattr(res, "history", {}) or {}
        e = np.asarray(h.get("e", []), dtype=float)
        if e.size == 0:
            continue
        steps = np.asarray(h.get("step", np.arange(1, e.size + 1)), dtype=float)
        t = np.asarray(h.get("time", np.full(e.size, np.nan)), dtype=float)
        e = np.where(e > 0, e, np.nan)
        c = COLORS[i % len(COLORS)]
        mode = "lines" if e.size > 1 else "markers"
        fig.add_trace(
            go.Scatter(x=steps, y=e, mode=mode, name=label, line={"color": c}, legendgroup=label),
            1,
            1,
        )
        fig.add_trace(
            go.Scatter(
                x=t,
                y=e,
                mode=mode,
                name=label,
                line={"color": c},
                legendgroup=label,
                showlegend=False,
            ),
            1,
            2,
        )
        stage = np.asarray(h.get("stage", []), dtype=float)
        if stage.size == e.size and np.any(stage == 1):
            k = stage == 1
            fig.add_trace(
                go.Scatter(
                    x=steps[k],
                    y=e[k],
                    mode="markers",
                    marker={"color": c, "size": 6, "symbol": "diamond"},
                    name=f"{label}: Newton steps",
                    legendgroup=label,
                    showlegend=False,
                ),
                1,
                1,
            )
            fig.add_trace(
                go.Scatter(
                    x=t[k],
                    y=e[k],
                    mode="markers",
                    marker={"color": c, "size": 6, "symbol": "diamond"},
                    legendgroup=label,
                    showlegend=False,
                ),
                1,
                2,
            )
    fig.update_yaxes(type="log", title="L1 marginal error e", exponentformat="power")
    fig.update_xaxes(title="iteration", row=1, col=1)
    fig.update_xaxes(title="seconds", row=1, col=2)
    fig.update_layout(
        title=title,
        margin={"l": 60, "r": 20, "t": 60, "b": 40},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def sparsity_figure(problem: Any, result: Any) -> go.Figure:
    """The last sparsity pattern kept by SNS, over the plan."""
    P = np.asarray(result.output, dtype=np.float64)
    fig = plan_heatmap(P, "kept Hessian entries (dots) over the plan (log10)")
    r = result.extras.get("pattern_rows") if result.extras else None
    c = result.extras.get("pattern_cols") if result.extras else None
    if r is not None and c is not None and len(r):
        r, c = np.asarray(r), np.asarray(c)
        Q, fr, fc = _reduce(P)
        if r.size > 30_000:
            sel = np.random.default_rng(0).choice(r.size, 30_000, replace=False)
            r, c = r[sel], c[sel]
        fig.add_trace(
            go.Scattergl(
                x=(c // fc) * fc,
                y=(r // fr) * fr,
                mode="markers",
                marker={"size": 3, "color": "red", "opacity": 0.5},
                name=f"kept ({len(result.extras['pattern_rows']):,})",
            )
        )
        dens = len(result.extras["pattern_rows"]) / P.size
        # two short lines: the map is drawn at its own width (about 430 px on the page), where
        # one line ran under the plot's tool bar and was cut off
        n_kept = len(result.extras["pattern_rows"])
        fig.update_layout(
            title=f"SNS sparsity pattern<br><sup>{n_kept:,} entries, density {dens:.2%}</sup>"
        )
    else:
        fig.update_layout(
            title="no sparsity pattern<br><sup>not an SNS run, or no Newton step</sup>"
        )
    return fig


def _points(problem: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    X = getattr(problem, "X", None)
    Y = getattr(problem, "Y", None)
    return (None, None) if X is None or Y is None else (np.asarray(X), np.asarray(Y))


def interpolate(
    problem: Any, P: np.ndarray, t: float, threshold: float = 1e-12
) -> tuple[np.ndarray, np.ndarray]:
    """McCann interpolation at time t: points (1-t) X_i + t Y_j carrying mass P_ij."""
    X, Y = _points(problem)
    i, j = np.nonzero(P > threshold * P.max())
    return (1 - t) * X[i] + t * Y[j], P[i, j]


def displacement_figure(
    problem: Any, P: np.ndarray, times: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0)
) -> go.Figure:
    """Displacement interpolation for 2-D measures (images rendered on their pixel grid)."""
    X, Y = _points(problem)
    if X is None or X.shape[1] != 2:
        fig = go.Figure()
        fig.update_layout(title="displacement interpolation needs 2-D supports")
        return fig
    P = np.asarray(P, dtype=np.float64)
    fig = make_subplots(
        rows=1,
        cols=len(times),
        subplot_titles=[f"t = {t:g}" for t in times],
        horizontal_spacing=0.02,
    )
    shape = getattr(problem, "shape_a", None)
    for k, t in enumerate(times):
        pts, w = interpolate(problem, P, t, 1e-12 if shape is not None else 1e-4)
        if shape is not None:
            h, wd = shape
            H, _, _ = np.histogram2d(
                pts[:, 0], pts[:, 1], bins=(h, wd), range=((0, 1), (0, 1)), weights=w
            )
            fig.add_trace(go.Heatmap(z=H, colorscale="Greys", showscale=False), 1, k + 1)
            fig.update_yaxes(autorange="reversed", row=1, col=k + 1)
        else:
            size = 2 + 8 * np.sqrt(w / w.max())
            fig.add_trace(
                go.Scattergl(
                    x=pts[:, 0],
                    y=pts[:, 1],
                    mode="markers",
                    marker={"size": size, "color": COLORS[0], "opacity": 0.5},
                    showlegend=False,
                ),
                1,
                k + 1,
            )
        fig.update_xaxes(title_text="x (px)" if shape is not None else "x", row=1, col=k + 1)
        fig.update_yaxes(
            title_text="y (px)" if shape is not None else "y",
            scaleanchor=f"x{k + 1 if k else ''}",
            row=1,
            col=k + 1,
        )
    fig.update_layout(
        title="displacement interpolation (McCann) from the plan",
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        height=340,
    )
    return fig


def histograms_1d(problem: Any, result: Any | None = None) -> go.Figure:
    """Source and target histograms on their 1-D supports, with the plan's marginals."""
    X, Y = _points(problem)
    xa = X[:, 0] if X is not None and X.shape[1] == 1 else np.arange(problem.n)
    yb = Y[:, 0] if Y is not None and Y.shape[1] == 1 else np.arange(problem.m)
    fig = go.Figure()
    fig.add_trace(go.Bar(x=xa, y=problem.a, name="a (source)", marker_color=COLORS[0], opacity=0.6))
    fig.add_trace(go.Bar(x=yb, y=problem.b, name="b (target)", marker_color=COLORS[1], opacity=0.6))
    if result is not None:
        P = np.asarray(result.output)
        fig.add_trace(
            go.Scatter(
                x=xa, y=P.sum(1), mode="lines", name="P 1", line={"color": COLORS[0], "dash": "dot"}
            )
        )
        fig.add_trace(
            go.Scatter(
                x=yb,
                y=P.sum(0),
                mode="lines",
                name="P^T 1",
                line={"color": COLORS[1], "dash": "dot"},
            )
        )
    fig.update_layout(
        barmode="overlay", title="1-D measures", margin={"l": 50, "r": 20, "t": 50, "b": 40}
    )
    return fig


def _image(problem: Any, w: np.ndarray, shape: tuple, index: np.ndarray | None) -> np.ndarray:
    img = np.zeros(int(np.prod(shape)))
    img[index if index is not None else np.arange(w.size)] = w
    return img.reshape(shape)


def measures_figure(problem: Any) -> go.Figure:
    """The two measures as the user thinks of them."""
    X, Y = _points(problem)
    if problem.shape_a is not None and problem.shape_b is not None:
        fig = make_subplots(rows=1, cols=2, subplot_titles=("source a", "target b"))
        for k, (w, s, idx) in enumerate(
            (
                (problem.a, problem.shape_a, problem.index_a),
                (problem.b, problem.shape_b, problem.index_b),
            )
        ):
            fig.add_trace(
                go.Heatmap(
                    z=_image(problem, w, s, idx),
                    colorscale="Greys",
                    showscale=k == 1,
                    colorbar={"title": {"text": "mass"}},
                ),
                1,
                k + 1,
            )
            fig.update_yaxes(
                autorange="reversed", scaleanchor=f"x{k + 1 if k else ''}", row=1, col=k + 1
            )
        fig.update_layout(
            title="measures (images)", height=320, margin={"l": 10, "r": 10, "t": 60, "b": 10}
        )
        return fig
    if X is not None and X.shape[1] == 1:
        return histograms_1d(problem)
    if X is not None and X.shape[1] >= 2:
        fig = go.Figure()
        for w, pts, name, c in (
            (problem.a, X, "a (source)", COLORS[0]),
            (problem.b, Y, "b (target)", COLORS[1]),
        ):
            size = 3 + 10 * np.sqrt(w / w.max())
            fig.add_trace(
                go.Scattergl(
                    x=pts[:, 0],
                    y=pts[:, 1],
                    mode="markers",
                    name=name,
                    marker={"size": size, "color": c, "opacity": 0.6},
                )
            )
        fig.update_yaxes(scaleanchor="x")
        fig.update_layout(
            title="measures (point clouds, marker size ~ mass)",
            margin={"l": 50, "r": 20, "t": 50, "b": 40},
        )
        return fig
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("cost C / max C", "weights"), column_widths=[0.6, 0.4]
    )
    C = np.asarray(problem.C, dtype=np.float64)
    Q, fr, fc = _reduce(C)
    Q = Q / (fr * fc)  # block means: the colour bar reads in units of C whatever the blocking
    cmax = float(np.abs(Q).max()) or 1.0
    fig.add_trace(
        go.Heatmap(
            z=Q / cmax,
            x=np.arange(Q.shape[1]) * fc,
            y=np.arange(Q.shape[0]) * fr,
            colorscale="Viridis",
            colorbar={"title": {"text": "C / max C"}, "x": 0.56, "len": 0.9},
        ),
        1,
        1,
    )
    fig.update_yaxes(autorange="reversed", title_text="source i", row=1, col=1)
    fig.update_xaxes(title_text="target j", row=1, col=1)
    fig.add_trace(go.Scatter(y=problem.a, mode="lines", name="a"), 1, 2)
    fig.add_trace(go.Scatter(y=problem.b, mode="lines", name="b"), 1, 2)
    fig.update_xaxes(title_text="index", row=1, col=2)
    fig.update_yaxes(title_text="weight", row=1, col=2)
    fig.update_layout(
        title="measures (cost matrix and weights)"
        + ("" if fr == fc == 1 else f" ({fr}x{fc} block means)"),
        height=440,
        margin={"l": 50, "r": 20, "t": 60, "b": 40},
    )
    return fig


def result_figure(problem: Any, result: Any) -> go.Figure:
    """One run: the plan (log10) and its convergence, side by side."""
    P = np.asarray(result.output, dtype=np.float64)
    Q, fr, fc = _reduce(P)
    with np.errstate(divide="ignore"):
        L = np.log10(np.where(Q > 0, Q, np.nan))
    finite = L[np.isfinite(L)]
    zmax = float(finite.max()) if finite.size else 0.0
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("plan (log10)", "L1 marginal error"),
        column_widths=[0.5, 0.5],
        horizontal_spacing=0.2,
    )
    fig.add_trace(
        go.Heatmap(
            z=L,
            x=np.arange(Q.shape[1]) * fc,
            y=np.arange(Q.shape[0]) * fr,
            colorscale="Viridis",
            zmin=zmax - 12,
            zmax=zmax,
            colorbar={"x": 0.41, "len": 0.9, "title": {"text": "log10 P"}},
        ),
        1,
        1,
    )
    fig.update_yaxes(autorange="reversed", title_text="source i", row=1, col=1)
    fig.update_xaxes(title_text="target j", row=1, col=1)
    h = result.history or {}
    e = np.asarray(h.get("e", []), dtype=float)
    if e.size:
        steps = np.asarray(h.get("step", np.arange(1, e.size + 1)), dtype=float)
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=np.where(e > 0, e, np.nan),
                mode="lines+markers" if e.size < 60 else "lines",
                name="e",
            ),
            1,
            2,
        )
    fig.update_yaxes(
        type="log", exponentformat="power", title_text="L1 marginal error", row=1, col=2
    )
    fig.update_xaxes(title="iteration", row=1, col=2)
    solver = (result.meta or {}).get("solver", "")
    cost = (result.metrics or {}).get("transport_cost")
    fig.update_layout(
        title=f"{solver} on {getattr(problem, 'name', '')}: {result.status}, {result.iterations} iterations"
        + (f", cost {cost:.6g}" if cost is not None else ""),
        showlegend=False,
        margin={"l": 50, "r": 20, "t": 70, "b": 40},
    )
    return fig


def bench_curves_figure(curves: dict[str, Any], cell: str) -> go.Figure:
    """Error against wall time for every solver of one benchmark cell (``workbench bench ot --grid``).

    ``curves`` maps ``"<cell> <solver>"`` to ``{"t": seconds, "e": errors, "norm": str}``; SNS's
    error is the L1 marginal error, RegOT's its own ||grad f||_2 (as it reports it), so the curves
    show the shape of convergence and the final recomputed errors sit in the table.
    """
    fig = go.Figure()
    i = 0
    for key, c in curves.items():
        if not key.startswith(cell + " ") or not c or not c.get("t"):
            continue
        e = np.asarray(c["e"], dtype=float)
        t = np.asarray(c["t"], dtype=float)[: e.size]
        e = np.where(e > 0, e, np.nan)[: t.size]
        fig.add_trace(
            go.Scatter(
                x=t,
                y=e,
                mode="lines+markers",
                marker={"size": 4},
                line={"color": COLORS[i % len(COLORS)]},
                name=f"{key[len(cell) + 1 :]} ({c.get('norm', '')})",
            )
        )
        i += 1
    fig.update_yaxes(type="log", title="marginal error", exponentformat="power")
    fig.update_xaxes(title="seconds")
    fig.update_layout(
        title=f"benchmark {cell}: error against time",
        margin={"l": 60, "r": 20, "t": 60, "b": 40},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def compare_figure(problem: Any, labelled: Sequence[tuple[str, Any]]) -> go.Figure:
    """The Compare page's view: each run's plan, log10, side by side on one colour scale.

    The scale spans twelve decades below the largest entry over all runs, so a sparse exact
    plan and a dense entropic one read on the same colours.
    """
    logs = []
    for label, r in labelled:
        Q, fr, fc = _reduce(np.asarray(r.output, dtype=np.float64))
        with np.errstate(divide="ignore"):
            logs.append((label, np.log10(np.where(Q > 0, Q, np.nan)), fr, fc))
    finite = [L[np.isfinite(L)] for _, L, _, _ in logs]
    zmax = max((float(f.max()) for f in finite if f.size), default=0.0)
    n = max(1, len(logs))
    fig = make_subplots(rows=1, cols=n, subplot_titles=[lbl for lbl, *_ in logs] or [""])
    for i, (_, L, fr, fc) in enumerate(logs):
        fig.add_trace(
            go.Heatmap(
                z=L,
                x=np.arange(L.shape[1]) * fc,
                y=np.arange(L.shape[0]) * fr,
                colorscale="Viridis",
                zmin=zmax - 12,
                zmax=zmax,
                showscale=i == n - 1,
                colorbar={"title": {"text": "log10 P"}},
            ),
            1,
            i + 1,
        )
        fig.update_yaxes(autorange="reversed", title_text="source i", row=1, col=i + 1)
        fig.update_xaxes(title_text="target j", row=1, col=i + 1)
    fig.update_layout(
        title=f"plans (log10, one colour scale) on {getattr(problem, 'name', '')}",
        height=460,
        margin={"l": 50, "r": 20, "t": 70, "b": 40},
    )
    return fig


def bench_curves_panels(
    curves: dict[str, dict[str, Any]], labels: Sequence[str], x: str = "t"
) -> go.Figure:
    """Error against time (``x="t"``) or O(nm) passes (``x="passes"``), one panel per problem.

    ``curves`` maps a problem label to ``{solver: {"t": [...], "e": [...], "passes": [...]}}``
    (``workbench bench ot`` writes it; every error is the L1 marginal error recomputed from the
    solver's plan). A solver keeps its colour across panels; curves without the chosen x are left
    out (RegOT does not expose its passes).
    """
    labels = list(labels)
    cols = 2 if len(labels) > 1 else 1
    rows = (len(labels) + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=labels)
    solvers = list(dict.fromkeys(s for lab in labels for s in curves.get(lab, {})))
    for k, lab in enumerate(labels):
        r, c = k // cols + 1, k % cols + 1
        for s, cv in curves.get(lab, {}).items():
            xs = np.asarray(cv.get(x) or [], dtype=float)
            e = np.asarray(cv.get("e") or [], dtype=float)
            size = min(xs.size, e.size)
            if size == 0:
                continue
            i = solvers.index(s)
            fig.add_trace(
                go.Scatter(
                    x=xs[:size],
                    y=np.where(e[:size] > 0, e[:size], np.nan),
                    mode="lines+markers",
                    marker={"size": 3},
                    line={"color": COLORS[i % len(COLORS)]},
                    name=s,
                    legendgroup=s,
                    showlegend=k == 0 or all(s not in curves.get(q, {}) for q in labels[:k]),
                ),
                row=r,
                col=c,
            )
        fig.add_hline(y=1e-8, line={"dash": "dot", "color": "grey"}, row=r, col=c)
        fig.update_xaxes(type="log", title="seconds" if x == "t" else "O(nm) passes", row=r, col=c)
        fig.update_yaxes(
            type="log", exponentformat="power", title="L1 marginal error", row=r, col=c
        )
    fig.update_layout(
        title="error against " + ("time" if x == "t" else "O(nm) passes") + " (tol 1e-8 dotted)",
        margin={"l": 60, "r": 20, "t": 80, "b": 40},
        legend={"orientation": "h", "y": -0.08},
    )
    return fig
