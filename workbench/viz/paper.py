"""The paper figure: one multi-panel figure of several runs on one problem, sized for a journal.

Panels are lettered (a, b, c, …), the images share one colour bar (and the error maps another),
each panel's caption carries its run's key metrics, and the figure is exactly one journal
column (8.5 cm) or two (17.6 cm) wide. It exports as PDF/SVG at that physical size and as PNG at
300 dpi (:func:`paper_bytes`), through the same kaleido renderer as every other figure.

Sizes: plotly lays a figure out in CSS pixels (1/96 in), so a figure ``w`` cm wide is
``w / 2.54 * 96`` px on the page and in the PDF/SVG, and the PNG is rendered at
``scale = 300 / 96`` to hold ``w / 2.54 * 300`` pixels. Fonts are given in points
(1 pt = 96/72 px): 7 pt for labels, 6 pt for ticks, the sizes journals ask for.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go

__all__ = [
    "COLUMN_CM",
    "DPI",
    "Panel",
    "cm_to_px",
    "paper_bytes",
    "paper_figure",
    "paper_panels",
    "png_size",
]

#: journal column widths in cm: one column, two columns (full page width)
COLUMN_CM = {1: 8.5, 2: 17.6}
DPI = 300
CSS_DPI = 96
LABEL_PT, TICK_PT = 7.0, 6.0
#: metrics shown in the captions, in order of preference, per domain (first two present)
CAPTION_METRICS = {
    "mri": (("psnr", "PSNR {:.2f} dB"), ("ssim", "SSIM {:.3f}"), ("nmse", "NMSE {:.2e}")),
    "pde": (("rel_l2", "rel. L2 {:.2e}"), ("rel_l2_best", "best rel. L2 {:.2e}")),
    "eels": (("roc_auc", "AUROC {:.3f}"), ("pr_auc", "AUPRC {:.3f}"), ("f1", "F1 {:.3f}")),
    "tumor": (("dice_wt", "Dice WT {:.3f}"), ("dice_core", "Dice TC {:.3f}")),
    "ot": (("transport_cost", "cost {:.4e}"), ("marginal_error", "marg. err. {:.1e}")),
}


def cm_to_px(cm: float, dpi: float = DPI) -> int:
    """Pixels across ``cm`` centimetres at ``dpi`` dots per inch: ``round(cm / 2.54 * dpi)``."""
    return int(round(cm / 2.54 * dpi))


def _pt(pt: float) -> float:
    return pt * CSS_DPI / 72.0


@dataclass
class Panel:
    """One image panel: ``z[row, col]`` on coordinates ``x`` (columns) and ``y`` (rows)."""

    z: np.ndarray
    title: str
    caption: str = ""
    group: str = "image"  # panels of one group share a colour scale and a colour bar
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    x_title: str = "x (px)"
    y_title: str = "y (px)"
    rows_down: bool = True  # image convention (row 0 at the top) vs a field (y up)
    contour: np.ndarray | None = None  # a 0/1 mask outlined on the panel (the truth)
    extra: dict[str, Any] = field(default_factory=dict)


def caption_for(domain: str, metrics: dict[str, Any] | None, n: int = 2) -> str:
    """The key metrics of a run as a short caption (``"PSNR 31.20 dB, SSIM 0.912"``)."""
    metrics = metrics or {}
    out = []
    for key, fmt in CAPTION_METRICS.get(domain, ()):
        v = metrics.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v):
            out.append(fmt.format(v))
        if len(out) == n:
            break
    if not out:  # a domain without a preference: the first numeric metrics
        for k, v in metrics.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v):
                out.append(f"{k} {v:.3g}")
            if len(out) == n:
                break
    return ", ".join(out)


def paper_panels(problem: Any, labelled: Sequence[tuple[str, Any]]) -> list[Panel]:
    """The panels of ``labelled`` runs on ``problem``: the reference (where the problem has one),
    each run's output, and each run's error map against the reference."""
    from workbench.viz.common import to_2d

    domain = getattr(problem, "domain", "")
    caps = {label: caption_for(domain, r.metrics) for label, r in labelled}
    if domain == "mri":
        from workbench.physics.mri.metrics import center_crop
        from workbench.viz.mri import _slice

        ref = _slice(problem.reference) if problem.reference is not None else None
        outs = {k: np.abs(_slice(r.output)) for k, r in labelled}
        if ref is not None:
            ref = np.abs(ref)
            outs = {k: center_crop(v, ref.shape) for k, v in outs.items()}
        return _with_errors(ref, outs, caps, "reference", "|x|")
    if domain == "pde" and getattr(problem, "dim", 0) == 2:
        from workbench.viz.pde import _axes, _pred, _truth

        ax = _axes(problem)
        v = problem.variables
        kw = {"x": ax[0], "y": ax[1], "x_title": v[0], "y_title": v[1], "rows_down": False}
        true = _truth(problem).T
        panels = [Panel(true, "exact / reference", group="u", **kw)]
        panels += [Panel(_pred(problem, r).T, k, caps[k], group="u", **kw) for k, r in labelled]
        panels += [
            Panel(
                np.abs(_pred(problem, r).T - true),
                f"|{k} − ref|",
                group="|error|",
                extra={"offset": 1},
                **kw,
            )
            for k, r in labelled
        ]
        return panels
    if domain == "eels":
        from workbench.viz.eels import normalised_scores

        s = normalised_scores({k: np.asarray(r.output, float) for k, r in labelled}, "rank")
        truth = getattr(problem, "truth", None)
        truth = np.asarray(truth, float) if truth is not None and np.any(truth) else None
        return [
            Panel(z, k, caps[k], group="score (percentile rank)", contour=truth)
            for k, z in s.items()
        ]
    if domain == "tumor":
        from workbench.viz.tumor import _mm, centre

        k = centre(problem)[2]
        mm = _mm(problem, "axial")
        ny, nx = problem.wt.shape[1], problem.wt.shape[0]
        x = mm["x0"] + mm["dx"] * np.arange(nx)
        y = mm["y0"] + mm["dy"] * np.arange(ny)
        kw = {"x": x, "y": y, "x_title": "x (mm)", "y_title": "y (mm)", "rows_down": False}
        wt = np.asarray(problem.wt[:, :, k], float).T
        panels = []
        if problem.truth_density is not None:
            truth = np.asarray(problem.truth_density[:, :, k], float).T
            panels.append(Panel(truth, "true density", group="density u", contour=wt, **kw))
        for lbl, r in labelled:
            u = np.asarray(r.output, np.float32)
            if u.shape == problem.wt.shape:
                panels.append(
                    Panel(u[:, :, k].T, lbl, caps[lbl], group="density u", contour=wt, **kw)
                )
        return panels
    if domain == "ot":
        from workbench.viz.ot import _reduce

        panels = []
        for lbl, r in labelled:
            Q, fr, fc = _reduce(np.asarray(r.output, float))
            with np.errstate(divide="ignore"):
                L = np.log10(np.where(Q > 0, Q, np.nan))
            panels.append(
                Panel(
                    L,
                    lbl,
                    caps[lbl],
                    group="log10 P",
                    x=np.arange(Q.shape[1]) * fc,
                    y=np.arange(Q.shape[0]) * fr,
                    x_title="target j",
                    y_title="source i",
                )
            )
        return panels
    outs = {k: to_2d(r.output) for k, r in labelled}
    outs = {k: v for k, v in outs.items() if v is not None}
    return [Panel(v, k, caps[k], group="value") for k, v in outs.items()]


def _with_errors(ref, outs, caps, ref_title: str, unit: str) -> list[Panel]:
    panels = [] if ref is None else [Panel(ref, ref_title, group=unit)]
    panels += [Panel(v, k, caps[k], group=unit) for k, v in outs.items()]
    if ref is not None:
        panels += [
            Panel(np.abs(v - ref), f"|{k} − ref|", group="|error|", extra={"offset": 1})
            for k, v in outs.items()
            if v.shape == ref.shape
        ]
    return panels


def _range(panels: list[Panel]) -> tuple[float, float]:
    vals = [np.asarray(p.z, float)[np.isfinite(p.z)] for p in panels]
    vals = [v for v in vals if v.size]
    if not vals:
        return 0.0, 1.0
    lo, hi = min(float(v.min()) for v in vals), max(float(v.max()) for v in vals)
    if panels[0].group.startswith("log10"):
        lo = max(lo, hi - 12)  # twelve decades of a plan, as the page shows it
    return lo, (hi if hi > lo else lo + 1.0)


COLORSCALES = {
    "|error|": "Inferno",
    "u": "RdBu_r",
    "|x|": "Gray",
    "density u": "Hot",
    "score (percentile rank)": "Inferno",
}


def paper_figure(
    panels: Sequence[Panel],
    columns: int = 2,
    title: str = "",
    max_cols: int | None = None,
) -> go.Figure:
    """Lay out ``panels`` as a journal figure ``COLUMN_CM[columns]`` cm wide.

    Panels of one ``group`` sit together (a new group starts a new row), share a colour scale
    (min–max over the group) and one colour bar titled with the group's name, to the right of
    the group's rows. Every panel gets a bold letter, its title, titled axes at 1:1 and its
    caption (metrics) below. The height follows from the width and the number of rows.
    """
    if columns not in COLUMN_CM:
        raise ValueError(f"columns must be one of {sorted(COLUMN_CM)}")
    if not panels:
        raise ValueError("a paper figure needs at least one 2-D panel")
    width = COLUMN_CM[columns] / 2.54 * CSS_DPI
    label, tick = _pt(LABEL_PT), _pt(TICK_PT)
    ncols = max_cols or (2 if columns == 1 else 4)
    groups: dict[str, list[Panel]] = {}
    for p in panels:
        groups.setdefault(p.group, []).append(p)
    ncols = min(ncols, max(len(g) for g in groups.values()))
    left, right = 4.0, 64.0  # right: the colour bars, their ticks and titles
    gap_x = 5.0 * label  # a panel's y ticks and y title sit in the gap to its left
    top_gap, bottom_gap = 2.2 * label, 5.2 * label  # title above; ticks, x title, caption below
    side = (width - left - right - ncols * gap_x) / ncols
    # aspect of each group's panels (height / width) from its data extent: true 1:1 in data units
    rows: list[tuple[str, list[Panel]]] = []
    for g, ps in groups.items():
        for i in range(0, len(ps), ncols):
            rows.append((g, ps[i : i + ncols]))

    def aspect(p: Panel) -> float:
        h, w = np.asarray(p.z).shape
        if p.x is not None and p.y is not None and len(p.x) > 1 and len(p.y) > 1:
            return abs(float(p.y[-1] - p.y[0])) / max(abs(float(p.x[-1] - p.x[0])), 1e-300)
        return h / w

    row_h = [side * max(aspect(p) for p in ps) for _, ps in rows]
    height = 6.0 + (label * 2.0 if title else 0.0) + sum(top_gap + h + bottom_gap for h in row_h)
    fig = go.Figure()
    fig.update_layout(
        width=round(width),
        height=round(height),
        margin={"l": left, "r": right, "t": 0, "b": 0, "pad": 0, "autoexpand": False},
        font={"size": label, "family": "Arial, Helvetica, sans-serif", "color": "black"},
        template="plotly_white",
        showlegend=False,
        meta={"paper": {"columns": columns, "cm": COLUMN_CM[columns], "dpi": DPI}},
    )
    pw, ph = width - left - right, height  # the plot area (paper coordinates span it)
    y_cursor = height - 6.0 - (label * 2.0 if title else 0.0)
    ranges = {g: _range(ps) for g, ps in groups.items()}
    bar_drawn: set[str] = set()
    group_span: dict[str, list[float]] = {}
    letter = 0
    for (g, ps), h in zip(rows, row_h, strict=True):
        y_top = y_cursor - top_gap
        y_bottom = y_top - h
        group_span.setdefault(g, [y_bottom, y_top])[0] = y_bottom
        offset = min((p.extra.get("offset", 0) for p in ps), default=0)
        offset = offset if offset + len(ps) <= ncols else 0  # under its run when it fits
        for c, p in enumerate(ps, start=offset):
            i = letter + 1
            xa, ya = f"xaxis{i if i > 1 else ''}", f"yaxis{i if i > 1 else ''}"
            x0 = c * (side + gap_x) + gap_x
            hp = side * aspect(p)
            y1 = y_top  # panels of a row align at the top
            dom_x = [x0 / pw, (x0 + side) / pw]
            dom_y = [(y1 - hp) / ph, y1 / ph]
            lo, hi = ranges[g]
            fig.add_trace(
                go.Heatmap(
                    z=p.z,
                    x=p.x,
                    y=p.y,
                    zmin=lo,
                    zmax=hi,
                    colorscale=COLORSCALES.get(g, "Viridis"),
                    showscale=g not in bar_drawn,
                    colorbar={
                        "title": {"text": g, "side": "right", "font": {"size": label}},
                        "thickness": 0.9 * label,
                        "tickfont": {"size": tick},
                        "exponentformat": "power",
                        "x": 1.0 + 6.0 / pw,
                        "xanchor": "left",
                        "xref": "paper",
                        "yanchor": "top",
                        "yref": "paper",
                    },
                    name=p.title,
                    xaxis=xa.replace("axis", ""),
                    yaxis=ya.replace("axis", ""),
                    hoverinfo="skip",
                )
            )
            bar_drawn.add(g)
            if p.contour is not None:
                fig.add_trace(
                    go.Contour(
                        z=p.contour,
                        x=p.x,
                        y=p.y,
                        contours={"start": 0.5, "end": 0.5, "coloring": "lines"},
                        colorscale=[[0, "#00e5ff"], [1, "#00e5ff"]],
                        line={"width": 0.8, "color": "#00e5ff"},
                        showscale=False,
                        hoverinfo="skip",
                        xaxis=xa.replace("axis", ""),
                        yaxis=ya.replace("axis", ""),
                    )
                )
            axis_font = {"size": tick}
            fig.layout[xa] = {
                "domain": dom_x,
                "anchor": ya.replace("axis", ""),
                "title": {"text": p.x_title, "font": {"size": label}, "standoff": 2},
                "tickfont": axis_font,
                "showgrid": False,
                "zeroline": False,
                "ticks": "outside",
                "ticklen": 2,
                "nticks": 4,
                "constrain": "domain",
            }
            fig.layout[ya] = {
                "domain": dom_y,
                "anchor": xa.replace("axis", ""),
                "title": {"text": p.y_title, "font": {"size": label}, "standoff": 2},
                "tickfont": axis_font,
                "showgrid": False,
                "zeroline": False,
                "ticks": "outside",
                "ticklen": 2,
                "nticks": 4,
                "scaleanchor": xa.replace("axis", ""),
                "scaleratio": 1,
                "constrain": "domain",
                "constraintoward": "top",
                "autorange": "reversed" if p.rows_down else True,
            }
            # the letter and the title above the panel, the caption (metrics) below it
            fig.add_annotation(
                x=(x0 - gap_x + 2) / pw,
                y=y1 / ph,
                xref="paper",
                yref="paper",
                xanchor="left",
                yanchor="bottom",
                yshift=2,
                showarrow=False,
                align="left",
                text=f"<b>{chr(ord('a') + letter)}</b>  {p.title}",
                font={"size": label},
            )
            if p.caption:
                fig.add_annotation(
                    x=(x0 + side / 2) / pw,
                    y=(y1 - hp) / ph,
                    xref="paper",
                    yref="paper",
                    xanchor="center",
                    yanchor="top",
                    yshift=-3.1 * label,
                    showarrow=False,
                    text=p.caption,
                    font={"size": tick},
                )
            letter += 1
        y_cursor = y_bottom - bottom_gap
    # each group's colour bar spans that group's rows
    for tr in fig.data:
        if tr.type == "heatmap" and tr.showscale:
            g = tr.colorbar.title.text
            b, t = group_span[g]
            tr.colorbar.y = t / ph
            tr.colorbar.len = (t - b) / ph
            tr.colorbar.lenmode = "fraction"
    if title:
        fig.add_annotation(
            x=0,
            y=1,
            xref="paper",
            yref="paper",
            xanchor="left",
            yanchor="top",
            showarrow=False,
            text=f"<b>{title}</b>",
            font={"size": label},
        )
    return fig


def png_size(fig: go.Figure, dpi: int = DPI) -> tuple[int, int]:
    """Pixels of the PNG :func:`paper_bytes` writes: the physical size at ``dpi``."""
    cm = fig.layout.meta["paper"]["cm"]
    w = cm_to_px(cm, dpi)
    return w, int(round(fig.layout.height * w / fig.layout.width))


def paper_bytes(fig: go.Figure, fmt: str = "pdf", dpi: int = DPI) -> bytes:
    """The paper figure as PDF, SVG (at its physical size) or PNG at ``dpi`` (300).

    The PNG carries its resolution (pHYs chunk), so a layout program places it at the
    journal column's width.
    """
    from workbench.export import FIGURE_FORMATS, figure_bytes

    if fmt not in FIGURE_FORMATS:
        raise ValueError(f"figure format must be one of {FIGURE_FORMATS}")
    w, h = int(fig.layout.width), int(fig.layout.height)
    if fmt != "png":
        return figure_bytes(fig, fmt, width=w, height=h)
    target = png_size(fig, dpi)
    data = figure_bytes(fig, "png", width=w, height=h, scale=target[0] / w)
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    if img.size != target:  # Chromium rounds the scaled viewport; land on the exact size
        img = img.resize(target, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG", dpi=(dpi, dpi))
    return buf.getvalue()


def paper_curves_figure(problem: Any, labelled: Sequence[tuple[str, Any]], columns: int = 2):
    """The paper figure of a 1-D PDE: (a) the runs' solutions over the reference, (b) their
    pointwise log10 relative error; side by side on two columns, stacked on one. Each run's
    legend entry carries its caption metrics."""
    from plotly.subplots import make_subplots

    from workbench.viz.common import PALETTE
    from workbench.viz.pde import _axes, _log_err, _pred, _truth

    if columns not in COLUMN_CM:
        raise ValueError(f"columns must be one of {sorted(COLUMN_CM)}")
    x, true = _axes(problem)[0], _truth(problem)
    width = COLUMN_CM[columns] / 2.54 * CSS_DPI
    label, tick = _pt(LABEL_PT), _pt(TICK_PT)
    stacked = columns == 1
    fig = make_subplots(
        rows=2 if stacked else 1,
        cols=1 if stacked else 2,
        vertical_spacing=0.16,
        horizontal_spacing=0.14,
    )
    at = ((1, 1), (2, 1)) if stacked else ((1, 1), (1, 2))
    fig.add_trace(
        go.Scatter(x=x, y=true, name="reference", line={"color": "black", "width": 1.6}), *at[0]
    )
    domain = getattr(problem, "domain", "")
    errs = []
    for i, (lbl, r) in enumerate(labelled):
        p = _pred(problem, r)
        errs.append(_log_err(p, true))
        cap = caption_for(domain, r.metrics)
        c = PALETTE[i % len(PALETTE)]
        name = f"{lbl} ({cap})" if cap else str(lbl)
        fig.add_trace(
            go.Scatter(x=x, y=p, name=name, line={"color": c, "dash": "dash", "width": 1.2}),
            *at[0],
        )
        fig.add_trace(
            go.Scatter(x=x, y=errs[-1], name=name, showlegend=False, line={"color": c, "width": 1}),
            *at[1],
        )
    v = problem.variables[0]
    for (r, c), ytitle in zip(at, ("u", "log10 |error| / max|u|"), strict=True):
        fig.update_xaxes(title_text=v, row=r, col=c, title_standoff=2, tickfont={"size": tick})
        fig.update_yaxes(title_text=ytitle, row=r, col=c, title_standoff=2, tickfont={"size": tick})
    if errs:  # exact zeros at the boundary (clipped at 1e-17) would squash the curves
        allerr = np.concatenate(errs)
        lo, hi = float(np.percentile(allerr, 2)) - 0.5, float(allerr.max()) + 0.3
        fig.update_yaxes(range=[lo, hi], row=at[1][0], col=at[1][1])
    height = width * (0.95 if stacked else 0.32) + 16 * label / 2 * (len(labelled) + 1) ** 0.5
    fig.update_layout(
        width=round(width),
        height=round(height),
        margin={"l": 6, "r": 6, "t": 2.4 * label, "b": 4},
        font={"size": label, "family": "Arial, Helvetica, sans-serif", "color": "black"},
        template="plotly_white",
        legend={
            "orientation": "h",
            "y": -0.14 if not stacked else -0.08,
            "yanchor": "top",
            "font": {"size": tick},
        },  # fmt: skip
        meta={"paper": {"columns": columns, "cm": COLUMN_CM[columns], "dpi": DPI}},
    )
    for k, (r, c) in enumerate(at):
        xa = fig.get_subplot(r, c).xaxis
        ya = fig.get_subplot(r, c).yaxis
        fig.add_annotation(
            x=xa.domain[0],
            y=ya.domain[1],
            xref="paper",
            yref="paper",
            xanchor="right",
            yanchor="bottom",
            xshift=-2,
            showarrow=False,
            text=f"<b>{'ab'[k]}</b>",
            font={"size": label},
        )
    return fig


def paper_figure_for(
    problem: Any, labelled: Sequence[tuple[str, Any]], columns: int = 2
) -> go.Figure:
    """:func:`paper_figure` of ``labelled`` runs on ``problem`` (the Compare page's button)."""
    if getattr(problem, "domain", "") == "pde" and getattr(problem, "dim", 0) == 1:
        return paper_curves_figure(problem, labelled, columns)
    panels = paper_panels(problem, labelled)
    if not panels:
        raise ValueError("these runs have no 2-D output to put in a paper figure")
    return paper_figure(panels, columns=columns)
