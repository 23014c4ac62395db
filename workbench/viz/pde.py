"""PDE figures: solution against the truth, pointwise error (log), residual, 3-D surfaces, the
learned GP spectrum, a metrics table, and the adaptive-sampling views of the PINNs (collocation
points per stage with a slider, the sampler's density, the residual histogram and its distance
to uniform, per-stage metrics, loss terms). Pure functions of (problem, results) → plotly figures."""

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
    "stages_figure",
    "density_figure",
    "residual_histogram_figure",
    "stage_metrics_figure",
    "loss_terms_figure",
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


def _field_axes(fig: go.Figure, problem, row: int | None = None, col: int | None = None) -> None:
    """Title a 2-D field's axes with the problem's variables and draw space at 1:1 (a unit
    square is square); a space-time field (a variable named ``t``) keeps free proportions."""
    v = problem.variables
    sel = {} if row is None else {"row": row, "col": col}
    fig.update_xaxes(title_text=v[0], **sel)
    if "t" in v:
        fig.update_yaxes(title_text=v[1], scaleanchor=False, **sel)
        return
    for ax in fig.select_xaxes(**sel):
        anchor = ax.plotly_name.replace("axis", "")
        fig.update_yaxes(title_text=v[1], scaleanchor=anchor, **sel)
        break


def _log_err(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    scale = max(float(np.abs(true).max()), 1e-300)
    return np.log10(np.maximum(np.abs(pred - true) / scale, 1e-17))


def _curve_err(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """|pred − true| for a log-scale curve, NaN (a gap) where it is at rounding level, 1e-15 of
    max|u|: exact boundary values otherwise dived to 1e-20 and squeezed the error's own range
    into the top of the plot."""
    err = np.abs(pred - true)
    return np.where(err > 1e-15 * max(float(np.abs(true).max()), 1e-300), err, np.nan)


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
                    y=np.log10(_curve_err(p, true) / max(float(np.abs(true).max()), 1e-300)),
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
                colorbar={"y": 0.78, "len": 0.45, "title": {"text": "u"}},
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
                colorbar={"y": 0.22, "len": 0.45, "title": {"text": "log10 |error| / max|u|"}},
                **kw,
            ),
            2,
            i + 2,
        )
    for r, c in [(1, 1)] + [(rr, i + 2) for i in range(n) for rr in (1, 2)]:
        _field_axes(fig, problem, r, c)
    fig.update_layout(
        height=height * 2 + 60 if n else height, margin={"t": 40, "l": 40, "r": 20, "b": 30}
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
                    y=_curve_err(_pred(problem, r), true),
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
                colorbar={"title": {"text": "log10 |error| / max|u|"}},
            ),
            1,
            i + 1,
        )
        _field_axes(fig, problem, 1, i + 1)
    fig.update_layout(title="log10 |error| / max|u|", height=420)
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
                    colorbar={"title": {"text": "log10 |N[u] − f|"}},
                ),
                1,
                i + 1,
            )
            _field_axes(fig, problem, 1, i + 1)
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
        go.Surface(
            z=z[::step, ::step].T,
            x=ax[0][::step],
            y=ax[1][::step],
            colorscale=cs,
            colorbar={"title": {"text": title}},
        )
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
                "suspect": "yes: " + r.extras.get("suspect_reasons", "")
                if r.metrics.get("suspect")
                else "",
            }
        )
    return rows


def _stage_sets(result) -> list[np.ndarray]:
    pts = np.asarray(result.extras["stage_points"], float)
    return [p[np.isfinite(p[:, 0])] for p in pts]


def stages_figure(problem, result, max_points: int = 4000) -> go.Figure:
    """Collocation points of each stage, one frame per stage with a slider (2-D: scatter over
    the box; 1-D: stage index against x)."""
    sets = _stage_sets(result)
    rng = np.random.default_rng(0)  # thinning for the browser only; never the global RNG

    def thin(p):
        return p if len(p) <= max_points else p[rng.choice(len(p), max_points, replace=False)]

    sets = [thin(p) for p in sets]
    (lo0, hi0) = problem.box[0]
    if problem.dim == 1:
        fig = go.Figure()
        for k, p in enumerate(sets):
            fig.add_trace(
                go.Scatter(
                    x=p[:, 0],
                    y=np.full(len(p), k + 1),
                    mode="markers",
                    marker={"size": 4, "color": PALETTE[k % len(PALETTE)]},
                    name=f"stage {k + 1} ({len(p)} points)",
                )
            )
        fig.update_xaxes(title_text=problem.variables[0], range=[lo0, hi0])
        fig.update_yaxes(title_text="stage")
        fig.update_layout(
            title=f"collocation points per stage ({result.extras.get('sampler', '')})", height=380
        )
        return fig

    def trace(k):
        p = sets[k]
        return go.Scatter(
            x=p[:, 0],
            y=p[:, 1],
            mode="markers",
            marker={"size": 3, "color": PALETTE[0], "opacity": 0.6},
            name=f"stage {k + 1}",
        )

    fig = go.Figure(data=[trace(len(sets) - 1)])
    fig.frames = [go.Frame(data=[trace(k)], name=str(k + 1)) for k in range(len(sets))]
    steps = [
        {
            "method": "animate",
            "label": str(k + 1),
            "args": [[str(k + 1)], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}],
        }
        for k in range(len(sets))
    ]
    (lo1, hi1) = problem.box[1]
    fig.update_layout(
        # short enough for a half-page column (the sampler and N, not a sentence)
        title=f"points per stage ({result.extras.get('sampler', '')}, N = {len(sets[-1])})",
        height=520,
        sliders=[{"active": len(sets) - 1, "currentvalue": {"prefix": "stage "}, "steps": steps}],
        # 1:1 and exactly the box: the panel shrinks instead of the ranges growing past the box
        xaxis={"range": [lo0, hi0], "title": problem.variables[0], "constrain": "domain"},
        yaxis={
            "range": [lo1, hi1],
            "title": problem.variables[1],
            "scaleanchor": "x",
            "constrain": "domain",
        },
    )
    return fig


def density_figure(problem, result) -> go.Figure:
    """The AAS sampler's density p_α after each stage (slider over stages)."""
    dens = np.asarray(result.extras["stage_density"], float)
    x = np.asarray(result.extras["density_x"], float)
    if problem.dim == 1:
        fig = go.Figure()
        for k, d in enumerate(dens):
            fig.add_trace(go.Scatter(x=x, y=d, name=f"after stage {k + 1}"))
        vol = problem.box[0][1] - problem.box[0][0]
        fig.add_hline(y=1 / vol, line_dash="dot", annotation_text="uniform")
        fig.update_layout(title="sampler density p_α", height=380)
        return fig
    y = np.asarray(result.extras["density_y"], float)

    def hm(k):
        return go.Heatmap(z=dens[k].T, x=x, y=y, colorscale="Viridis", colorbar={"title": "p_α"})

    fig = go.Figure(data=[hm(len(dens) - 1)])
    fig.frames = [go.Frame(data=[hm(k)], name=str(k + 1)) for k in range(len(dens))]
    steps = [
        {
            "method": "animate",
            "label": str(k + 1),
            "args": [[str(k + 1)], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}],
        }
        for k in range(len(dens))
    ]
    fig.update_layout(
        title="sampler density p_α after each stage",
        height=480,
        sliders=[
            {"active": len(dens) - 1, "currentvalue": {"prefix": "after stage "}, "steps": steps}
        ],
    )
    _field_axes(fig, problem)
    return fig


def residual_histogram_figure(runs: Sequence[tuple[str, Any]]) -> go.Figure:
    """Histogram of r²/mean r² on the check grid, one per run; a uniform residual is a spike at
    1. The legend gives W1(μ_r, U) and the coefficient of variation."""
    fig = go.Figure()
    for i, (label, r) in enumerate(runs):
        r2 = r.extras.get("residual_check")
        if r2 is None:
            continue
        r2 = np.asarray(r2, float).ravel()
        m = r2.mean()
        if not m > 0:
            continue
        z = np.log10(np.maximum(r2 / m, 1e-12))
        fig.add_trace(
            go.Histogram(
                x=z,
                name=f"{label}: W1 {r.metrics.get('residual_w1', float('nan')):.3g}, CV {r.metrics.get('residual_cv', float('nan')):.3g}",
                opacity=0.55,
                marker={"color": PALETTE[i % len(PALETTE)]},
                histnorm="probability",
                nbinsx=60,
            )
        )
    fig.add_vline(x=0.0, line_dash="dot", annotation_text="uniform residual")
    fig.update_layout(
        barmode="overlay",
        title="distribution of the squared residual (check grid)",
        xaxis_title="log10(r² / mean r²)",
        yaxis_title="fraction of grid points",
        height=380,
    )
    return fig


def stage_metrics_figure(runs: Sequence[tuple[str, Any]]) -> go.Figure:
    """Relative L2 and W1(μ_r, U) after each stage, one line per run."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["rel L2 (test grid)", "W1(μ_r, uniform)"])
    for i, (label, r) in enumerate(runs):
        if "stage_rel_l2" not in r.extras:
            continue
        e = np.asarray(r.extras["stage_rel_l2"], float)
        w = np.asarray(r.extras["stage_w1"], float)
        k = np.arange(1, len(e) + 1)
        c = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=k, y=e, name=label, line={"color": c}), 1, 1)
        fig.add_trace(go.Scatter(x=k, y=w, name=label, line={"color": c}, showlegend=False), 1, 2)
    fig.update_yaxes(type="log")
    fig.update_xaxes(title_text="stage")
    fig.update_layout(height=380, title="per stage")
    return fig


def loss_terms_figure(runs: Sequence[tuple[str, Any]]) -> go.Figure:
    """The loss and its residual and boundary terms against the step, one colour per run."""
    fig = go.Figure()
    for i, (label, r) in enumerate(runs):
        h = r.history
        if "loss_residual" not in h:
            continue
        c = PALETTE[i % len(PALETTE)]
        step = np.asarray(h["step"], float)
        for col, dash in (("loss", "solid"), ("loss_residual", "dash"), ("loss_boundary", "dot")):
            y = np.asarray(h.get(col, []), float)
            keep = np.isfinite(y) & (y > 0)
            if keep.any():
                fig.add_trace(
                    go.Scatter(
                        x=step[keep],
                        y=y[keep],
                        name=f"{label}: {col}",
                        line={"color": c, "dash": dash},
                    )
                )
    fig.update_yaxes(type="log", title_text="loss (residual normalised by the source's size)")
    fig.update_xaxes(title_text="step")
    fig.update_layout(title="loss terms", height=380)
    return fig
