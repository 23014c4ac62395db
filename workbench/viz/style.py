"""The one figure style: the page and the exported file draw the same figure.

Every plotly figure the workbench shows or exports goes through :func:`style` once, in the page
(:func:`workbench.ui.common.show_figure`) and in the exporters (:mod:`workbench.export`), so a
figure looks the same on the page, in the PNG/SVG/PDF file and in the CLI's output. The page draws
it with ``st.plotly_chart(..., theme=None)``: Streamlit's theme would otherwise replace the
figure's template and colour scales (zero error pale pink on the page, black in the file).

What the style guarantees, for every figure:

* **True aspect ratio** of images and maps: the y axis of every panel that holds a
  ``Heatmap``/``Image`` is anchored to its x axis with ``scaleanchor`` (one data unit on y is one
  data unit on x) and ``constrain="domain"`` (the panel shrinks to the image instead of padding
  the range with empty space). A round inclusion stays round at any page or file width. Maps whose
  axes carry different quantities (space against time) opt out with ``scaleanchor=False``.
* **Titled axes with units**: image axes without coordinates are pixel indices and are titled
  ``x (px)`` / ``y (px)``; views that know the physical units (mm, eV, the PDE's variables) title
  their own axes.
* **Scientific number format**: ``exponentformat="power"`` everywhere (``2×10⁻⁶``, never the SI
  prefixes ``2μ``, ``1n`` that plotly uses by default); log axes label the decades only
  (``10⁻³, 10⁻², …``), never the minor digits (``3 4 5 … 1 2``).
* **No theme override**: the template is set explicitly (``plotly_white``) and the page renders it
  unmodified. Streamlit's page also replaces the colour strings ``#000001``–``#000040`` (its
  template's placeholders) wherever they occur, whatever ``theme=`` says; Inferno and Magma start
  at ``#000004``, which is why zero error was pale pink on the page and black in the file. The
  style writes such colours as ``rgb(0, 0, 4)``.

:func:`audit` lists what a figure lacks (untitled image axis or colour bar, image axis without
1:1 anchoring, SI-prefixed ticks); the tests run it on every view of every domain.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import plotly.graph_objects as go

__all__ = ["FONT", "TEMPLATE", "audit", "axis_name", "image_axes", "style", "colorbar_traces"]

TEMPLATE = "plotly_white"
FONT = {"family": "Arial, Helvetica, sans-serif", "size": 13, "color": "#222222"}
#: tick formats that are scientific (no SI prefixes): plotly's default "B" writes 1μ, 1n, 1G.
SCIENTIFIC = ("power", "e", "E")
IMAGE_TYPES = ("heatmap", "image")
_SCALE_TYPES = ("heatmap", "contour", "histogram2d", "histogram2dcontour", "surface", "volume",
                "isosurface")  # fmt: skip


#: Streamlit's page swaps these colour strings for its theme colours wherever they occur in a
#: figure, whatever ``theme=`` says: ``#000001``–``#000040`` are its template's placeholders.
#: Inferno and Magma start at ``#000004``, so zero error turned lavender/pink on the page.
_PLACEHOLDER = re.compile(r"#0000[0-4][0-9]", re.IGNORECASE)


def _unplaceholder(c: Any) -> Any:
    """The same colour written so the page cannot mistake it for a placeholder."""
    if isinstance(c, str) and _PLACEHOLDER.fullmatch(c):
        v = int(c[1:], 16)
        return f"rgb({v >> 16 & 255}, {v >> 8 & 255}, {v & 255})"
    return c


def _safe_scale(scale: Any) -> Any:
    if not scale or isinstance(scale, str):
        return scale
    return [[stop, _unplaceholder(col)] for stop, col in scale]


def _safe_colours(fig: go.Figure) -> None:
    """Rewrite placeholder-like colours in colour scales, lines and markers (``rgb(0, 0, 4)``
    for ``#000004``) so the page draws the colours the exported file draws."""
    for tr in fig.data:
        if "colorscale" in tr and tr.colorscale:
            tr.colorscale = _safe_scale(tr.colorscale)
        for part in ("marker", "line"):
            obj = tr[part] if part in tr else None
            if obj is None:
                continue
            if "colorscale" in obj and obj.colorscale:
                obj.colorscale = _safe_scale(obj.colorscale)
            if "color" in obj and isinstance(obj.color, str):
                obj.color = _unplaceholder(obj.color)
    for k in fig.layout:
        if k.startswith("coloraxis") and fig.layout[k].colorscale:
            fig.layout[k].colorscale = _safe_scale(fig.layout[k].colorscale)


def axis_name(ref: str | None, letter: str) -> str:
    """The layout key of a trace's axis reference: ``"x2"`` → ``"xaxis2"``, ``None`` → ``"xaxis"``."""
    ref = ref or letter
    return f"{letter}axis{ref[1:]}"


def image_axes(fig: go.Figure) -> list[tuple[str, str, Any]]:
    """``(xaxis key, yaxis key, trace)`` for every image-like trace (heatmap/image) of ``fig``."""
    out = []
    for tr in fig.data:
        if tr.type in IMAGE_TYPES:
            out.append((axis_name(tr.xaxis, "x"), axis_name(tr.yaxis, "y"), tr))
    return out


def _has_coords(tr: Any) -> bool:
    return tr.type == "heatmap" and (tr.x is not None or tr.y is not None)


def _title(ax: Any) -> str:
    t = ax.title.text if ax is not None and ax.title is not None else None
    return t or ""


def colorbar_traces(fig: go.Figure) -> list[tuple[Any, Any]]:
    """``(trace, colorbar)`` for every colour bar the figure draws.

    A heatmap-like trace draws one unless ``showscale`` is false; a scatter draws one only when
    ``marker.showscale`` is true; a trace on a shared ``coloraxis`` draws that axis's bar.
    """
    out = []
    for tr in fig.data:
        if tr.type in _SCALE_TYPES:
            if getattr(tr, "coloraxis", None):
                continue
            if tr.showscale is False:
                continue
            out.append((tr, tr.colorbar))
        elif tr.type in ("scatter", "scattergl", "scatter3d", "bar"):
            m = tr.marker
            if m is not None and m.showscale and not m.coloraxis:
                out.append((tr, m.colorbar))
    used = {getattr(tr, "coloraxis", None) or getattr(tr.marker, "coloraxis", None)
            if hasattr(tr, "marker") else getattr(tr, "coloraxis", None) for tr in fig.data}  # fmt: skip
    for ref in sorted(r for r in used if r):
        ca = fig.layout[ref]
        if ca.showscale is not False:
            out.append((None, ca.colorbar))
    return out


def style(fig: go.Figure, font_size: float | None = None) -> go.Figure:
    """Apply the workbench figure style to ``fig`` in place and return it (idempotent).

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
        Any figure of the workbench.
    font_size : float, optional
        Base font size in CSS px (13 by default; the paper figure sets its own, in points).

    Returns
    -------
    plotly.graph_objects.Figure
        The same object, styled.
    """
    font = dict(FONT)
    if font_size is not None:
        font["size"] = font_size
    elif fig.layout.font is not None and fig.layout.font.size:
        font["size"] = fig.layout.font.size
    fig.update_layout(
        template=TEMPLATE,
        font=font,
        paper_bgcolor="white",
        plot_bgcolor="white",
    )
    _safe_colours(fig)
    # image panels: 1:1 data aspect, the panel shrinks to the image, pixel axes titled
    for xk, yk, tr in image_axes(fig):
        xa, ya = fig.layout[xk], fig.layout[yk]
        if ya.scaleanchor is None:
            ya.scaleanchor = xk.replace("axis", "")
            ya.scaleratio = 1
        if ya.scaleanchor is not False:
            xa.constrain = "domain"
            ya.constrain = "domain"
            # a panel narrower than its cell keeps to the top, under its subplot title
            if ya.constraintoward is None:
                ya.constraintoward = "top"
        if not _has_coords(tr):
            if not _title(xa):
                xa.title.text = "x (px)"
            if not _title(ya):
                ya.title.text = "y (px)"
    # every cartesian axis: scientific ticks, decades only on log axes, room for its title
    for k in list(fig.layout):
        if k.startswith(("xaxis", "yaxis")):
            ax = fig.layout[k]
            ax.exponentformat = "power"
            ax.automargin = True
            if ax.type == "log":
                ax.minorloglabels = "none"
            if ax.title.font.size is None:
                ax.title.font.size = round(font["size"] * 0.92, 2)
        elif k.startswith("scene"):
            for a in ("xaxis", "yaxis", "zaxis"):
                fig.layout[k][a].exponentformat = "power"
    for _, cb in colorbar_traces(fig):
        cb.exponentformat = "power"
        if cb.title.side is None:
            cb.title.side = "right"
    # room between rows/columns of panels for tick labels, axis titles and subplot titles
    height = fig.layout.height or 450
    width = fig.layout.width or 1000
    x_titled = any(_title(fig.layout[k]) for k in fig.layout if k.startswith("xaxis"))
    y_titled = any(_title(fig.layout[k]) for k in fig.layout if k.startswith("yaxis"))
    m = fig.layout.margin

    def _m(v, default):
        return default if v is None else v

    plot_h = height - _m(m.t, 100) - _m(m.b, 80)
    plot_w = width - _m(m.l, 80) - _m(m.r, 80)
    _respace(fig, "y", (5.6 if x_titled else 2.4) * font["size"], plot_h)
    _respace(fig, "x", (4.2 if y_titled else 1.0) * font["size"], plot_w)
    # subplot titles (annotations make_subplots places at the top of each panel's domain)
    for ann in fig.layout.annotations:
        if ann.xref == "paper" and ann.yref == "paper" and ann.font.size is None:
            ann.font.size = round(font["size"] * 1.0, 2)
    return fig


def page_width(fig: go.Figure) -> int | None:
    """The width in CSS px at which a figure of one image panel fills its height, or None.

    An image panel keeps its 1:1 data aspect (``constrain="domain"``), so at page width a square
    map shrinks to the middle while its colour bar stays at the page's right edge, far from it.
    Drawn at this width (Streamlit never draws it wider than the page), the bar sits beside the
    map. None for any other figure (several panels, a fixed ``layout.width``, no image).
    """
    panels = {(xk, yk) for xk, yk, _ in image_axes(fig)}
    if len(panels) != 1 or fig.layout.width is not None:
        return None
    xk, yk = next(iter(panels))
    for tr in fig.data:  # every trace on that panel: no second subplot, no 3D scene
        if getattr(tr, "scene", None) is not None or not hasattr(tr, "xaxis"):
            return None
        if (axis_name(tr.xaxis, "x"), axis_name(tr.yaxis, "y")) != (xk, yk):
            return None
    if fig.layout[yk].scaleanchor is None or fig.layout[yk].scaleanchor is False:
        return None
    tr = next(t for _, _, t in image_axes(fig))
    ny, nx = _extent(tr)
    if ny <= 0 or nx <= 0:
        return None
    m = fig.layout.margin
    top = 100 if m.t is None else m.t
    bottom = 80 if m.b is None else m.b
    left = 80 if m.l is None else m.l
    right = 80 if m.r is None else m.r
    plot_h = (fig.layout.height or 450) - top - bottom
    bar = 70 if colorbar_traces(fig) else 0
    return int(round(left + plot_h * nx / ny + right + bar))


def _extent(tr: Any) -> tuple[float, float]:
    """(height, width) of an image trace in data units: its coordinate spans, else its shape."""
    z = np.asarray(tr.z if tr.z is not None else [])
    ny, nx = (z.shape[0], z.shape[1]) if z.ndim >= 2 else (0, 0)
    if tr.type == "heatmap":
        if tr.x is not None and len(tr.x) > 1:
            x = np.asarray(tr.x, dtype=float)
            nx = abs(x[-1] - x[0]) * len(x) / (len(x) - 1)
        if tr.y is not None and len(tr.y) > 1:
            y = np.asarray(tr.y, dtype=float)
            ny = abs(y[-1] - y[0]) * len(y) / (len(y) - 1)
    return float(ny), float(nx)


def _respace(fig: go.Figure, letter: str, gap_px: float, size_px: float) -> None:
    """Widen the gaps between rows (``letter="y"``) or columns (``"x"``) of subplots to at least
    ``gap_px``, keeping the panels' relative sizes and moving the subplot titles with them.

    make_subplots' default spacing leaves no room for an axis title between two rows, so a
    row's x-axis title ran into the next row's subplot title.
    """
    keys = [
        k for k in fig.layout if k.startswith(f"{letter}axis") and fig.layout[k].anchor != "free"
    ]
    doms = sorted({tuple(fig.layout[k].domain) for k in keys if fig.layout[k].domain is not None})
    if len(doms) < 2 or size_px <= 0:
        return
    for (_, a1), (b0, _) in zip(doms[:-1], doms[1:], strict=True):
        if b0 < a1 - 1e-9:
            return  # overlapping domains (insets): not a grid
    need = gap_px / size_px
    gaps = [b0 - a1 for (_, a1), (b0, _) in zip(doms[:-1], doms[1:], strict=True)]
    if min(gaps) >= need - 1e-9:
        return
    content = sum(d1 - d0 for d0, d1 in doms)
    room = 1.0 - need * (len(doms) - 1)
    if room < 0.4 * content or content <= 0:
        return  # too many panels for the size: leave the grid as it is
    f = min(1.0, room / content)
    pos = 0.0 if f < 1.0 else (1.0 - content - need * (len(doms) - 1)) / 2
    new = {}
    for d0, d1 in doms:
        new[(d0, d1)] = (pos, pos + (d1 - d0) * f)
        pos = new[(d0, d1)][1] + need
    for k in keys:
        d = tuple(fig.layout[k].domain)
        if d in new:
            fig.layout[k].domain = new[d]
    for ann in fig.layout.annotations:
        if ann.xref != "paper" or ann.yref != "paper":
            continue
        for (d0, d1), (n0, n1) in new.items():
            if letter == "y" and ann.y is not None and abs(ann.y - d1) < 1e-9:
                ann.y = n1
                break
            if letter == "x" and ann.x is not None and abs(ann.x - (d0 + d1) / 2) < 1e-9:
                ann.x = (n0 + n1) / 2
                break


def audit(fig: go.Figure, require_anchor: bool = True) -> list[str]:
    """What ``fig`` lacks against the style: a list of one-line findings (empty when clean).

    Checks that every image axis is titled and (unless it opted out with ``scaleanchor=False``)
    anchored 1:1 to its partner, that every colour bar has a title, that no axis or colour bar
    uses SI-prefixed tick labels and that log axes label decades only.
    """
    issues = []
    for xk, yk, tr in image_axes(fig):
        xa, ya = fig.layout[xk], fig.layout[yk]
        name = tr.name or tr.type
        if require_anchor and ya.scaleanchor is not False:
            if ya.scaleanchor != xk.replace("axis", ""):
                issues.append(f"{name}: {yk} is not anchored to {xk} (scaleanchor)")
        for key, ax in ((xk, xa), (yk, ya)):
            if not _title(ax):
                issues.append(f"{name}: {key} has no title")
    for tr, cb in colorbar_traces(fig):
        if not (cb.title and cb.title.text):
            issues.append(f"{getattr(tr, 'name', None) or getattr(tr, 'type', 'coloraxis')}: "
                          "colour bar has no title")  # fmt: skip
        if cb.exponentformat not in SCIENTIFIC:
            issues.append("colour bar ticks not in scientific format")
    for k in fig.layout:
        if k.startswith(("xaxis", "yaxis")):
            ax = fig.layout[k]
            if ax.exponentformat not in SCIENTIFIC:
                issues.append(f"{k}: exponentformat {ax.exponentformat!r} (SI prefixes)")
            if ax.type == "log" and ax.minorloglabels != "none":
                issues.append(f"{k}: log axis labels minor ticks")
    if fig.layout.template is None or fig.layout.template.layout.paper_bgcolor is None:
        issues.append("no explicit template")
    data = fig.to_json()
    for m in sorted(set(_PLACEHOLDER.findall(data))):
        issues.append(f"colour {m} would be replaced by the page's theme colour")
    return issues
