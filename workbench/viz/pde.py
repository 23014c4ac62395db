"""PDE figures: solution against the truth, pointwise error (log), residual, 3-D surfaces, the
learned GP spectrum and a metrics table. Pure functions of (problem, results) → plotly figures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.viz.common import PALETTE, convergence_figure

__all__ = [
    "result_figure",
    "solutions_figure",
    "error_figure",
    "residual_figure",
    "surface_figure",
    "spectrum_figure",
    "metrics_rows",
    "convergence_figure",
]


def _truth(problem) -> np.ndarray:
    from workbench.physics.pde.metrics import truth_on_test

    return truth_on_test(problem)


def _pred(problem, result) -> np.ndarray:
    from workbench.physics.pde.metrics import prediction_on_test

    return prediction_on_test(problem, result)


def _axes(problem) -> list[np.ndarray]:
    from workbench.physics.pde.compiled import compile_problem

    return compile_problem(problem).test_axes()


def _log_err(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    scale = max(float(np.abs(true).max()), 1e-300)
    return np.log10(np.maximum(np.abs(pred - true) / scale, 1e-17))


def result_figure(problem, result) -> go.Figure:
    """One run: solution and truth (1-D curves or 2-D heatmaps) and the log10 relative error."""
    return solutions_figure(problem, [("result", result)])


def solutions_figure(problem, runs: Sequence[tuple[str, Any]], height: int = 420) -> go.Figure:
    """Side by side: the truth, each run's solution (one colour scale) and its log10 error."""
    true = _truth(problem)
    ax = _axes(problem)
    if problem.dim == 1:
        fig = make_subplots(
            rows=2,
            cols=1,
            shared_xaxes=True,
            row_heights=[0.6, 0.4],
            vertical_spacing=0.06,
            subplot_titles=("solution", "log10 |error| / max|u|"),
        )
        fig.add_trace(
            go.Scatter(
                x=ax[0], y=true, name="exact / reference", line={"color": "black", "width": 3}
            ),
            1,
            1,
        )
        for i, (label, r) in enumerate(runs):
            p = _pred(problem, r)
            c = PALETTE[i % len(PALETTE)]
            fig.add_trace(
                go.Scatter(x=ax[0], y=p, name=label, line={"color": c, "dash": "dash"}), 1, 1
            )
            fig.add_trace(
                go.Scatter(
                    x=ax[0],
                    y=_log_err(p, true),
                    name=f"{label} error",
                    line={"color": c},
                    showlegend=False,
                ),
                2,
                1,
            )
        fig.update_xaxes(title_text=problem.variables[0], row=2, col=1)
        fig.update_layout(height=height + 120, margin={"t": 40, "l": 50, "r": 20, "b": 40})
        return fig
    n = len(runs)
    titles = (
        ["exact / reference"]
        + [str(lbl) for lbl, _ in runs]
        + [""]
        + [f"{lbl}: log10 error" for lbl, _ in runs]
    )
    fig = make_subplots(
        rows=2, cols=n + 1, subplot_titles=titles, horizontal_spacing=0.04, vertical_spacing=0.1
    )
    zmin, zmax = float(true.min()), float(true.max())
    kw = {"x": ax[0], "y": ax[1]}
    fig.add_trace(
        go.Heatmap(z=true.T, zmin=zmin, zmax=zmax, colorscale="RdBu_r", showscale=False, **kw), 1, 1
    )
    for i, (_, r) in enumerate(runs):
        p = _pred(problem, r)
        fig.add_trace(
            go.Heatmap(
                z=p.T,
                zmin=zmin,
                zmax=zmax,
                colorscale="RdBu_r",
                showscale=i == n - 1,
                colorbar={"y": 0.78, "len": 0.45},
                **kw,
            ),
            1,
            i + 2,
        )
        fig.add_trace(
            go.Heatmap(
                z=_log_err(p, true).T,
                zmin=-8,
                zmax=0,
                colorscale="Viridis",
                showscale=i == n - 1,
                colorbar={"y": 0.22, "len": 0.45, "title": "log10"},
                **kw,
            ),
            2,
            i + 2,
        )
    fig.update_layout(
        height=height * 2 // 1 if n else height, margin={"t": 40, "l": 40, "r": 20, "b": 30}
    )
    return fig


def error_figure(problem, runs: Sequence[tuple[str, Any]]) -> go.Figure:
    """1-D: log10 pointwise error curves; 2-D: error heatmaps (shared scale)."""
    true = _truth(problem)
    ax = _axes(problem)
    if problem.dim == 1:
        fig = go.Figure()
        for i, (label, r) in enumerate(runs):
            fig.add_trace(
                go.Scatter(
                    x=ax[0],
                    y=np.abs(_pred(problem, r) - true),
                    name=label,
                    line={"color": PALETTE[i % len(PALETTE)]},
                )
            )
        fig.update_yaxes(type="log", title_text="|u − u_true|")
        fig.update_xaxes(title_text=problem.variables[0])
        fig.update_layout(title="pointwise error on the test grid", height=380)
        return fig
    fig = make_subplots(rows=1, cols=max(1, len(runs)), subplot_titles=[lbl for lbl, _ in runs])
    for i, (_, r) in enumerate(runs):
        fig.add_trace(
            go.Heatmap(
                z=_log_err(_pred(problem, r), true).T,
                x=ax[0],
                y=ax[1],
                zmin=-8,
                zmax=0,
                colorscale="Viridis",
                showscale=i == len(runs) - 1,
            ),
            1,
            i + 1,
        )
    fig.update_layout(title="log10 |error| / max|u|", height=380)
    return fig


def residual_figure(problem, runs: Sequence[tuple[str, Any]]) -> go.Figure:
    """|N[u] − f| at the collocation nodes (small residual + large error = aliasing)."""
    fig = go.Figure()
    if problem.dim == 1:
        for i, (label, r) in enumerate(runs):
            res = r.extras.get("residual_grid")
            if res is None:
                continue
            x = np.asarray(r.extras["x"], float)
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=np.abs(np.asarray(res, float)),
                    name=label,
                    line={"color": PALETTE[i % len(PALETTE)]},
                )
            )
        fig.update_yaxes(type="log", title_text="|N[u] − f|")
        fig.update_xaxes(title_text=problem.variables[0])
    else:
        with_res = [(lbl, r) for lbl, r in runs if r.extras.get("residual_grid") is not None]
        fig = make_subplots(
            rows=1, cols=max(1, len(with_res)), subplot_titles=[lbl for lbl, _ in with_res]
        )
        for i, (_, r) in enumerate(with_res):
            res = np.asarray(r.extras["residual_grid"], float)
            fig.add_trace(
                go.Heatmap(
                    z=np.log10(np.abs(res) + 1e-300).T,
                    x=r.extras["x"],
                    y=r.extras["y"],
                    colorscale="Magma",
                    showscale=i == len(with_res) - 1,
                ),
                1,
                i + 1,
            )
    fig.update_layout(title="PDE residual at the collocation points", height=380)
    return fig


def surface_figure(problem, result, what: str = "solution") -> go.Figure:
    """2-D: plotly 3-D surface of the solution or of the log10 error on the test grid."""
    ax = _axes(problem)
    p = _pred(problem, result)
    step = max(1, len(ax[0]) // 150)
    if what == "error":
        z = _log_err(p, _truth(problem))
        cs, title = "Viridis", "log10 |error|"
    else:
        z, cs, title = p, "RdBu_r", "solution"
    fig = go.Figure(
        go.Surface(z=z[::step, ::step].T, x=ax[0][::step], y=ax[1][::step], colorscale=cs)
    )
    fig.update_layout(
        title=title,
        height=520,
        scene={"xaxis_title": problem.variables[0], "yaxis_title": problem.variables[1]},
        margin={"t": 40, "l": 0, "r": 0, "b": 0},
    )
    return fig


def surface_scene(problem, result):
    """The same surface as a pyvista :class:`~workbench.viz.three_d.Scene` (vtk.js view, PNG export)."""
    from workbench.viz.three_d import Scene

    ax = _axes(problem)
    p = _pred(problem, result)
    scale = (ax[0][-1] - ax[0][0]) / max(1e-12, float(np.ptp(p))) * 0.3
    return Scene().surface(p.T, ax[0], ax[1], cmap="coolwarm", warp=scale, name="solution")


def spectrum_figure(result) -> go.Figure:
    """Learned GP-HM spectrum: weight w_q against frequency f_q per dimension (log weights)."""
    fig = go.Figure()
    for i, key in enumerate(k for k in result.extras if k.startswith("weights_")):
        name = key.split("_", 1)[1]
        w = np.asarray(result.extras[key], float)
        f = np.asarray(result.extras.get(f"freqs_{name}", np.arange(len(w))), float)
        fig.add_trace(
            go.Scatter(
                x=f,
                y=w,
                mode="markers",
                name=f"dimension {name}",
                marker={"size": 9, "color": PALETTE[i % len(PALETTE)]},
            )
        )
        for fq, wq in zip(f, w, strict=False):
            fig.add_shape(
                type="line",
                x0=fq,
                x1=fq,
                y0=1e-12,
                y1=wq,
                line={"color": PALETTE[i % len(PALETTE)], "width": 1},
            )
    fig.update_yaxes(type="log", title_text="weight w_q")
    fig.update_xaxes(title_text="frequency f_q (cycles per unit length)")
    fig.update_layout(title="learned spectral mixture (pruned components sink)", height=380)
    return fig


def metrics_rows(problem, runs: Sequence[tuple[str, Any]]) -> list[dict[str, Any]]:
    """One row per run: rel L2 (final), the GP's last Adam iterate before its exact finish, best
    (oracle) and its step, wall time, iterations."""
    from workbench.physics.pde.metrics import evaluate

    rows = []
    for label, r in runs:
        ev = evaluate(problem, r)
        rows.append(
            {
                "run": label,
                "rel_l2": ev.get("rel_l2"),
                "max_abs_err": ev.get("max_abs_err"),
                "rel_l2 Adam final (before the exact finish)": r.metrics.get("rel_l2_adam_final"),
                "rel_l2_best (oracle)": r.metrics.get("rel_l2_best"),
                "best step": r.metrics.get("rel_l2_best_step"),
                "wall_s": r.meta.get("wall_s", r.metrics.get("wall_s")),
                "iterations": r.iterations,
                "status": r.status,
            }
        )
    return rows
