"""Figures shared by every domain: convergence curves, side-by-side images, metric bars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip


def history_keys(histories: Sequence[Mapping[str, Sequence[float]]]) -> list[str]:
    """Numeric history columns present in at least one history (``step``/``time`` excluded)."""
    keys: list[str] = []
    for h in histories:
        for k, v in h.items():
            if k not in ("step", "time", "t") and k not in keys and len(v):
                keys.append(k)
    return keys


def convergence_figure(
    histories: Mapping[str, Mapping[str, Sequence[float]]],
    y: str,
    x: str = "step",
    log_y: bool = True,
    title: str | None = None,
) -> go.Figure:
    """Overlay one history column of several runs: ``{label: history}`` → line per run.

    ``x`` is ``"step"`` or ``"time"`` (seconds); rows with non-positive values are dropped on a
    log axis rather than plotted as gaps.
    """
    fig = go.Figure()
    for i, (label, h) in enumerate(histories.items()):
        if y not in h or not len(h[y]):
            continue
        yy = np.asarray(h[y], dtype=float)
        xx = np.asarray(h.get(x, h.get("t", np.arange(1, len(yy) + 1))), dtype=float)
        if xx.shape != yy.shape:
            xx = np.arange(1, len(yy) + 1, dtype=float)
        keep = np.isfinite(yy) & ((yy > 0) if log_y else True)
        fig.add_trace(
            go.Scatter(
                x=xx[keep],
                y=yy[keep],
                mode="lines+markers" if keep.sum() < 60 else "lines",
                name=label,
                line={"color": PALETTE[i % len(PALETTE)]},
            )
        )
    fig.update_layout(
        title=title or f"{y} against {'seconds' if x in ('time', 't') else 'iterations'}",
        xaxis_title="wall time (s)" if x in ("time", "t") else "iteration",
        yaxis_title=y,
        template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
    )
    if log_y:
        fig.update_yaxes(type="log", exponentformat="power")
    return fig


def heatmap(
    z: np.ndarray,
    title: str = "",
    colorscale: str = "Viridis",
    zmin: float | None = None,
    zmax: float | None = None,
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
    equal_aspect: bool = True,
    colorbar_title: str = "value",
) -> go.Figure:
    """One image or map, rows down, on a titled colour bar (1:1 aspect unless ``equal_aspect``
    is false, for maps whose axes carry different quantities)."""
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=x,
            y=y,
            colorscale=colorscale,
            zmin=zmin,
            zmax=zmax,
            colorbar={"len": 0.8, "title": {"text": colorbar_title}},
        )
    )
    fig.update_layout(
        title=title, template="plotly_white", margin={"l": 40, "r": 20, "t": 50, "b": 40}
    )
    if equal_aspect:
        fig.update_yaxes(scaleanchor="x", autorange="reversed")
    else:
        fig.update_yaxes(scaleanchor=False)
    return fig


def side_by_side(
    images: Mapping[str, np.ndarray],
    colorscale: str = "Gray",
    zmin: float | None = None,
    zmax: float | None = None,
    title: str = "",
    cols: int | None = None,
    shared_scale: bool = True,
    colorbar_title: str = "value",
) -> go.Figure:
    """Images in a grid of panels with one colour scale (min/max over all panels by default)."""
    names = list(images)
    n = len(names)
    cols = cols or min(n, 4)
    rows = int(np.ceil(n / cols)) if n else 1
    if shared_scale and n:
        finite = [np.asarray(v)[np.isfinite(v)] for v in images.values()]
        finite = [f for f in finite if f.size]
        if finite:
            zmin = float(min(f.min() for f in finite)) if zmin is None else zmin
            zmax = float(max(f.max() for f in finite)) if zmax is None else zmax
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=names, horizontal_spacing=0.03, vertical_spacing=0.08
    )
    for i, name in enumerate(names):
        r, c = divmod(i, cols)
        fig.add_trace(
            go.Heatmap(
                z=np.asarray(images[name]),
                colorscale=colorscale,
                zmin=zmin,
                zmax=zmax,
                showscale=(i == n - 1),
                colorbar={"title": {"text": colorbar_title}},
            ),
            row=r + 1,
            col=c + 1,
        )
        axis = "" if i == 0 else str(i + 1)
        fig.update_yaxes(scaleanchor=f"x{axis}", autorange="reversed", row=r + 1, col=c + 1)
    fig.update_layout(
        title=title,
        template="plotly_white",
        height=340 * rows + 60,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
    )
    return fig


def line_overlay(
    curves: Mapping[str, np.ndarray],
    x: np.ndarray | None = None,
    title: str = "",
    y_title: str = "",
) -> go.Figure:
    """1-D outputs of several runs on one axis."""
    fig = go.Figure()
    for i, (name, yv) in enumerate(curves.items()):
        yv = np.asarray(yv).ravel()
        xv = x if x is not None and len(x) == len(yv) else np.arange(len(yv))
        fig.add_trace(
            go.Scatter(
                x=xv, y=yv, name=name, mode="lines", line={"color": PALETTE[i % len(PALETTE)]}
            )
        )
    fig.update_layout(title=title, yaxis_title=y_title, template="plotly_white")
    return fig


def _is_vector(v: Any) -> bool:
    """A short list of numbers (a vector metric such as a position in mm)."""
    return (
        isinstance(v, (list, tuple))
        and 0 < len(v) <= 16
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
    )


def metrics_rows(
    runs: Sequence[tuple[Any, Any]], keys: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """One row per run: solver, status, iterations, wall time and every metric (vectors as text)."""
    rows = []
    for info, result in runs:
        row: dict[str, Any] = {
            "run": info.title,
            "solver": info.solver,
            "status": info.status,
            "iterations": info.iterations,
            "wall_s": round(info.wall_s, 4) if info.wall_s is not None else None,
        }
        for k, v in (result.metrics if result is not None else info.metrics).items():
            if keys is not None and k not in keys:
                continue
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                row[k] = v
            elif _is_vector(v):
                row[k] = "(" + ", ".join(f"{float(x):.4g}" for x in v) + ")"
        rows.append(row)
    return rows


def to_2d(output: np.ndarray) -> np.ndarray | None:
    """A 2-D view of an output for side-by-side panels (magnitude, middle slice), or None."""
    a = np.asarray(output)
    if np.iscomplexobj(a):
        a = np.abs(a)
    while a.ndim > 2:
        a = a[a.shape[0] // 2]
    return a if a.ndim == 2 else None


def compare_figure(
    labels_outputs: Mapping[str, np.ndarray], reference: np.ndarray | None = None
) -> go.Figure:
    """Generic side-by-side of several runs' outputs, with error maps when a reference exists."""
    panels = {k: to_2d(v) for k, v in labels_outputs.items()}
    panels = {k: v for k, v in panels.items() if v is not None}
    if not panels:
        return line_overlay({k: np.asarray(v) for k, v in labels_outputs.items()}, title="outputs")
    ref2 = to_2d(reference) if reference is not None else None
    if ref2 is None:
        return side_by_side(panels, colorscale="Viridis", title="outputs (one colour scale)")
    errors = {f"|{k} − ref|": np.abs(v - ref2) for k, v in panels.items() if v.shape == ref2.shape}
    images = {"reference": ref2, **panels}
    fig_cols = max(len(images), len(errors))
    fig = make_subplots(
        rows=2,
        cols=fig_cols,
        subplot_titles=list(images) + [""] * (fig_cols - len(images)) + list(errors),
    )
    lo = min(float(np.nanmin(v)) for v in images.values())
    hi = max(float(np.nanmax(v)) for v in images.values())
    emax = max((float(np.nanmax(v)) for v in errors.values()), default=1.0)
    for i, v in enumerate(images.values()):
        fig.add_trace(
            go.Heatmap(
                z=v,
                colorscale="Gray",
                zmin=lo,
                zmax=hi,
                showscale=i == len(images) - 1,
                colorbar={"title": {"text": "value"}, "len": 0.42, "y": 0.79},
            ),
            row=1,
            col=i + 1,
        )
    for i, v in enumerate(errors.values()):
        fig.add_trace(
            go.Heatmap(
                z=v,
                colorscale="Inferno",
                zmin=0,
                zmax=emax,
                showscale=i == len(errors) - 1,
                colorbar={"title": {"text": "|error|"}, "len": 0.42, "y": 0.21},
            ),
            row=2,
            col=i + 1,
        )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        height=700, template="plotly_white", margin={"l": 10, "r": 10, "t": 40, "b": 10}
    )
    return fig
