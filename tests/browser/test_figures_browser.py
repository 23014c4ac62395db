"""Figures as the browser draws them: image panels at 1:1 on the page (measured on the plot's
SVG), every axis of an image and every colour bar titled; and the 3D view's fallback to the
server-rendered PNG when the browser has no WebGL."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.browser

# For each plotly chart on the page: every subplot (whether it holds an image), with the size of
# its drag rectangle (the axes' box on screen), its data extent and its axis titles; and the text
# of every colour bar's title.
_MEASURE = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => {
  const full = gd._fullLayout, panels = [];
  for (const sp of gd.querySelectorAll('g.cartesianlayer > g.subplot')) {
    const id = Array.from(sp.classList).find(c => /^x\\d*y\\d*$/.test(c));
    if (!id) continue;
    const image = !!sp.querySelector('g.hm, g.heatmaplayer image, image');
    const [, xs, ys] = id.match(/^x(\\d*)y(\\d*)$/);
    const rect = gd.querySelector(`.draglayer .${id} rect.nsewdrag`).getBoundingClientRect();
    const xa = full['xaxis' + xs], ya = full['yaxis' + ys];
    const text = sel => { const t = gd.querySelector(sel); return t ? t.textContent.trim() : ''; };
    panels.push({id, image, w: rect.width, h: rect.height,
                 dx: Math.abs(xa.range[1] - xa.range[0]), dy: Math.abs(ya.range[1] - ya.range[0]),
                 xtitle: text(`text.x${xs}title`), ytitle: text(`text.y${ys}title`)});
  }
  const bars = Array.from(gd.querySelectorAll('g.colorbar')).map(
    cb => { const t = cb.querySelector('.cbtitle text'); return t ? t.textContent.trim() : ''; });
  // the lowest colour of every Inferno scale as the page draws it (the second stop identifies it)
  const inferno = gd._fullData.filter(t => t.colorscale && t.colorscale[1] &&
                                      t.colorscale[1][1] === '#1b0c41').map(t => t.colorscale[0][1]);
  return {panels, bars, inferno};
})
"""


def test_mri_images_are_square_and_every_axis_and_bar_titled(server, page):
    page.goto(server["url"])
    page.get_by_text("Inverse Workbench").first.wait_for()
    page.get_by_role("link", name="MRI").first.click()
    page.get_by_text("Mask & zero-filled").first.wait_for(timeout=120_000)
    # the mask and the zero-filled comparison (reference, reconstruction, error map)
    page.locator(".js-plotly-plot g.subplot image").nth(3).wait_for(timeout=120_000)
    charts = page.evaluate(_MEASURE)
    panels = [p for c in charts for p in c["panels"]]
    images = [p for p in panels if p["image"]]
    assert len(images) >= 4, charts
    for p in images:
        # one data unit is as long on screen in x as in y: a 64×64 image is a square
        assert p["w"] / p["dx"] == pytest.approx(p["h"] / p["dy"], rel=0.03), p
    for p in panels:  # every axis of every chart on the page, images or curves
        assert p["xtitle"] and p["ytitle"], p
    bars = [b for c in charts for b in c["bars"]]
    assert bars and all(bars), bars
    # zero error is black on the page as in the file (Streamlit swapped #000004 for a theme colour)
    lowest = [c for ch in charts for c in ch["inferno"]]
    assert lowest and set(lowest) == {"rgb(0, 0, 4)"}, lowest


def test_3d_view_falls_back_to_the_png_without_webgl(browser, tmp_path):
    """A browser whose WebGL fails gets the server-rendered PNG in the 3D frame, not a blank."""
    from workbench.viz.three_d import Scene, with_png_fallback

    vol = np.fromfunction(lambda i, j, k: (i - 8) ** 2 + (j - 8) ** 2 + (k - 8) ** 2, (16,) * 3)
    out = Scene().isosurface(vol, 30.0, name="ball").render(png=True, html=True)
    html = with_png_fallback(out["html"], out["png"], probe_ms=1500)
    path = tmp_path / "scene.html"
    path.write_bytes(html)
    ctx = browser.new_context()
    try:
        pg = ctx.new_page()
        # this browser has no WebGL: every WebGL context request fails
        pg.add_init_script(
            "const g = HTMLCanvasElement.prototype.getContext;"
            "HTMLCanvasElement.prototype.getContext = function (t, a) {"
            "  return String(t).startsWith('webgl') ? null : g.call(this, t, a); };"
        )
        pg.goto(path.as_uri())
        img = pg.locator("img#wb-fallback")
        img.wait_for(timeout=30_000)
        assert pg.evaluate("document.getElementById('wb-fallback').naturalWidth") == 900
        assert "server-rendered" in pg.inner_text("body")
    finally:
        ctx.close()
    # where WebGL draws the scene (the ball fills the frame's centre) the view stays interactive
    ctx = browser.new_context()
    try:
        pg = ctx.new_page()
        pg.goto(path.as_uri())
        pg.locator("canvas").first.wait_for(timeout=30_000)
        pg.wait_for_timeout(3000)  # past the 1.5 s blank-frame probe
        assert pg.locator("img#wb-fallback").count() == 0
    finally:
        ctx.close()
