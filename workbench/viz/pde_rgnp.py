"""Figures of the RGNP solvers: the predicted field with its ±2σ band against the reference, the
inverse problem (observations, implied field, corner plot of the parameter posterior) and the
calibration of the bands. Pure functions of (problem, result) → plotly figures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.viz.common import PALETTE

__all__ = [
    "reference_on",
    "field_band_figure",
    "inverse_figure",
    "corner_figure",
    "calibration_curve",
    "calibration_figure",
]


def reference_on(problem, x: np.ndarray) -> np.ndarray | None:
    """The exact solution at x, or the 201-node reference solution interpolated there."""
    from workbench.physics.pde.compiled import compile_problem

    comp = compile_problem(problem)
    if comp.exact is not None:
        return comp.exact(x)
    if problem.dim != 1:
        return None
    from workbench.physics.pde.reference import solve_reference

    ref = solve_reference(problem, n=200)
    return np.interp(x, ref.axes[0], ref.u)


def _band(fig, x, mean, std, name, color, row=None, col=None) -> None:
    kw = {} if row is None else {"row": row, "col": col}
    fig.add_trace(
        go.Scatter(
            x=np.concatenate([x, x[::-1]]),
            y=np.concatenate([mean + 2 * std, (mean - 2 * std)[::-1]]),
            fill="toself",
            fillcolor="rgba(31,119,180,0.2)",
            line={"width": 0},
            name=f"{name} ±2σ",
            hoverinfo="skip",
        ),
        **kw,
    )
    fig.add_trace(
        go.Scatter(x=x, y=mean, mode="lines", line={"color": color}, name=f"{name} mean"), **kw
    )


def field_band_figure(problem, result, reference: np.ndarray | None = None) -> go.Figure:
    """Mean field with the ±2σ band against the reference (top) and |error| against 2σ (bottom)."""
    x = np.asarray(result.extras["x"], float)
    mean = np.asarray(result.output, float)
    std = np.asarray(result.extras["std"], float)
    ref = reference_on(problem, x) if reference is None else reference
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.65, 0.35],
        subplot_titles=("u: RGNP mean ± 2σ and reference", "|error| and 2σ"),
    )
    _band(fig, x, mean, std, "RGNP", PALETTE[0], 1, 1)
    if ref is not None:
        fig.add_trace(
            go.Scatter(
                x=x, y=ref, mode="lines", line={"dash": "dash", "color": "black"}, name="reference"
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(x=x, y=np.abs(mean - ref), mode="lines", name="|mean − reference|"),
            row=2,
            col=1,
        )
    fig.add_trace(go.Scatter(x=x, y=2 * std, mode="lines", name="2σ"), row=2, col=1)
    fig.update_yaxes(type="log", row=2, col=1)
    fig.update_layout(height=520, margin={"l": 40, "r": 10, "t": 40, "b": 30})
    return fig


def inverse_figure(problem, result, reference: np.ndarray | None = None) -> go.Figure:
    """Observations, the field implied by the parameter posterior (mean ± 2σ) and the reference."""
    x = np.asarray(result.extras["x"], float)
    fig = go.Figure()
    _band(
        fig,
        x,
        np.asarray(result.output, float),
        np.asarray(result.extras["std"]),
        "implied",
        PALETTE[0],
    )
    ref = reference_on(problem, x) if reference is None else reference
    if ref is not None:
        fig.add_trace(
            go.Scatter(
                x=x, y=ref, mode="lines", line={"dash": "dash", "color": "black"}, name="reference"
            )
        )
    fig.add_trace(
        go.Scatter(
            x=result.extras["obs_x"],
            y=result.extras["obs_u"],
            mode="markers",
            marker={"color": "crimson", "size": 7},
            name="observations",
        )
    )
    fig.update_layout(
        title="Observations and the field implied by q(z | u)",
        height=420,
        xaxis_title="x",
        yaxis_title="u",
    )
    return fig


def corner_figure(result, max_points: int = 500) -> go.Figure:
    """Corner plot of the posterior samples of z: histograms on the diagonal, pairwise scatter
    below it, the true values (when known) as red lines and stars."""
    Z = np.asarray(result.extras["z_samples"], float)[:max_points]
    names = [str(n) for n in result.extras["z_names"]]
    truth = result.extras.get("z_true")
    k = Z.shape[1]
    lo, hi = Z.min(0), Z.max(0)
    if truth is not None:
        lo, hi = np.minimum(lo, np.asarray(truth, float)), np.maximum(hi, np.asarray(truth, float))
    pad = 0.05 * np.maximum(hi - lo, 1e-12)
    ranges = [[float(a), float(b)] for a, b in zip(lo - pad, hi + pad, strict=True)]
    fig = make_subplots(rows=k, cols=k, horizontal_spacing=0.02, vertical_spacing=0.02)
    for i in range(k):
        for j in range(k):
            if j > i:
                continue
            if i == j:
                fig.add_trace(
                    go.Histogram(x=Z[:, i], nbinsx=30, marker_color=PALETTE[0], showlegend=False),
                    row=i + 1,
                    col=j + 1,
                )
                if truth is not None:
                    fig.add_vline(x=float(truth[i]), line_color="red", row=i + 1, col=j + 1)
            else:
                fig.add_trace(
                    go.Scatter(
                        x=Z[:, j],
                        y=Z[:, i],
                        mode="markers",
                        marker={"size": 3, "color": PALETTE[0], "opacity": 0.5},
                        showlegend=False,
                    ),
                    row=i + 1,
                    col=j + 1,
                )
                if truth is not None:
                    fig.add_trace(
                        go.Scatter(
                            x=[float(truth[j])],
                            y=[float(truth[i])],
                            mode="markers",
                            marker={"symbol": "star", "size": 10, "color": "red"},
                            showlegend=False,
                        ),
                        row=i + 1,
                        col=j + 1,
                    )
            # one range per parameter down its column and along its row, so the panels line up
            fig.update_xaxes(range=ranges[j], row=i + 1, col=j + 1)
            if i != j:
                fig.update_yaxes(range=ranges[i], row=i + 1, col=j + 1)
            if i == k - 1:
                fig.update_xaxes(title_text=names[j], row=i + 1, col=j + 1)
            if j == 0 and i > 0:
                fig.update_yaxes(title_text=names[i], row=i + 1, col=j + 1)
    fig.update_layout(height=140 * k + 80, title="Posterior q(z | u): samples")
    return fig


def calibration_curve(
    mean: np.ndarray, std: np.ndarray, truth: np.ndarray, levels: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Empirical coverage of central Gaussian intervals: for each nominal level p, the fraction
    of |mean − truth| ≤ Φ⁻¹((1 + p)/2)·std. Points with std = 0 (exact boundary data) are left out."""
    from scipy.stats import norm

    levels = np.asarray(levels if levels is not None else np.linspace(0.05, 0.99, 20), float)
    mean, std, truth = (np.ravel(np.asarray(a, float)) for a in (mean, std, truth))
    keep = std > 0
    err = np.abs(mean - truth)[keep]
    s = std[keep]
    emp = np.array([np.mean(err <= norm.ppf(0.5 + p / 2) * s) for p in levels])
    return levels, emp


def calibration_figure(curves: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> go.Figure:
    """Empirical against nominal coverage, one line per (name, levels, empirical)."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"}, name="ideal"
        )
    )
    for i, (name, lv, emp) in enumerate(curves):
        fig.add_trace(
            go.Scatter(
                x=lv,
                y=emp,
                mode="lines+markers",
                name=name,
                line={"color": PALETTE[i % len(PALETTE)]},
            )
        )
    fig.update_layout(
        title="Calibration: coverage of central intervals",
        xaxis_title="nominal coverage",
        yaxis_title="empirical coverage",
        height=420,
        xaxis_range=[0, 1],
        yaxis_range=[0, 1.02],
    )
    return fig
