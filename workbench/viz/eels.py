"""Figures and 3D scenes for EELS spectrum images (pure functions; no streamlit)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.physics.eels import metrics as EM
from workbench.physics.eels import spectra as SP
from workbench.physics.eels.synth import EDGES

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _heat(
    z: np.ndarray,
    colorscale: str = "Viridis",
    zmin=None,
    zmax=None,
    showscale=True,
    name="",
    colorbar_x=None,
    colorbar_title: str = "",
    colorbar_y=None,
) -> go.Heatmap:
    cb = {"len": 0.45, "title": {"text": colorbar_title or name or "value"}}
    if colorbar_x is not None:
        cb["x"] = colorbar_x
    if colorbar_y is not None:
        cb["y"] = colorbar_y
    return go.Heatmap(
        z=z,
        colorscale=colorscale,
        zmin=zmin,
        zmax=zmax,
        showscale=showscale,
        name=name,
        colorbar=cb,
    )


def _truth_contour(truth: np.ndarray, color: str = "white") -> go.Contour:
    return go.Contour(
        z=truth.astype(float),
        contours={"start": 0.5, "end": 0.5, "size": 1, "coloring": "none"},
        line={"color": color, "width": 1.5},
        showscale=False,
        hoverinfo="skip",
        showlegend=False,
        name="truth",
    )


def _line(z: Any) -> np.ndarray | None:
    """The values along a line scan (a map one pixel high or wide), else None: drawn as an
    image such a map is a one-pixel strip, so the figures draw it as a profile."""
    z = np.asarray(z)
    if z.ndim == 2 and min(z.shape) == 1 and max(z.shape) > 1:
        return z.ravel()
    return None


def _marks(where: Any, y: float, color: str, name: str) -> go.Scatter:
    """Positions along a line scan where ``where`` holds (truth, flagged), as a row of ticks."""
    idx = np.nonzero(np.asarray(where, bool).ravel())[0]
    return go.Scatter(
        x=idx,
        y=np.full(idx.size, y),
        mode="markers",
        marker={"symbol": "line-ns-open", "size": 10, "color": color},
        name=name,
        hoverinfo="skip",
    )


def _line_layout(fig: go.Figure, **kw: Any) -> None:
    fig.update_xaxes(title_text="position along the line (px)", **kw)


def navigator_map(
    problem: Any, mode: str = "intensity", window: tuple[float, float] | None = None
) -> np.ndarray:
    """The navigator image: summed counts over a window, or the Fe-L3 edge ratio."""
    e = np.asarray(problem.energy)
    if mode == "edge_ratio":
        return SP.edge_ratio_map(problem.data, e)
    if mode == "centroid":
        return SP.centroid_map(problem.data, e)
    lo, hi = window if window else (None, None)
    return SP.intensity_map(problem.data, e, lo, hi)


def navigator_figure(
    problem: Any,
    mode: str = "intensity",
    window=None,
    pixel: tuple[int, int] | None = None,
    mask: np.ndarray | None = None,
    show_truth: bool = True,
) -> go.Figure:
    z = navigator_map(problem, mode, window)
    label = {
        "intensity": "summed counts",
        "edge_ratio": "Fe-L3 / pre-edge ratio",
        "centroid": "Fe-L3 centroid (eV)",
    }.get(mode, mode)
    v = _line(z)
    if v is not None:
        fig = go.Figure(go.Scatter(x=np.arange(v.size), y=v, mode="lines", name=label))
        lo = float(np.nanmin(v)) if np.isfinite(v).any() else 0.0
        if show_truth and problem.truth is not None and problem.truth.any():
            fig.add_trace(_marks(problem.truth, lo, "#00a0c0", "truth"))
        if mask is not None:
            fig.add_trace(_marks(mask, lo, "#ff3030", "flagged"))
        if pixel is not None:
            fig.add_vline(x=max(pixel), line={"color": "red", "dash": "dot"})
        _line_layout(fig)
        fig.update_layout(
            title=f"Navigator: {label} (line scan)", yaxis_title=label, height=420, showlegend=False
        )
        return fig
    fig = go.Figure(
        _heat(z, "Greys_r" if mode == "intensity" else "Viridis", name=mode, colorbar_title=label)
    )
    if show_truth and problem.truth is not None and problem.truth.any():
        fig.add_trace(_truth_contour(problem.truth, "#00e5ff"))
    if mask is not None:
        fig.add_trace(_truth_contour(np.asarray(mask), "#ff3030"))
    if pixel is not None:
        fig.add_trace(
            go.Scatter(
                x=[pixel[1]],
                y=[pixel[0]],
                mode="markers",
                marker={"symbol": "x", "size": 12, "color": "red"},
                name="pixel",
            )
        )
    fig.update_layout(
        title=f"Navigator: {label}",
        yaxis={"autorange": "reversed", "scaleanchor": "x"},
        xaxis_title="x (px)",
        yaxis_title="y (px)",
        height=420,
        showlegend=False,
    )
    return fig


def spectrum_figure(
    energy: np.ndarray,
    spectrum: np.ndarray,
    recon_energy: np.ndarray | None = None,
    recons: Mapping[str, np.ndarray] | None = None,
    *,
    title: str = "spectrum",
    window: tuple[float, float] | None = (690.0, 730.0),
    edges: bool = True,
    reference: np.ndarray | None = None,
) -> go.Figure:
    """Observed spectrum with reconstructions (expected counts) and their residuals below."""
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.05
    )
    fig.add_trace(
        go.Scatter(
            x=energy, y=spectrum, mode="lines", name="observed", line={"color": "black", "width": 1}
        ),
        1,
        1,
    )
    if reference is not None:
        fig.add_trace(
            go.Scatter(
                x=energy,
                y=reference,
                mode="lines",
                name="bulk mean",
                line={"color": "gray", "dash": "dot"},
            ),
            1,
            1,
        )
    for i, (name, rec) in enumerate((recons or {}).items()):
        re = np.asarray(
            recon_energy if not isinstance(recon_energy, Mapping) else recon_energy[name]
        )
        col = PALETTE[(i + 1) % len(PALETTE)]
        fig.add_trace(
            go.Scatter(
                x=re, y=rec, mode="lines", name=f"{name} reconstruction", line={"color": col}
            ),
            1,
            1,
        )
        obs = np.interp(re, energy, spectrum)
        fig.add_trace(
            go.Scatter(
                x=re,
                y=obs - rec,
                mode="lines",
                name=f"{name} residual",
                line={"color": col},
                showlegend=False,
            ),
            2,
            1,
        )
    if window:
        fig.add_vrect(x0=window[0], x1=window[1], fillcolor="orange", opacity=0.08, line_width=0)
    if edges:
        # every edge in range gets its line; a label only where it is at least a tenth of the
        # range from the last labelled one (over a wide range the L and K edges of 400-950 eV
        # printed on top of each other)
        last = -np.inf
        span = float(energy[-1] - energy[0])
        for name, e0 in sorted(EDGES.items(), key=lambda kv: kv[1]):
            if energy[0] <= e0 <= energy[-1]:
                label = e0 - last >= 0.1 * span
                ann = {"annotation_text": name, "annotation_position": "top"} if label else {}
                fig.add_vline(x=e0, line={"color": "#888", "dash": "dash", "width": 1}, **ann)
                last = e0 if label else last
    fig.update_yaxes(title_text="counts", row=1, col=1)
    fig.update_yaxes(title_text="residual", row=2, col=1)
    fig.update_xaxes(title_text="energy loss (eV)", row=2, col=1)
    fig.update_layout(title=title, height=480, legend={"orientation": "h", "y": -0.2})
    return fig


def normalised_scores(scores: Mapping[str, np.ndarray], how: str = "rank") -> dict[str, np.ndarray]:
    """Bring score maps of different methods to one scale: percentile rank (0-1) or robust z."""
    out = {}
    for k, s in scores.items():
        s = np.asarray(s, float)
        if how == "rank":
            out[k] = EM.rank01(s).reshape(s.shape)
        elif how == "robust_z":
            med = np.median(s)
            mad = np.median(np.abs(s - med)) * 1.4826 + 1e-12
            out[k] = (s - med) / mad
        else:
            out[k] = s
    return out


def score_maps_figure(
    scores: Mapping[str, np.ndarray],
    truth: np.ndarray | None = None,
    how: str = "rank",
    title: str = "Anomaly scores",
) -> go.Figure:
    """Score maps side by side on one colour scale (percentile rank by default)."""
    s = normalised_scores(scores, how)
    label = {"rank": "percentile rank", "robust_z": "robust z", "raw": "raw score"}.get(how, how)
    has_truth = truth is not None and np.asarray(truth).any()
    if s and _line(next(iter(s.values()))) is not None:
        fig = go.Figure()
        for i, (name, z) in enumerate(s.items()):
            v = _line(z)
            fig.add_trace(
                go.Scatter(
                    x=np.arange(v.size),
                    y=v,
                    mode="lines",
                    name=name,
                    line={"color": PALETTE[i % len(PALETTE)]},
                )
            )
        if has_truth:
            lo = min(float(np.nanmin(_line(z))) for z in s.values())
            fig.add_trace(_marks(truth, lo, "#00a0c0", "truth"))
        _line_layout(fig)
        fig.update_layout(
            title=f"{title} ({label}{'; ticks = truth' if has_truth else ''})",
            yaxis_title=f"score ({label})",
            height=420,
            legend={"orientation": "h", "y": -0.25},
        )
        return fig
    n = max(1, len(s))
    fig = make_subplots(rows=1, cols=n, subplot_titles=list(s) or [""], horizontal_spacing=0.03)
    allv = np.concatenate([v.ravel() for v in s.values()]) if s else np.zeros(1)
    zmin, zmax = (
        (0.0, 1.0)
        if how == "rank"
        else (float(np.percentile(allv, 1)), float(np.percentile(allv, 99.5)))
    )
    for i, (name, z) in enumerate(s.items()):
        fig.add_trace(
            _heat(
                z,
                "Inferno",
                zmin,
                zmax,
                showscale=i == n - 1,
                name=name,
                colorbar_title=f"score ({label})",
            ),
            1,
            i + 1,
        )
        if truth is not None and truth.any():
            fig.add_trace(_truth_contour(truth, "#00e5ff"), 1, i + 1)
        fig.update_yaxes(
            autorange="reversed", scaleanchor=f"x{i + 1 if i else ''}", row=1, col=i + 1
        )
    # an uploaded image has no truth: no legend entry for an outline that is not drawn
    note = f"{label}; cyan = truth" if has_truth else label
    fig.update_layout(title=f"{title} ({note})", height=420, showlegend=False)
    return fig


def roc_pr_figure(scores: Mapping[str, np.ndarray], truth: np.ndarray) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("ROC", "Precision-recall"))
    for i, (name, s) in enumerate(scores.items()):
        col = PALETTE[i % len(PALETTE)]
        fpr, tpr, _ = EM.roc_curve(s, truth)
        auc = EM.roc_auc(s, truth)
        fig.add_trace(
            go.Scatter(
                x=fpr, y=tpr, mode="lines", name=f"{name} (AUC {auc:.3f})", line={"color": col}
            ),
            1,
            1,
        )
        p, r = EM.pr_curve(s, truth)
        ap = EM.average_precision(s, truth)
        fig.add_trace(
            go.Scatter(
                x=r,
                y=p,
                mode="lines",
                name=f"{name} (AP {ap:.3f})",
                line={"color": col, "dash": "dot"},
            ),
            1,
            2,
        )
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            line={"color": "#bbb", "dash": "dash"},
            showlegend=False,
        ),
        1,
        1,
    )
    fig.update_xaxes(title_text="false positive rate", row=1, col=1)
    fig.update_yaxes(title_text="true positive rate", row=1, col=1)
    fig.update_xaxes(title_text="recall", row=1, col=2)
    fig.update_yaxes(title_text="precision", row=1, col=2)
    fig.update_layout(height=400, legend={"orientation": "h", "y": -0.25})
    return fig


def histogram_figure(
    score: np.ndarray,
    threshold: float | None = None,
    truth: np.ndarray | None = None,
    gmm: Mapping[str, float] | None = None,
    title: str = "Score histogram",
) -> go.Figure:
    """Score histogram (class-wise when truth exists) with the threshold and the fitted mixture."""
    s = np.asarray(score, float).ravel()
    lo, hi = np.percentile(s, [0.5, 99.5])
    if hi <= lo:
        lo, hi = s.min(), s.max() + 1e-12
    bins = {"start": float(lo), "end": float(hi), "size": float(hi - lo) / 80}
    fig = go.Figure()
    if truth is not None and np.asarray(truth).any():
        t = np.asarray(truth, bool).ravel()
        fig.add_trace(
            go.Histogram(
                x=s[~t],
                xbins=bins,
                name="normal (truth)",
                marker_color="#1f77b4",
                opacity=0.7,
                histnorm="probability density",
            )
        )
        fig.add_trace(
            go.Histogram(
                x=s[t],
                xbins=bins,
                name="anomalous (truth)",
                marker_color="#d62728",
                opacity=0.7,
                histnorm="probability density",
            )
        )
        fig.update_layout(barmode="overlay")
    else:
        fig.add_trace(
            go.Histogram(
                x=s,
                xbins=bins,
                name="all pixels",
                marker_color="#555",
                histnorm="probability density",
            )
        )
    if gmm:
        x = np.linspace(lo, hi, 400)
        tot = np.zeros_like(x)
        for j in (1, 2):
            m, sd, w = gmm[f"m{j}"], gmm[f"s{j}"], gmm[f"w{j}"]
            tot += w * np.exp(-0.5 * ((x - m) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
        fig.add_trace(
            go.Scatter(
                x=x,
                y=tot,
                mode="lines",
                name="2-Gaussian mixture",
                line={"color": "black", "width": 1},
            )
        )
    if threshold is not None and np.isfinite(threshold):
        fig.add_vline(
            x=threshold,
            line={"color": "red", "width": 2},
            annotation_text=f"threshold {threshold:.3g}",
        )
    fig.update_layout(
        title=title,
        xaxis_title="score (higher = more anomalous)",
        yaxis_title="density",
        height=360,
    )
    return fig


def scree_figure(
    ratio: list[float] | np.ndarray, elbow: int | None = None, k: int | None = None
) -> go.Figure:
    r = np.asarray(ratio, float)
    x = np.arange(1, r.size + 1)
    fig = go.Figure(go.Scatter(x=x, y=r, mode="lines+markers", name="explained variance ratio"))
    if elbow:
        fig.add_vline(
            x=elbow, line={"color": "orange", "dash": "dash"}, annotation_text=f"elbow {elbow}"
        )
    if k:
        fig.add_vline(x=k + 0.5, line={"color": "red", "dash": "dot"}, annotation_text=f"k = {k}")
    fig.update_layout(
        title="Scree plot",
        xaxis_title="component",
        yaxis_title="explained variance ratio",
        yaxis_type="log",
        height=320,
    )
    return fig


def components_figure(components: np.ndarray, energy: np.ndarray, maps: np.ndarray) -> go.Figure:
    k = min(components.shape[0], maps.shape[0], 5)
    fig = make_subplots(
        rows=2, cols=k, subplot_titles=[f"PC {i + 1}" for i in range(k)], vertical_spacing=0.12
    )
    for i in range(k):
        fig.add_trace(
            go.Scatter(
                x=energy,
                y=components[i],
                mode="lines",
                showlegend=False,
                line={"color": PALETTE[i % len(PALETTE)]},
            ),
            1,
            i + 1,
        )
        fig.add_trace(_heat(maps[i], "RdBu", showscale=False), 2, i + 1)
        fig.update_yaxes(autorange="reversed", row=2, col=i + 1)
    fig.update_layout(title="Components (loadings over energy) and their score maps", height=480)
    return fig


def metrics_table(rows: Mapping[str, Mapping[str, float]]) -> go.Figure:
    names = list(rows)
    keys = sorted({k for r in rows.values() for k in r})
    cells = [[f"{rows[n].get(k, float('nan')):.4g}" for n in names] for k in keys]
    return go.Figure(
        go.Table(header={"values": ["method", *keys]}, cells={"values": [names, *cells]})
    )


def result_figure(problem: Any, result: Any) -> go.Figure:
    """Score map, thresholded mask, histogram with threshold, and ROC (truth) or navigator."""
    score = np.asarray(result.output, float)
    ex = result.extras or {}
    mask = np.asarray(ex.get("mask", score > np.nanmedian(score)))
    truth = getattr(problem, "truth", None)
    has_truth = truth is not None and np.asarray(truth).any() and not np.asarray(truth).all()
    fig = make_subplots(
        rows=2,
        cols=2,
        subplot_titles=(
            "score map",
            f"mask ({ex.get('threshold_method', 'otsu')}; "
            + ("1 = anomalous)" if _line(score) is not None else "black = anomalous)"),
            "score histogram",
            "ROC" if has_truth else "intensity",
        ),
        vertical_spacing=0.12,
        horizontal_spacing=0.12,
    )
    line = _line(score)
    if line is not None:
        pos = np.arange(line.size)
        fig.add_trace(go.Scatter(x=pos, y=line, mode="lines", name="score"), 1, 1)
        fig.add_trace(
            go.Scatter(x=pos, y=mask.ravel().astype(float), mode="lines", line_shape="hvh"), 1, 2
        )
        if has_truth:
            fig.add_trace(_marks(truth, float(np.nanmin(line)), "#00a0ff", "truth"), 1, 1)
            fig.add_trace(_marks(truth, 0.0, "#00a0ff", "truth"), 1, 2)
        for c in (1, 2):
            _line_layout(fig, row=1, col=c)
    else:
        fig.add_trace(
            _heat(
                score,
                "Inferno",
                showscale=True,
                colorbar_x=0.44,
                colorbar_y=0.78,
                colorbar_title="score",
            ),
            1,
            1,
        )
        fig.add_trace(_heat(mask.astype(float), "Greys", 0, 1, showscale=False), 1, 2)
        if has_truth:
            for c in (1, 2):
                fig.add_trace(_truth_contour(np.asarray(truth), "#00a0ff"), 1, c)
    if has_truth:
        t = np.asarray(truth, bool)
        fig.add_trace(
            go.Histogram(
                x=score[~t].ravel(),
                name="normal",
                marker_color="#1f77b4",
                opacity=0.7,
                histnorm="probability density",
            ),
            2,
            1,
        )
        fig.add_trace(
            go.Histogram(
                x=score[t].ravel(),
                name="anomalous",
                marker_color="#d62728",
                opacity=0.7,
                histnorm="probability density",
            ),
            2,
            1,
        )
        fpr, tpr, _ = EM.roc_curve(score, t)
        fig.add_trace(
            go.Scatter(x=fpr, y=tpr, mode="lines", name=f"AUC {EM.roc_auc(score, t):.3f}"), 2, 2
        )
        fig.update_xaxes(title_text="FPR", row=2, col=2)
        fig.update_yaxes(title_text="TPR", row=2, col=2)
    else:
        fig.add_trace(go.Histogram(x=score.ravel(), name="all", marker_color="#555"), 2, 1)
        inten = SP.intensity_map(problem.data, np.asarray(problem.energy))
        if line is not None:
            v = inten.ravel()
            fig.add_trace(go.Scatter(x=np.arange(v.size), y=v, mode="lines"), 2, 2)
            _line_layout(fig, row=2, col=2)
        else:
            fig.add_trace(_heat(inten, "Greys_r", showscale=False), 2, 2)
            fig.update_yaxes(autorange="reversed", row=2, col=2)
    thr = ex.get("threshold")
    if thr is not None:
        fig.add_vline(x=float(thr), line={"color": "red"}, row=2, col=1)
    fig.update_layout(
        barmode="overlay",
        height=720,
        title=f"{result.meta.get('solver', '')} anomaly score".strip(),
    )
    if line is None:
        for c in (1, 2):
            fig.update_yaxes(autorange="reversed", row=1, col=c)
    else:
        fig.update_layout(showlegend=False)
    return fig


def loss_figure(history: Mapping[str, list[float]]) -> go.Figure:
    """Training curves of a 3D-CVAE fit: the NLL per count in excess of the saturated model's
    (train, and validation when the fit held tiles out) and the KL divergence per tile."""
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("excess NLL per count", "KL per tile"),
        horizontal_spacing=0.18,
    )
    x = history.get("step", [])
    # a per-image fine-tuning holds no tiles out: its "val_nll" is the training NLL again
    held_out = history.get("val_nll") != history.get("nll")
    for key, col in (("nll", "#1f77b4"), ("val_nll", "#d62728")):
        if history.get(key) and (key == "nll" or held_out):
            fig.add_trace(
                go.Scatter(
                    x=x, y=history[key], mode="lines+markers", name=key, line={"color": col}
                ),
                1,
                1,
            )
    if history.get("kl"):
        fig.add_trace(
            go.Scatter(
                x=x, y=history["kl"], mode="lines+markers", name="kl", line={"color": "#2ca02c"}
            ),
            1,
            2,
        )
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_layout(height=320)
    return fig


def latent_figure(
    latent: np.ndarray,
    tiles: np.ndarray | None = None,
    truth: np.ndarray | None = None,
    patch: int = 16,
) -> go.Figure:
    """2-D projection (PCA) of the per-tile posterior means, coloured by the tile's anomalous
    fraction when a truth mask is known (the paper's robustness view: clean vs injected tiles)."""
    z = np.asarray(latent, float)
    z = z - z.mean(0)
    if z.shape[0] < 2 or z.shape[1] < 2:
        return go.Figure()
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    p = z @ vt[:2].T
    color = None
    if tiles is not None and truth is not None and len(tiles) == len(p):
        t = np.asarray(truth, float)
        color = [
            float(t[y : y + patch, x : x + patch].mean())
            if t[y : y + patch, x : x + patch].size
            else 0.0
            for y, x in np.asarray(tiles)
        ]
    marker = {"size": 6}
    if color is not None:
        marker.update(
            color=color,
            colorscale="Reds",
            cmin=0,
            cmax=max(max(color), 1e-6),
            showscale=True,
            colorbar={"title": "anomalous<br>fraction"},
            line={"width": 0.5, "color": "#444"},
        )
    fig = go.Figure(go.Scatter(x=p[:, 0], y=p[:, 1], mode="markers", marker=marker))
    fig.update_layout(
        title="Latent means of tiles (first two principal axes)",
        xaxis_title="PC1",
        yaxis_title="PC2",
        height=340,
    )
    return fig


def cube_scene(
    problem: Any,
    mask: np.ndarray | None = None,
    window: tuple[float, float] = (690.0, 730.0),
    max_channels: int = 96,
    max_pixels: int = 96,
):
    """The datacube (x, y, energy) as a volume of the edge-window signal, with the anomaly mask
    (truth, or a detected mask) extruded along energy as a red isosurface."""
    from workbench.viz.three_d import Scene

    e = np.asarray(problem.energy, float)
    sl = SP.window(e, *window) if e[0] <= window[0] and e[-1] >= window[1] else slice(None)
    cube = np.asarray(problem.data[..., sl], np.float32)
    ny, nx, ne = cube.shape
    fy, fx = max(1, int(np.ceil(ny / max_pixels))), max(1, int(np.ceil(nx / max_pixels)))
    fe = max(1, int(np.ceil(ne / max_channels)))
    cube = cube[: ny // fy * fy, : nx // fx * fx, : ne // fe * fe]
    cube = cube.reshape(ny // fy, fy, nx // fx, fx, ne // fe, fe).mean(axis=(1, 3, 5))
    tot = cube.sum(-1, keepdims=True)
    vol = cube / np.where(tot > 0, tot, 1)  # edge shape, thickness removed
    vol = np.transpose(vol, (1, 0, 2))  # (x, y, E)
    nxs, nys, nes = vol.shape
    sz = max(nxs, nys) / max(nes, 1)
    scene = Scene(spacing=(1.0, 1.0, sz), title="Spectrum image (x, y, energy)")
    scene.volume(vol, cmap="viridis", opacity="sigmoid", name="normalised counts")
    m = mask if mask is not None else getattr(problem, "truth", None)
    if m is not None and np.asarray(m).any():
        m = (
            np.asarray(m, float)[: ny // fy * fy, : nx // fx * fx]
            .reshape(ny // fy, fy, nx // fx, fx)
            .mean(axis=(1, 3))
        )
        ext = np.repeat(m.T[:, :, None], nes, axis=2)
        ext[:, :, 0] = ext[:, :, -1] = 0.0  # close the extruded discs at both energy ends
        ext[0], ext[-1], ext[:, 0], ext[:, -1] = 0.0, 0.0, 0.0, 0.0
        scene.isosurface(ext, 0.5, color="red", opacity=0.35, name="anomalies")
    return scene


def compare_figure(problem: Any, labelled: list) -> go.Figure:
    """Side-by-side score maps of several runs on one (percentile-rank) colour scale."""
    truth = getattr(problem, "truth", None)
    return score_maps_figure({label: np.asarray(r.output) for label, r in labelled}, truth)


def ratio_map_figure(est: np.ndarray, truth: np.ndarray | None = None) -> go.Figure:
    """Per-pixel best L3/L2 ratio factor of the reconstruction (1 = unchanged), truth outlined;
    coloured on a log scale so that x2 and x0.5 look alike."""
    if _line(est) is not None:
        return _profile_figure(
            est,
            truth,
            "L3/L2 ratio change per pixel<br><sup>best factor against the reconstruction</sup>",
            "ratio factor",
            log=True,
        )
    z = np.log2(np.clip(np.asarray(est, np.float64), 1e-6, None))
    ticks = np.array([0.25, 0.5, 1.0, 2.0, 4.0])
    fig = go.Figure(
        go.Heatmap(
            z=z,
            customdata=np.asarray(est, np.float64),
            hovertemplate="x %{x}, y %{y}: ratio x%{customdata:.2f}<extra></extra>",
            colorscale="RdBu_r",
            zmid=0,
            colorbar={"title": "ratio factor", "tickvals": np.log2(ticks), "ticktext": ticks},
        )
    )
    if truth is not None and np.asarray(truth).any():
        fig.add_trace(_truth_contour(np.asarray(truth), "#00a000"))
    fig.update_layout(
        title="L3/L2 ratio change per pixel<br><sup>best factor against the reconstruction</sup>",
        yaxis={"autorange": "reversed", "scaleanchor": "x"},
        height=380,
    )
    return fig


def shift_map_figure(est: np.ndarray, truth: np.ndarray | None = None) -> go.Figure:
    """Per-pixel best energy shift of the reconstruction (eV), truth outlined."""
    if _line(est) is not None:
        return _profile_figure(
            est,
            truth,
            "Edge shift per pixel (eV)<br><sup>best shift of the reconstruction</sup>",
            "shift (eV)",
        )
    fig = go.Figure(go.Heatmap(z=est, colorscale="RdBu_r", zmid=0, colorbar={"title": "eV"}))
    if truth is not None and np.asarray(truth).any():
        fig.add_trace(_truth_contour(np.asarray(truth), "#00a000"))
    fig.update_layout(
        # two short lines: drawn at the map's own width (viz.style.page_width, about 430 px)
        # a one-line title was cut off; and the edge is the user's window, not always Fe-L
        title="Edge shift per pixel (eV)<br><sup>best shift of the reconstruction</sup>",
        yaxis={"autorange": "reversed", "scaleanchor": "x"},
        height=380,
    )
    return fig


def _profile_figure(
    est: np.ndarray, truth: np.ndarray | None, title: str, ytitle: str, log: bool = False
) -> go.Figure:
    """A per-pixel estimate along a line scan, truth marked by ticks."""
    v = np.asarray(_line(est), np.float64)
    fig = go.Figure(go.Scatter(x=np.arange(v.size), y=v, mode="lines+markers", name=ytitle))
    if truth is not None and np.asarray(truth).any():
        lo = float(np.nanmin(v)) if np.isfinite(v).any() else 0.0
        fig.add_trace(_marks(truth, lo, "#00a000", "truth"))
    _line_layout(fig)
    fig.update_layout(title=title, yaxis_title=ytitle, height=380, showlegend=False)
    if log:
        fig.update_yaxes(type="log")
    return fig
