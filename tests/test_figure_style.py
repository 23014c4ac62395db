"""The one figure style: true aspect ratios, titled axes and colour bars, scientific ticks, the
same figure on the page and in the file, and the journal-sized paper figure."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

from workbench import registry
from workbench.export import figure_bytes
from workbench.result import Result
from workbench.viz import paper as P
from workbench.viz.style import audit, image_axes, style

ROOT = Path(__file__).resolve().parents[1]


def _disc(n: int = 64, r: float = 12.0) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    return ((yy - 30.5) ** 2 + (xx - 20.5) ** 2 <= r**2).astype(float)


def _png(fig, **kw) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(figure_bytes(fig, "png", scale=1, **kw))).convert("L"))


def _bbox(mask: np.ndarray) -> tuple[int, int]:
    ys, xs = np.nonzero(mask)
    return int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)


# ---- the style on figure objects -------------------------------------------------------------


def test_style_anchors_titles_and_formats():
    fig = go.Figure(go.Heatmap(z=_disc(), colorbar={"title": {"text": "|x|"}}))
    fig.add_trace(go.Scatter(x=[1, 2, 3], y=[1e-6, 1e-3, 1.0], xaxis="x2", yaxis="y2"))
    fig.update_layout(xaxis2={"domain": [0.6, 1]}, xaxis={"domain": [0, 0.4]})
    fig.update_layout(yaxis2={"type": "log", "anchor": "x2"})
    assert audit(fig)  # unstyled: unanchored, untitled, SI-prefixed ticks
    style(fig)
    assert audit(fig) == []
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.constrain == "domain"
    assert fig.layout.xaxis.title.text == "x (px)" and fig.layout.yaxis.title.text == "y (px)"
    assert fig.layout.yaxis2.exponentformat == "power"  # 10⁻⁶, never 1μ
    assert fig.layout.yaxis2.minorloglabels == "none"  # decades only, never "3 4 5 … 1 2"
    assert fig.layout.template.layout.plot_bgcolor == "white"
    before = fig.to_json()
    assert style(fig).to_json() == before  # idempotent: page and export may both apply it


def test_no_colour_the_page_would_swap_for_its_theme_colour():
    """Streamlit's page replaces the strings #000001–#000040 with theme colours; Inferno starts
    at #000004, which turned zero error pink on the page. The style writes it as rgb()."""
    fig = go.Figure(
        go.Heatmap(z=np.eye(3), colorscale="Inferno", colorbar={"title": {"text": "e"}})
    )
    fig.add_trace(go.Scatter(y=[1, 2], line={"color": "#000010"}))
    assert any("#000004" in s for s in audit(fig))
    style(fig)
    assert audit(fig) == [] and "#0000" not in fig.to_json()
    assert fig.data[0].colorscale[0][1] == "rgb(0, 0, 4)"  # the same near-black
    assert fig.data[1].line.color == "rgb(0, 0, 16)"


def test_audit_flags_an_untitled_colour_bar_and_a_free_image():
    fig = style(go.Figure(go.Heatmap(z=np.eye(3))))
    assert any("colour bar has no title" in s for s in audit(fig))
    fig = go.Figure(go.Heatmap(z=np.eye(3), colorbar={"title": {"text": "v"}}))
    fig.update_yaxes(scaleanchor=False)  # a space-time map may opt out of 1:1
    style(fig)
    assert fig.layout.yaxis.scaleanchor is False and audit(fig) == []
    assert "not anchored" in " ".join(audit(fig.update_yaxes(scaleanchor="x2")))


@pytest.mark.slow
def test_a_round_inclusion_stays_round_in_the_exported_png():
    """The planted disc of a 64×64 upload is as wide as it is tall in the file, whatever the
    export's width (the oval of the issue came from free axes stretched to the canvas)."""
    from workbench.viz.mri import image_figure

    fig = image_figure(_disc(), title="upload")
    for width in (1000, 500):
        img = _png(fig, width=width, height=420)
        dark = img < 40  # the black image; the page around it is white, its text thin
        ys, xs = np.nonzero(dark.sum(1) > 60)[0], np.nonzero(dark.sum(0) > 60)[0]
        panel = img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        assert abs(panel.shape[0] - panel.shape[1]) <= 2, (width, panel.shape)  # 64 × 64 px
        h, w = _bbox(panel > 200)  # the white disc inside it
        assert abs(h - w) <= 2, (width, h, w)
        assert h > 60


def test_export_takes_the_figures_own_height():
    fig = go.Figure(go.Heatmap(z=np.eye(4), colorbar={"title": {"text": "v"}}))
    fig.update_layout(height=333)
    assert _png(fig).shape == (333, 1000)


# ---- every domain's views --------------------------------------------------------------------

FAST = {"mri": "zero_filled", "eels": "pca_recon", "ot": "sinkhorn", "tumor": "db_lookup"}


def _quick(spec):
    fields = {f.name: f for f in dataclasses.fields(spec.Params)}
    kw = {"max_iter": min(fields["max_iter"].default, 4)} if "max_iter" in fields else {}
    return spec.params(kw)


def _runs(domain):
    dom = registry.get_domain(domain)
    if domain == "pde":
        from workbench.datasets.pde import make_preset
        from workbench.physics.pde.compiled import compile_problem

        p = make_preset("peak2d_single")
        axes = [np.linspace(lo, hi, 40) for lo, hi in p.box]
        u = compile_problem(p).u_on(axes)
        ex = {"x": axes[0], "y": axes[1], "residual_grid": np.full_like(u, 1e-3)}
        a = Result(output=u * 1.01, kind="field", extras=ex, metrics={"rel_l2": 0.01})
        b = Result(output=u * 0.9, kind="field", extras=ex, metrics={"rel_l2": 0.1})
        return dom, p, [("a", a), ("b", b)]
    p = dom.sample(dom.samples[0].name if domain != "ot" else "random_200")
    spec = registry.get_solver(domain, FAST[domain])
    r = spec.solve(p, _quick(spec), None)
    r.metrics = {**(r.metrics or {}), **dom.evaluate(p, r)}
    r2 = dataclasses.replace(r, output=np.asarray(r.output) * 0.9)
    return dom, p, [(FAST[domain], r), ("scaled", r2)]


def _views(domain, dom, p, labelled):
    figs = {"result": registry.resolve(dom.figure)(p, labelled[0][1])}
    if dom.compare_figure:
        figs["compare"] = registry.resolve(dom.compare_figure)(p, labelled)
    if domain == "mri":
        from workbench.viz import mri as V

        figs |= {
            "kspace": V.kspace_figure(p.kspace[0], p.mask),
            "mask": V.mask_figure(p.mask),
            "coils": V.coil_figure(p.maps[0], "phase"),
            "sos": V.sum_of_squares_figure(p.maps),
        }
    elif domain == "eels":
        from workbench.viz import eels as V

        figs["navigator"] = V.navigator_figure(p)
    elif domain == "ot":
        from workbench.viz import ot as V

        figs["measures"] = V.measures_figure(p)  # the cost heatmap of the issue
        figs["plan"] = V.plan_heatmap(labelled[0][1].output)
    elif domain == "pde":
        from workbench.viz import pde as V

        figs["error"] = V.error_figure(p, labelled)
        figs["residual"] = V.residual_figure(p, labelled)
    return figs


@pytest.mark.slow
@pytest.mark.parametrize("domain", ["mri", "pde", "eels", "ot", "tumor"])
def test_every_view_is_in_the_style(domain):
    dom, p, labelled = _runs(domain)
    for name, fig in _views(domain, dom, p, labelled).items():
        style(fig)
        assert audit(fig) == [], (name, audit(fig))
        assert image_axes(fig), name  # each of these views holds at least one image or map
        for xk, yk, _ in image_axes(fig):
            ya = fig.layout[yk]
            if ya.scaleanchor is not False:
                assert ya.scaleanchor == xk.replace("axis", "") and ya.constrain == "domain"
    if domain in ("mri", "pde", "tumor", "ot"):  # comparisons: one colour scale per row of images
        fig = _views(domain, dom, p, labelled)["compare"]
        hm = [t for t in fig.data if t.type == "heatmap"]
        scales = {(t.colorscale, t.zmin, t.zmax) for t in hm}
        assert len(scales) <= 2, scales  # images + error maps at most


@pytest.mark.slow
def test_pde_unit_square_is_square_in_the_png():
    """2-D PDE panels of a square domain are square (they were drawn tall)."""
    from workbench.viz import pde as V

    _, p, labelled = _runs("pde")
    fig = V.error_figure(p, labelled[:1])
    style(fig)
    img = np.asarray(
        Image.open(io.BytesIO(figure_bytes(fig, "png", scale=1, width=900))).convert("RGB")
    ).astype(int)
    coloured = np.abs(img - img.mean(-1, keepdims=True)).sum(-1) > 60  # viridis, not grey text
    coloured[:, int(img.shape[1] * 0.8) :] = False  # leave the colour bar out
    h, w = _bbox(coloured)
    assert abs(h - w) <= 3, (h, w)


def test_eels_score_map_spans_its_pixels():
    from workbench.viz.eels import score_maps_figure

    truth = _disc(32, 5) > 0
    fig = style(score_maps_figure({"a": np.random.default_rng(0).random((32, 32))}, truth))
    full = fig.full_figure_for_development(warn=False)
    lo, hi = sorted(full.layout.xaxis.range)
    assert -0.6 <= lo and hi <= 31.6  # 0..31 (±half a pixel), not −20..40


# ---- the paper figure ------------------------------------------------------------------------


def _panels():
    ref = _disc(48, 10)
    runs = {"A": ref * 0.9, "B": ref + 0.1}
    return P._with_errors(ref, runs, {"A": "PSNR 30.00 dB", "B": "PSNR 20.00 dB"}, "ref", "|x|")


@pytest.mark.parametrize("columns", [1, 2])
def test_paper_figure_is_journal_sized(columns):
    fig = P.paper_figure(_panels(), columns=columns)
    cm = P.COLUMN_CM[columns]
    assert fig.layout.width == round(cm / 2.54 * 96)
    png = Image.open(io.BytesIO(P.paper_bytes(fig, "png")))
    assert png.size[0] == round(cm / 2.54 * 300)  # 1004 px for 8.5 cm, 2079 px for 17.6 cm
    assert png.size == P.png_size(fig)
    assert round(png.info["dpi"][0]) == 300
    pdf = P.paper_bytes(fig, "pdf")
    box = [float(v) for v in re.search(rb"MediaBox\s*\[([^\]]*)\]", pdf).group(1).split()]
    assert box[2] / 72 * 2.54 == pytest.approx(cm, abs=0.02)  # width in cm on the page
    assert P.paper_bytes(fig, "svg").lstrip().startswith(b"<svg")


def test_paper_figure_letters_bars_and_captions():
    fig = style(P.paper_figure(_panels(), columns=2))
    assert audit(fig) == []
    texts = [a.text for a in fig.layout.annotations]
    letters = [re.match(r"<b>([a-z])</b>", t).group(1) for t in texts if t.startswith("<b>")]
    assert letters == list("abcde")  # ref, A, B, |A − ref|, |B − ref|
    assert "PSNR 30.00 dB" in texts and "PSNR 20.00 dB" in texts
    bars = [t for t in fig.data if t.showscale]
    assert [b.colorbar.title.text for b in bars] == ["|x|", "|error|"]  # one bar per group
    images = [t for t in fig.data if t.colorscale and t.name in ("ref", "A", "B")]
    assert len({(t.zmin, t.zmax) for t in images}) == 1  # one shared colour scale


def test_paper_figure_for_every_domain_with_metric_captions():
    _, p, labelled = _runs("pde")
    fig = P.paper_figure_for(p, labelled, columns=1)
    assert audit(style(fig)) == []
    assert any("rel. L2 1.00e-02" in (a.text or "") for a in fig.layout.annotations)
    assert P.caption_for("mri", {"psnr": 31.234, "ssim": 0.9}) == "PSNR 31.23 dB, SSIM 0.900"
    assert P.caption_for("unknown", {"loss": 0.5, "name": "x"}) == "loss 0.5"


def test_paper_figure_of_a_1d_pde_carries_the_metrics_in_its_legend():
    from workbench.datasets.pde import make_preset
    from workbench.physics.pde.compiled import compile_problem

    p = make_preset("poisson1d_sin10")
    x = np.linspace(*p.box[0], 200)
    u = compile_problem(p).u_on([x])
    runs = [
        ("gp", Result(output=u * 1.01, kind="field", extras={"x": x}, metrics={"rel_l2": 0.01})),
        (
            "pinn",
            Result(output=0 * u + 0.3, kind="field", extras={"x": x}, metrics={"rel_l2": 3.25}),
        ),
    ]
    for columns in (1, 2):
        fig = P.paper_figure_for(p, runs, columns=columns)
        assert audit(style(fig)) == []
        assert fig.layout.width == round(P.COLUMN_CM[columns] / 2.54 * 96)
        names = [t.name for t in fig.data if t.showlegend is not False]
        assert names == ["reference", "gp (rel. L2 1.00e-02)", "pinn (rel. L2 3.25e+00)"]
        letters = [a.text for a in fig.layout.annotations]
        assert letters == ["<b>a</b>", "<b>b</b>"]


@pytest.mark.slow
def test_compare_page_offers_the_paper_figure():
    from streamlit.testing.v1 import AppTest

    from workbench.jobs import execute
    from workbench.store import RunStore

    dom = registry.get_domain("ot")
    problem = dom.sample(dom.samples[0].name)
    for name in ("emd", "sinkhorn"):
        spec = registry.get_solver("ot", name)
        execute(spec, problem, spec.params(), store=RunStore())
    at = AppTest.from_file(str(ROOT / "app_pages/compare.py"), default_timeout=60).run()
    assert not at.exception
    labels = [b.proto.label for b in at.get("download_button")]
    assert {"Paper figure PDF", "Paper figure SVG", "Paper figure PNG"} <= set(labels)

    def widths():
        charts = at.get("plotly_chart")
        metas = [json.loads(c.proto.spec).get("layout", {}).get("meta") for c in charts]
        return [m["paper"]["cm"] for m in metas if isinstance(m, dict) and "paper" in m]

    assert widths() == [8.5]  # one journal column by default
    at.radio(key="wb.compare.paper.cols").set_value(2).run()
    assert not at.exception and widths() == [17.6]


def test_page_width_fits_one_image_panel_to_its_height():
    """A single map is drawn as wide as its 1:1 aspect needs (its colour bar beside it); other
    figures keep the page width (None)."""
    from plotly.subplots import make_subplots

    from workbench.viz.style import page_width

    square = style(go.Figure(go.Heatmap(z=np.zeros((64, 64)))).update_layout(height=450))
    wide = style(go.Figure(go.Heatmap(z=np.zeros((32, 128)))).update_layout(height=450))
    plain = style(go.Figure(go.Heatmap(z=np.zeros((64, 64)), showscale=False)))
    w_sq, w_wide, w_plain = page_width(square), page_width(wide), page_width(plain)
    # plot height 450 - 100 - 80 = 270 px; the plot is 270 px wide for a square, 4x for 4:1
    assert w_wide - w_sq == 3 * 270
    assert w_sq - w_plain == 70  # the colour bar's room
    two = make_subplots(rows=1, cols=2)
    two.add_trace(go.Heatmap(z=np.zeros((4, 4))), 1, 1)
    two.add_trace(go.Heatmap(z=np.zeros((4, 4))), 1, 2)
    assert page_width(style(two)) is None
    assert page_width(style(go.Figure(go.Scatter(x=[0, 1], y=[0, 1])))) is None
    fixed = style(go.Figure(go.Heatmap(z=np.zeros((8, 8)))).update_layout(width=300))
    assert page_width(fixed) is None
