"""The RGNP part of the PDE page: fields with their ±2σ bands, the inverse problem (observations,
the implied field, a corner plot of the parameter posterior) and a calibration plot."""

from __future__ import annotations

import numpy as np
import streamlit as st

from workbench.ui import common

K = "pde.rgnp"


def problem_from_points(problem, xs, us, sigma: float):
    """The problem with the clicked points as its observations (clipped to the domain)."""
    import dataclasses

    lo, hi = problem.box[0]
    x = np.clip(np.asarray(xs, float), lo, hi)
    return dataclasses.replace(
        problem,
        obs_points=x[:, None],
        obs_values=np.asarray(us, float),
        obs_sigma=float(sigma),
        meta={**problem.meta, "observations": "clicked on the page"},
    )


def click_grid(problem, n_x: int = 61, n_u: int = 41):
    """A faint grid of markers over the (x, u) plane, around the reference at the problem's
    parameters, to click observations onto."""
    from workbench.viz import pde_rgnp as V

    lo, hi = problem.box[0]
    x = np.linspace(lo, hi, 201)
    ref = V.reference_on(problem, x)
    top = float(np.max(ref)) if ref is not None else 1.0
    bot = float(np.min(ref)) if ref is not None else 0.0
    pad = 0.25 * max(top - bot, 1e-3)
    gx, gu = np.meshgrid(np.linspace(lo, hi, n_x), np.linspace(bot - pad, top + pad, n_u))
    return x, ref, gx.ravel(), gu.ravel()


def click_panel(problem) -> None:
    """Place observations by clicking (shift-click, box or lasso for several) and invert them."""
    import plotly.graph_objects as go

    from workbench import registry

    x, ref, gx, gu = click_grid(problem)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=gx,
            y=gu,
            mode="markers",
            marker={"size": 6, "color": "rgba(120,120,120,0.15)"},
            name="click to place",
            hovertemplate="x=%{x:.3f}, u=%{y:.3f}<extra></extra>",
        )
    )
    if ref is not None:
        fig.add_trace(
            go.Scatter(x=x, y=ref, mode="lines", name="reference at the sample's parameters")
        )
    fig.update_layout(
        title="Click points (shift-click, box or lasso for several) to use as observations",
        height=380,
        xaxis_title="x",
        yaxis_title="u",
        clickmode="event+select",
    )
    event = common.chart(
        fig,
        key=f"{K}.click",
        on_select="rerun",
        selection_mode=("points", "box", "lasso"),
    )
    pts = [p for p in (event.selection.points if event else []) if p.get("curve_number") == 0]
    sigma = st.number_input("noise σ_y of the clicked values", 0.0, 10.0, 0.05, key=f"{K}.sigma")
    if len(pts) < 3:
        st.caption(f"{len(pts)} point(s) selected; select at least 3.")
        return
    prob = problem_from_points(problem, [p["x"] for p in pts], [p["y"] for p in pts], sigma)
    spec = registry.get_solver("pde", "rgnp_inverse")
    r = spec.solve(prob, spec.params())
    if r.status == "failed":
        st.error(r.message)
        return
    from workbench.viz import pde_rgnp as V

    st.caption(r.message)
    common.show_figure(
        V.inverse_figure(prob, r, reference=None), "pde-rgnp-clicked", f"{K}.clicked"
    )
    common.show_figure(V.corner_figure(r), "pde-rgnp-clicked-corner", f"{K}.clicked_corner")


def render(problem, results) -> None:
    """Views of the runs whose results carry a pointwise ``std`` (the RGNP solvers)."""
    from workbench.viz import pde_rgnp as V

    runs = [(t, r) for t, r in results if "std" in r.extras and problem.dim == 1]
    if not runs:
        return
    st.subheader("Uncertainty (RGNP)")
    st.caption(
        "Mean ± 2σ against the reference solution. For the inverse model: the observations, the "
        "posterior over the parameters and the field it implies. Upload a CSV `x,u` (header lines "
        "`# problem: nlpoisson1d_param`, `# sigma: 0.05`, `# w: 1.5`) to invert your own data."
    )
    t = st.selectbox("RGNP run", [t for t, _ in runs], key=f"{K}.run")
    r = dict(runs)[t]
    x = np.asarray(r.extras["x"], float)
    ref = V.reference_on(problem, x)
    if "z_samples" in r.extras:
        common.show_figure(
            V.inverse_figure(problem, r, reference=ref), "pde-rgnp-inverse", f"{K}.inv"
        )
        common.show_figure(V.corner_figure(r), "pde-rgnp-corner", f"{K}.corner")
        cov = np.asarray(r.extras["z_cov"], float)
        rows = [
            {"parameter": str(n), "mean": float(m), "sd": float(np.sqrt(c))}
            | ({"true": float(r.extras["z_true"][i])} if "z_true" in r.extras else {})
            for i, (n, m, c) in enumerate(
                zip(r.extras["z_names"], r.extras["z_mean"], np.diag(cov), strict=True)
            )
        ]
        common.table(rows, width="content")
    else:
        common.show_figure(
            V.field_band_figure(problem, r, reference=ref), "pde-rgnp-band", f"{K}.band"
        )
    if ref is not None:
        curves = []
        for name, rr in runs:
            xx = np.asarray(rr.extras["x"], float)
            rf = ref if np.array_equal(xx, x) else V.reference_on(problem, xx)
            curves.append((name, *V.calibration_curve(rr.output, rr.extras["std"], rf)))
        common.show_figure(V.calibration_figure(curves), "pde-rgnp-calibration", f"{K}.cal")
