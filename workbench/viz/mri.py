"""MRI views: plotly figures (images, error maps, k-space, masks, coils) and a 3D scene.

Pure functions of arrays/problems/results; nothing here imports streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.viz.common import heatmap, side_by_side


def _slice(a: np.ndarray, i: int | None = None) -> np.ndarray:
    a = np.asarray(a)
    while a.ndim > 2:
        a = a[a.shape[0] // 2 if i is None else min(i, a.shape[0] - 1)]
    return a


def _layout(fig: go.Figure, height: int = 360) -> go.Figure:
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        template="plotly_white", height=height, margin={"l": 10, "r": 10, "t": 60, "b": 10}
    )
    return fig


def image_figure(img: np.ndarray, title: str = "", zmax: float | None = None) -> go.Figure:
    """One magnitude image in grey."""
    return heatmap(
        np.asarray(img), title=title, colorscale="Gray", zmin=0, zmax=zmax, colorbar_title="|x|"
    )


def uncertainty_figure(
    mean: np.ndarray, std: np.ndarray, slice_index: int | None = None, n_samples: int = 0
) -> go.Figure:
    """Posterior mean | pixel-wise standard deviation of a sampler's magnitude samples."""
    m, s = _slice(mean, slice_index), _slice(std, slice_index)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            "posterior mean",
            f"pixel-wise std ({n_samples} samples)" if n_samples else "pixel-wise std",
        ),
        horizontal_spacing=0.08,
    )
    fig.add_trace(
        go.Heatmap(z=m, colorscale="Gray", zmin=0, colorbar={"x": 0.44, "len": 0.8}), 1, 1
    )
    fig.add_trace(
        go.Heatmap(z=s, colorscale="Inferno", zmin=0, colorbar={"x": 1.0, "len": 0.8}), 1, 2
    )
    for i in (1, 2):
        fig.update_yaxes(scaleanchor=f"x{'' if i == 1 else i}", row=1, col=i)
    return _layout(fig, 380)


def result_figure(problem, result, slice_index: int | None = None) -> go.Figure:
    """Reconstruction | reference | |error| for one slice (the middle one by default)."""
    from workbench.physics.mri.metrics import center_crop

    out = _slice(result.output, slice_index)
    if problem.reference is None:
        return _layout(image_figure(out, title="reconstruction"))
    ref = _slice(problem.reference, slice_index)
    out = center_crop(out, ref.shape)
    m = result.metrics or {}
    title = "fastMRI convention vs " + (problem.reference_kind or "reference")
    if "psnr" in m:
        title += f": PSNR {m['psnr']:.2f} dB, SSIM {m.get('ssim', float('nan')):.3f}, NMSE {m.get('nmse', float('nan')):.4f}"
    vmax = float(ref.max())
    err = np.abs(out - ref) if out.shape == ref.shape else np.zeros_like(ref)
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=("reconstruction", "reference", "|error| (×5)"),
        horizontal_spacing=0.02,
    )
    fig.add_trace(go.Heatmap(z=out, colorscale="Gray", zmin=0, zmax=vmax, showscale=False), 1, 1)
    fig.add_trace(go.Heatmap(z=ref, colorscale="Gray", zmin=0, zmax=vmax, showscale=False), 1, 2)
    fig.add_trace(
        go.Heatmap(
            z=err,
            colorscale="Inferno",
            zmin=0,
            zmax=vmax / 5,
            colorbar={"len": 0.8, "title": {"text": "|error|"}},
        ),
        1,
        3,
    )
    for i in (1, 2, 3):
        fig.update_yaxes(scaleanchor=f"x{'' if i == 1 else i}", row=1, col=i)
    fig.update_layout(title=title)
    return _layout(fig, 400)


def comparison_figure(
    outputs: Mapping[str, np.ndarray],
    reference: np.ndarray | None = None,
    slice_index: int | None = None,
    error_gain: float = 5.0,
) -> go.Figure:
    """Several reconstructions in columns with one grey scale; error maps (one scale) below."""
    from workbench.physics.mri.metrics import center_crop

    panels = {k: _slice(v, slice_index) for k, v in outputs.items()}
    if reference is None:
        return side_by_side(
            panels,
            colorscale="Gray",
            zmin=0,
            title="reconstructions (one colour scale)",
            colorbar_title="|x|",
        )
    ref = _slice(reference, slice_index)
    panels = {k: center_crop(v, ref.shape) for k, v in panels.items()}
    images = {"reference": ref, **panels}
    n = len(images)
    vmax = float(ref.max())
    fig = make_subplots(
        rows=2,
        cols=n,
        subplot_titles=list(images) + [""] + [f"|{k} − ref|" for k in panels],
        horizontal_spacing=0.01,
        vertical_spacing=0.06,
    )
    for i, v in enumerate(images.values()):
        fig.add_trace(
            go.Heatmap(
                z=v,
                colorscale="Gray",
                zmin=0,
                zmax=vmax,
                showscale=i == n - 1,
                colorbar={"len": 0.4, "y": 0.78, "title": {"text": "|x|"}},
            ),
            1,
            i + 1,
        )
    for i, v in enumerate(panels.values()):
        e = np.abs(v - ref) if v.shape == ref.shape else np.zeros_like(ref)
        fig.add_trace(
            go.Heatmap(
                z=e,
                colorscale="Inferno",
                zmin=0,
                zmax=vmax / error_gain,
                showscale=i == len(panels) - 1,
                colorbar={"len": 0.4, "y": 0.22, "title": {"text": "|error|"}},
            ),
            2,
            i + 2,
        )
    fig.update_layout(
        title=f"one grey scale [0, {vmax:.3g}]; error maps on [0, {vmax / error_gain:.3g}]"
    )
    return _layout(fig, 2 * 260 + 60)


def kspace_figure(
    kspace: np.ndarray,
    mask: np.ndarray | None = None,
    coil: int | None = None,
    title: str = "k-space",
) -> go.Figure:
    """log(1 + |k|) (one coil, or the RSS over coils) with the sampling mask overlaid in colour."""
    k = np.asarray(kspace)
    while k.ndim > 3:
        k = k[k.shape[0] // 2]
    if k.ndim == 3:
        k = k[coil] if coil is not None else np.sqrt((np.abs(k) ** 2).sum(0))
    mag = np.log1p(np.abs(k) / (np.abs(k).max() or 1.0) * 1e4)
    fig = go.Figure(go.Heatmap(z=mag, colorscale="Gray", showscale=False, name="log |k|"))
    if mask is not None:
        m = _slice(np.asarray(mask, float))
        if m.shape == mag.shape:
            fig.add_trace(
                go.Heatmap(
                    z=np.where(m > 0, 1.0, np.nan),
                    colorscale=[[0, "rgba(255,80,0,0.35)"], [1, "rgba(255,80,0,0.35)"]],
                    showscale=False,
                    name="sampled",
                    hoverinfo="skip",
                )
            )
    fig.update_layout(title=title + (" (orange: sampled)" if mask is not None else ""))
    fig.update_yaxes(scaleanchor="x", title="k_y (row)")
    fig.update_xaxes(title="k_x (column)")
    return _layout(fig, 380)


def mask_figure(mask: np.ndarray, title: str | None = None) -> go.Figure:
    """The mask as an image and its sampling density along W, titled with R and the sampled fraction."""
    m = _slice(np.asarray(mask, float))
    frac = float(m.mean())
    reff = 1 / frac if frac else float("inf")
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.5, 0.5],
        subplot_titles=("mask (white: sampled)", "sampling density along W"),
    )
    fig.add_trace(go.Heatmap(z=m, colorscale="Gray", zmin=0, zmax=1, showscale=False), 1, 1)
    fig.add_trace(
        go.Scatter(y=m.mean(0), mode="lines", line={"shape": "hv"}, showlegend=False), 1, 2
    )
    fig.update_yaxes(scaleanchor="x", autorange="reversed", title="k_y (row)", row=1, col=1)
    fig.update_xaxes(title="k_x (column)", row=1, col=1)
    fig.update_yaxes(range=[0, 1.05], title="fraction", row=1, col=2)
    fig.update_xaxes(title="k_x (column)", row=1, col=2)
    fig.update_layout(
        title=title or f"effective R = {reff:.2f}, {100 * frac:.1f}% sampled",
        template="plotly_white",
        height=340,
        margin={"l": 10, "r": 10, "t": 60, "b": 30},
    )
    return fig


def coil_figure(
    arrays: np.ndarray, part: str = "magnitude", title: str = "", max_coils: int = 16
) -> go.Figure:
    """A grid of coil maps or coil images (C, H, W): ``part`` = magnitude | phase."""
    a = np.asarray(arrays)
    while a.ndim > 3:
        a = a[a.shape[0] // 2]
    a = a[:max_coils]
    if part == "phase":
        panels = {f"∠ coil {i}": np.angle(c) for i, c in enumerate(a)}
        return side_by_side(
            panels,
            colorscale="Twilight",
            zmin=-np.pi,
            zmax=np.pi,
            title=title or "phase",
            cols=min(4, len(panels)),
            colorbar_title="phase (rad)",
        )
    panels = {f"| coil {i} |": np.abs(c) for i, c in enumerate(a)}
    return side_by_side(
        panels,
        colorscale="Gray",
        zmin=0,
        title=title or "magnitude",
        cols=min(4, len(panels)),
        colorbar_title="magnitude",
    )


def sum_of_squares_figure(maps: np.ndarray) -> go.Figure:
    """Σ_c |S_c|² (1 where maps are defined, 0 outside for ESPIRiT)."""
    m = np.asarray(maps)
    while m.ndim > 3:
        m = m[m.shape[0] // 2]
    return _layout(
        heatmap(
            (np.abs(m) ** 2).sum(0),
            title="Σ|S_c|²",
            colorscale="Viridis",
            zmin=0,
            zmax=1.05,
            colorbar_title="Σ|S_c|²",
        ),
        340,
    )


def volume_scene(volume: np.ndarray, spacing_slices: float = 1.0, name: str = "reconstruction"):
    """A 3D scene of a magnitude volume (slices, H, W): three orthogonal slices.

    The slice axis is repeated ``spacing_slices`` times so that thin stacks stay visible.
    """
    from workbench.viz.three_d import Scene

    v = np.asarray(volume, np.float32)
    if v.ndim == 2:
        v = v[None]
    rep = max(1, int(round(spacing_slices)))
    if rep > 1:
        v = np.repeat(v, rep, axis=0)
    v = np.transpose(v, (2, 1, 0))  # (W, H, S): x, y, z
    vmax = float(v.max()) or 1.0
    return Scene().slices(v, cmap="gray", clim=(0.0, vmax), name=name)


def compare_figure(problem, labelled) -> go.Figure:
    """The Compare page's view: runs side by side with error maps against the reference."""
    return comparison_figure({label: r.output for label, r in labelled}, problem.reference)
