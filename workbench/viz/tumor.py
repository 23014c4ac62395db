"""Tumour views: orthogonal slices with overlays, the 3D scene, parameter table, Dice vs time, DB summary.

Pure functions: they return plotly figures, :class:`~workbench.viz.three_d.Scene` objects or rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

VIEWS = ("axial", "coronal", "sagittal")
COLORS = {"wt": "#f5c518", "tc": "#d62728", "pred_wt": "#2ca02c", "pred_tc": "#1f77b4"}


def _t1(problem) -> np.ndarray:
    from workbench.physics.tumor.atlas import load_atlas

    a = load_atlas(int(problem.grid_n), with_t1=True)
    return a.t1 if a.t1 is not None else (a.gm + a.wm)


def centre(problem) -> tuple[int, int, int]:
    m = problem.tc if problem.tc.any() else problem.wt
    if not m.any():
        n = problem.grid_n
        return (n // 2, n // 2, n // 2)
    return tuple(int(round(v)) for v in np.argwhere(m).mean(0))


def _cut(vol: np.ndarray, view: str, idx: int) -> np.ndarray:
    """2-D cut, transposed so that the image's vertical axis is superior/anterior."""
    if view == "axial":
        s = vol[:, :, idx]
    elif view == "coronal":
        s = vol[:, idx, :]
    else:
        s = vol[idx, :, :]
    return np.asarray(s, dtype=np.float32).T


#: (horizontal, vertical) working-grid axes of each view's image, as _cut lays it out
_VIEW_AXES = {"axial": (0, 1), "coronal": (0, 2), "sagittal": (1, 2)}


def _mm(problem, view: str) -> dict[str, float]:
    """Heatmap/contour placement of a cut in MNI world mm (``x0, dx, y0, dy``) from the affine."""
    h, v = _VIEW_AXES[view]
    a = np.asarray(problem.affine, float)
    return {"x0": a[h, 3], "dx": a[h, h], "y0": a[v, 3], "dy": a[v, v]}


def _mm_titles(fig: go.Figure, view: str, row: int, col: int) -> None:
    h, v = _VIEW_AXES[view]
    fig.update_xaxes(title_text=f"{'xyz'[h]} (mm)", row=row, col=col)
    fig.update_yaxes(title_text=f"{'xyz'[v]} (mm)", row=row, col=col)


def slices_figure(
    problem,
    density: np.ndarray | None = None,
    pred_wt: np.ndarray | None = None,
    pred_tc: np.ndarray | None = None,
    index: tuple[int, int, int] | None = None,
    title: str = "",
    views: tuple[str, ...] = VIEWS,
    overlay: np.ndarray | None = None,
    overlay_name: str = "density",
) -> go.Figure:
    """Axial/coronal/sagittal slices over the T1 template: density (or another overlay) as a
    colour map, observed WT/TC as filled contours, predicted WT/TC as dashed contours."""
    idx = index or centre(problem)
    t1 = _t1(problem)
    fig = make_subplots(
        rows=1,
        cols=len(views),
        subplot_titles=[f"{v} ({'kji'[VIEWS.index(v)]}={idx[2 - VIEWS.index(v)]})" for v in views],
        horizontal_spacing=0.02,
    )
    # All traces are added in one call and all axes set in one layout update: plotly validates
    # every property of every call, and per-trace add_trace(row, col) and per-panel
    # update_xaxes/update_yaxes(row, col) made this the slowest figure of the CLI (the same
    # figure, property for property, in a third of the time).
    traces, cols = [], []
    ov = overlay if overlay is not None else density
    for c, view in enumerate(views, start=1):
        i = idx[2] if view == "axial" else idx[1] if view == "coronal" else idx[0]
        place = _mm(problem, view)
        traces.append(
            go.Heatmap(
                z=_cut(t1, view, i), colorscale="gray", showscale=False, hoverinfo="skip", **place
            )
        )
        cols.append(c)
        if ov is not None:
            d = _cut(ov, view, i)
            d = np.where(d >= 0.02, d, np.nan)
            traces.append(
                go.Heatmap(
                    z=d,
                    colorscale="Hot",
                    zmin=0,
                    zmax=1,
                    opacity=0.65,
                    name=overlay_name,
                    showscale=(c == len(views)),
                    colorbar=dict(title=overlay_name, len=0.8),
                    **place,
                )
            )
            cols.append(c)
        for name, m, dash in (
            ("wt", problem.wt, "solid"),
            ("tc", problem.tc, "solid"),
            ("pred_wt", pred_wt, "dash"),
            ("pred_tc", pred_tc, "dash"),
        ):
            if m is None:
                continue
            z = _cut(m, view, i)
            if not z.any():
                continue
            traces.append(
                go.Contour(
                    z=z,
                    contours=dict(start=0.5, end=0.5, coloring="lines"),
                    showscale=False,
                    colorscale=[[0, COLORS[name]], [1, COLORS[name]]],
                    line=dict(color=COLORS[name], width=2, dash=dash),
                    name=name,
                    showlegend=(c == 1),
                    hoverinfo="skip",
                    **place,
                )
            )
            cols.append(c)
    fig.add_traces(traces, rows=[1] * len(traces), cols=cols)
    axes = {}
    for c, view in enumerate(views, start=1):
        h, v = _VIEW_AXES[view]
        sfx = "" if c == 1 else str(c)
        axes[f"xaxis{sfx}"] = dict(
            showgrid=False, zeroline=False, title=dict(text=f"{'xyz'[h]} (mm)")
        )
        axes[f"yaxis{sfx}"] = dict(
            showgrid=False,
            zeroline=False,
            scaleanchor=f"x{sfx}",
            title=dict(text=f"{'xyz'[v]} (mm)"),
        )
    fig.update_layout(
        **axes,
        title=title or problem.name,
        height=480,
        margin=dict(l=10, r=10, t=60, b=10),
        plot_bgcolor="white",
        legend=dict(orientation="h", y=-0.05),
    )
    return fig


def result_figure(problem, result) -> go.Figure:
    """The figure of one run: predicted density with observed (solid) and predicted (dashed) masks."""
    u = np.asarray(result.output, dtype=np.float32)
    th_wt = float(result.meta.get("theta_wt", 0.25))
    th_tc = float(result.meta.get("theta_tc", 0.675))
    m = result.metrics
    t = f"{problem.name}: Dice WT {m.get('dice_edema', float('nan')):.3f}, TC {m.get('dice_core', float('nan')):.3f}"
    if u.shape != problem.wt.shape:
        return slices_figure(problem, title=t)
    return slices_figure(problem, u, u >= th_wt, u >= th_tc, title=t)


def problem_figure(problem) -> go.Figure:
    return slices_figure(problem, problem.truth_density, title=f"{problem.name} (observed masks)")


def scene(problem, result=None, brain: bool = True):
    """3D scene: brain surface, observed WT/TC and predicted WT/TC isosurfaces (mm units)."""
    from workbench.physics.tumor.atlas import load_atlas
    from workbench.viz.three_d import Scene

    a = load_atlas(int(problem.grid_n), with_t1=False)
    h = float(problem.voxel_mm)
    org = tuple(float(v) for v in problem.affine[:3, 3])
    sc = Scene(spacing=(h, h, h), origin=org, title=problem.name)
    if brain:
        sc.isosurface(
            (a.gm + a.wm).astype(np.float32), 0.5, color="lightgray", opacity=0.12, name="brain"
        )
    sc.isosurface(
        problem.wt.astype(np.float32), 0.5, color=COLORS["wt"], opacity=0.35, name="observed WT"
    )
    if problem.tc.any():
        sc.isosurface(
            problem.tc.astype(np.float32), 0.5, color=COLORS["tc"], opacity=0.8, name="observed TC"
        )
    if result is not None and np.asarray(result.output).shape == problem.wt.shape:
        u = np.asarray(result.output, dtype=np.float32)
        if (u >= 0.25).any():
            sc.isosurface(
                u,
                float(result.meta.get("theta_wt", 0.25)),
                color=COLORS["pred_wt"],
                opacity=0.3,
                name="predicted WT",
            )
        if (u >= 0.675).any():
            sc.isosurface(
                u,
                float(result.meta.get("theta_tc", 0.675)),
                color=COLORS["pred_tc"],
                opacity=0.6,
                name="predicted TC",
            )
    return sc


def param_rows(runs: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """One row per run: identifiable estimates (top-1 and top-k median with IQR), seed, Dice, time."""
    rows = []
    for label, r in runs:
        m = r.metrics

        def f(k, fmt="{:.3g}", m=m):
            return fmt.format(m[k]) if k in m and m[k] == m[k] else ""

        row = {
            "run": label,
            "Dice WT": f("dice_edema", "{:.3f}"),
            "Dice TC": f("dice_core", "{:.3f}"),
            "sqrt(D T) mm": f("ell_mm"),
            "rho T": f("mu"),
            "sqrt(D/rho) mm": f("lambda_mm"),
            "seed mm": ", ".join(f(f"seed_{c}_mm", "{:.1f}") for c in "xyz"),
        }
        for q, lab in (
            ("ell_mm", "sqrt(D T) top-k [IQR]"),
            ("mu", "rho T top-k [IQR]"),
            ("lambda_mm", "sqrt(D/rho) top-k [IQR]"),
        ):
            if f"agg_{q}" in m:
                row[lab] = f"{m[f'agg_{q}']:.3g} [{m[f'agg_{q}_q25']:.3g}, {m[f'agg_{q}_q75']:.3g}]"
        if "seed_spread_mm" in m:
            row["seed spread mm"] = f("seed_spread_mm", "{:.1f}")
        row["wall s"] = f"{r.meta.get('wall_s', float('nan')):.3g}"
        rows.append(row)
    return rows


def dice_time_figure(runs: list[tuple[str, Any]]) -> go.Figure:
    """Best-so-far Dice (WT + TC) against wall time: CMA-ES curves, database lookups as points."""
    fig = go.Figure()
    for label, r in runs:
        h = r.history
        if "best_score" in h and len(h["best_score"]) > 1:
            fig.add_trace(
                go.Scatter(x=h["time"], y=h["best_score"], mode="lines+markers", name=label)
            )
        else:
            d = r.metrics.get("dice_sum")
            if d is not None:
                fig.add_trace(
                    go.Scatter(
                        x=[r.meta.get("wall_s", 0.0)],
                        y=[d],
                        mode="markers",
                        marker=dict(size=12, symbol="star"),
                        name=label,
                    )
                )
    fig.update_layout(
        xaxis_title="wall time (s)",
        yaxis_title="Dice WT + Dice TC",
        xaxis_type="log",
        height=360,
        margin=dict(l=50, r=10, t=30, b=40),
    )
    return fig


def db_summary_figure(db) -> go.Figure:
    """Coverage of the database: log sqrt(D T) vs log rho T by status, and WT volumes."""
    p = db.params
    st = p["status"]
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("prior coverage", "whole-tumour volume (accepted)")
    )
    for code, name, col in ((2, "rejected", "lightgray"), (1, "accepted", "royalblue")):
        s = st == code
        fig.add_trace(
            go.Scattergl(
                x=np.sqrt(p["DT_mm2"][s]),
                y=p["mu"][s],
                mode="markers",
                name=name,
                marker=dict(size=3, color=col),
            ),
            1,
            1,
        )
    fig.add_trace(
        go.Histogram(
            x=p["V_wt_cm3"][st == 1],
            nbinsx=40,
            name="V_WT cm^3",
            marker_color="royalblue",
            showlegend=False,
        ),
        1,
        2,
    )
    fig.update_xaxes(type="log", title="sqrt(D T) (mm)", row=1, col=1)
    fig.update_yaxes(type="log", title="rho T", row=1, col=1)
    fig.update_xaxes(title="cm^3", row=1, col=2)
    fig.update_layout(height=360, margin=dict(l=50, r=10, t=40, b=40))
    return fig


def topk_figure(result) -> go.Figure:
    rows = result.extras.get("topk") or []
    fig = go.Figure()
    if rows:
        fig.add_trace(
            go.Bar(
                x=[r["rank"] for r in rows],
                y=[r["score"] for r in rows],
                name="score",
                hovertext=[f"sqrt(DT)={r['ell_mm']:.1f} mm, rhoT={r['mu']:.3g}" for r in rows],
            )
        )
    fig.update_layout(
        xaxis_title="rank", yaxis_title="score", height=280, margin=dict(l=50, r=10, t=20, b=40)
    )
    return fig


def _finite(x: float) -> bool:
    return isinstance(x, float) and math.isfinite(x)


def compare_figure(problem, labelled) -> go.Figure:
    """The Compare page's view: each run's predicted density on the axial slice through the
    tumour centre, one colour scale, with the observed masks' outline for reference."""
    k = centre(problem)[2]
    n = len(labelled)
    fig = make_subplots(rows=1, cols=n, subplot_titles=[label for label, _ in labelled])
    for i, (_, r) in enumerate(labelled):
        u = np.asarray(r.output, dtype=np.float32)
        if u.shape != problem.wt.shape:
            continue
        fig.add_trace(
            go.Heatmap(
                z=u[:, :, k].T,
                zmin=0,
                zmax=1,
                colorscale="Hot",
                showscale=i == n - 1,
                colorbar={"title": {"text": "density u"}},
                **_mm(problem, "axial"),
            ),
            row=1,
            col=i + 1,
        )
        fig.add_trace(
            go.Contour(
                z=problem.wt[:, :, k].T.astype(float),
                contours={"start": 0.5, "end": 0.5, "coloring": "lines"},
                line={"color": "cyan", "width": 1},
                showscale=False,
                **_mm(problem, "axial"),
            ),
            row=1,
            col=i + 1,
        )
        fig.update_yaxes(scaleanchor=f"x{i + 1 if i else ''}", row=1, col=i + 1)
        _mm_titles(fig, "axial", 1, i + 1)
    fig.update_layout(
        title="predicted density (axial), observed whole tumour in cyan",
        template="plotly_white",
        height=480,
    )
    return fig


# ------------------------------------------------------------------------------------------
# Patient space (a case registered to the atlas)
# ------------------------------------------------------------------------------------------


def registration_figure(problem) -> go.Figure | None:
    """The registration as an overlay: the MNI152 template (grey) with the registered patient
    image's edges (red contours), three orthogonal slices through the tumour, and the quality
    numbers in the title. None when the problem was not registered from patient space."""
    reg = problem.meta.get("registration")
    if not reg or "overlay" not in reg:
        return None
    ov = reg["overlay"]
    names = ("sagittal", "coronal", "axial")
    fig = make_subplots(rows=1, cols=3, subplot_titles=names, horizontal_spacing=0.02)
    for c in range(1, 4):
        t = np.asarray(ov["template"][c - 1], np.float32).T
        m = np.asarray(ov["moved"][c - 1], np.float32).T
        fig.add_trace(go.Heatmap(z=t, colorscale="gray", showscale=False, hoverinfo="skip"), 1, c)
        fig.add_trace(
            go.Heatmap(
                z=np.where(m > 0.05, m, np.nan),
                colorscale="Reds",
                opacity=0.35,
                showscale=False,
                hoverinfo="skip",
                name="registered image",
            ),
            1,
            c,
        )
        fig.add_trace(
            go.Contour(
                z=(m > 0.05).astype(np.float32),
                contours=dict(start=0.5, end=0.5, coloring="lines"),
                showscale=False,
                colorscale=[[0, "#d62728"], [1, "#d62728"]],
                line=dict(color="#d62728", width=1.5),
                name="patient brain",
                showlegend=(c == 1),
                hoverinfo="skip",
            ),
            1,
            c,
        )
        fig.update_xaxes(showgrid=False, zeroline=False, row=1, col=c)
        fig.update_yaxes(
            showgrid=False,
            zeroline=False,
            scaleanchor=f"x{'' if c == 1 else c}",
            row=1,
            col=c,
        )
    verdict = "passed" if reg.get("passed") else "FAILED"
    fig.update_layout(
        title=(
            f"registration of {reg.get('image', 'the image')} to MNI152 2009: brain-mask Dice "
            f"{reg['dice_brain']:.3f}, NMI {reg['nmi']:.3f} ({verdict}, {reg['wall_s']:.0f} s)"
        ),
        height=460,
        margin=dict(l=10, r=10, t=60, b=10),
        plot_bgcolor="white",
        legend=dict(orientation="h", y=-0.05),
    )
    return fig


def patient_space(problem, result) -> dict[str, Any] | None:
    """The result on the patient's grid: density, predicted WT/TC, the seed (patient mm and
    voxel) and the observed masks carried back; None for problems not registered from patient
    space."""
    reg = problem.meta.get("registration")
    if not reg or problem.input_affine is None or result.output.shape != problem.wt.shape:
        return None
    from workbench.physics.tumor.registration import point_to_patient, to_patient_space

    t = np.asarray(reg["to_patient"], np.float64)
    shape = tuple(int(s) for s in problem.meta["input_shape"])
    aff = np.asarray(problem.meta["patient_affine"], np.float64)
    u = to_patient_space(result.output, problem.affine, t, shape, aff, order=1)
    th_wt = float(result.meta.get("theta_wt", problem.theta_wt))
    th_tc = float(result.meta.get("theta_tc", problem.theta_tc))
    out: dict[str, Any] = {
        "density": u,
        "pred_wt": u >= th_wt,
        "pred_tc": u >= th_tc,
        "wt": to_patient_space(problem.wt.astype(np.float32), problem.affine, t, shape, aff) >= 0.5,
        "tc": to_patient_space(problem.tc.astype(np.float32), problem.affine, t, shape, aff) >= 0.5,
        "affine": aff,
    }
    s = result.extras.get("seed_mm")
    if s is not None:
        mm, vox = point_to_patient(np.asarray(s, np.float64), t, aff)
        out["seed_mm"] = [float(v) for v in mm]
        out["seed_voxel"] = [float(v) for v in vox]
    return out


def patient_figure(
    ps: dict[str, Any],
    image: np.ndarray | None = None,
    index: tuple[int, int, int] | None = None,
    title: str = "result in patient space",
) -> go.Figure:
    """Three slices of the patient's grid through ``index`` (default: the seed, else the centre
    of the observed WT): the anatomical image (when given), the predicted density, the observed
    (solid) and predicted (dashed) WT/TC, the seed as a cross."""
    # show the patient grid the way the atlas is shown (left to right, posterior to anterior,
    # inferior to superior): flip the axes whose affine runs backwards (BraTS files are LPS)
    aff = np.asarray(ps.get("affine", np.eye(4)))
    flips = [a for a in range(3) if aff[a, a] < 0]
    if flips:
        ps = dict(ps)
        for key in ("density", "wt", "tc", "pred_wt", "pred_tc"):
            ps[key] = np.flip(ps[key], axis=flips)
        if image is not None:
            image = np.flip(image, axis=flips)
        if "seed_voxel" in ps:
            n = ps["density"].shape
            ps["seed_voxel"] = [
                n[a] - 1 - v if a in flips else v for a, v in enumerate(ps["seed_voxel"])
            ]
        if index is not None:
            n = ps["density"].shape
            index = tuple(n[a] - 1 - v if a in flips else v for a, v in enumerate(index))
    u = ps["density"]
    if index is None:
        if "seed_voxel" in ps:
            index = tuple(
                int(np.clip(round(v), 0, n - 1))
                for v, n in zip(ps["seed_voxel"], u.shape, strict=True)
            )
        elif ps["wt"].any():
            index = tuple(int(v) for v in np.argwhere(ps["wt"]).mean(0).round())
        else:
            index = tuple(n // 2 for n in u.shape)
    fig = make_subplots(rows=1, cols=3, subplot_titles=VIEWS, horizontal_spacing=0.02)
    for c, view in enumerate(VIEWS, start=1):
        i = index[2] if view == "axial" else index[1] if view == "coronal" else index[0]
        if image is not None:
            fig.add_trace(
                go.Heatmap(
                    z=_cut(image, view, i), colorscale="gray", showscale=False, hoverinfo="skip"
                ),
                1,
                c,
            )
        d = _cut(u, view, i)
        fig.add_trace(
            go.Heatmap(
                z=np.where(d >= 0.02, d, np.nan),
                colorscale="Hot",
                zmin=0,
                zmax=1,
                opacity=0.6,
                showscale=(c == 3),
                colorbar=dict(title="u", len=0.8),
                name="density",
            ),
            1,
            c,
        )
        for name, dash in (
            ("wt", "solid"),
            ("tc", "solid"),
            ("pred_wt", "dash"),
            ("pred_tc", "dash"),
        ):
            z = _cut(ps[name], view, i)
            if not z.any():
                continue
            fig.add_trace(
                go.Contour(
                    z=z.astype(np.float32),
                    contours=dict(start=0.5, end=0.5, coloring="lines"),
                    showscale=False,
                    colorscale=[[0, COLORS[name]], [1, COLORS[name]]],
                    line=dict(color=COLORS[name], width=2, dash=dash),
                    name=name,
                    showlegend=(c == 1),
                    hoverinfo="skip",
                ),
                1,
                c,
            )
        if "seed_voxel" in ps:
            sv = ps["seed_voxel"]
            xy = {"axial": (sv[0], sv[1]), "coronal": (sv[0], sv[2]), "sagittal": (sv[1], sv[2])}[
                view
            ]
            fig.add_trace(
                go.Scatter(
                    x=[xy[0]],
                    y=[xy[1]],
                    mode="markers",
                    marker=dict(symbol="x", size=10, color="cyan"),
                    name="seed",
                    showlegend=(c == 1),
                ),
                1,
                c,
            )
        fig.update_xaxes(showgrid=False, zeroline=False, row=1, col=c)
        fig.update_yaxes(
            showgrid=False,
            zeroline=False,
            scaleanchor=f"x{'' if c == 1 else c}",
            row=1,
            col=c,
        )
    fig.update_layout(
        title=title,
        height=500,
        margin=dict(l=10, r=10, t=60, b=10),
        plot_bgcolor="white",
        legend=dict(orientation="h", y=-0.05),
    )
    return fig
