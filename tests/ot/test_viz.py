"""The OT views build for every kind of problem and respect the mass."""

import numpy as np
import plotly.graph_objects as go

from workbench.datasets import ot as dot
from workbench.solvers.ot import emd, sinkhorn_newton
from workbench.viz import ot as v


def test_views_build_for_each_kind():
    for p in (
        dot.hist1d(),
        dot.digits_w2(),
        dot.gauss_clouds(n=60, m=50),
        dot.random_assignment(40),
    ):
        r = sinkhorn_newton.solve(p, sinkhorn_newton.Params(reg=1e-2))
        r0 = emd.solve(p, emd.Params())
        for fig in (
            v.measures_figure(p),
            v.plan_heatmap(r.output),
            v.convergence_figure([("sns", r), ("emd", r0)]),
            v.sparsity_figure(p, r),
            v.displacement_figure(p, r0.output),
            v.histograms_1d(p, r),
            v.result_figure(p, r),
        ):
            assert isinstance(fig, go.Figure)
            fig.to_dict()


def test_interpolation_endpoints_and_block_reduction():
    p = dot.gauss_clouds(n=30, m=20)
    P = emd.solve(p, emd.Params()).output
    pts0, w0 = v.interpolate(p, P, 0.0)
    pts1, w1 = v.interpolate(p, P, 1.0)
    assert abs(w0.sum() - 1) < 1e-12
    # at t=0 the mass sits on the source points, at t=1 on the target points
    assert np.all(np.isclose(pts0[:, None, :], p.X[None]).all(-1).any(1))
    assert np.all(np.isclose(pts1[:, None, :], p.Y[None]).all(-1).any(1))
    Q, fr, fc = v._reduce(np.ones((1000, 10)), cap=400)
    assert Q.sum() == 10_000 and Q.shape[0] <= 400 and fc == 1


def test_bench_curves_panels_one_trace_per_solver_and_problem():
    from workbench.viz.ot import bench_curves_panels

    curves = {
        "random_500": {
            "sns": {"t": [0.1, 0.5], "e": [1e-2, 1e-9], "passes": [3, 60]},
            "RegOT sinkhorn_ssns": {"t": [0.05, 0.3], "e": [1e-3, 1e-11]},
        },
        "cloud_500": {"sns": {"t": [0.2, 0.9], "e": [1e-1, 0.0], "passes": [5, 70]}},
    }
    fig = bench_curves_panels(curves, ["random_500", "cloud_500"])
    assert len(fig.data) == 3
    assert [t.name for t in fig.data].count("sns") == 2
    assert sum(t.showlegend for t in fig.data) == 2  # one legend entry per solver
    assert np.isnan(fig.data[2].y[-1])  # a zero error is not drawn on the log axis
    by_passes = bench_curves_panels(curves, ["random_500", "cloud_500"], x="passes")
    assert len(by_passes.data) == 2  # RegOT has no pass counts
