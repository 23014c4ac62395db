"""The RGNP part of the PDE page: fields with their ±2σ bands, the inverse problem (observations,
the implied field, a corner plot of the parameter posterior) and a calibration plot."""

from __future__ import annotations

import numpy as np
import streamlit as st

from workbench.ui import common

K = "pde.rgnp"


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
        st.dataframe(rows, hide_index=True)
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
