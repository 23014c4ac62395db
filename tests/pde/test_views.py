import io

import h5py
import numpy as np

from workbench.datasets.pde import make_preset
from workbench.io import pde as pio
from workbench.result import Result
from workbench.viz import pde as V


def _fake(problem, n=50):
    axes = [np.linspace(lo, hi, n) for lo, hi in problem.box]
    from workbench.physics.pde.compiled import compile_problem

    comp = compile_problem(problem)
    u = comp.u_on(axes) * 1.01
    ex = {
        "x": axes[0],
        "residual_grid": np.ones_like(u) * 1e-3,
        "weights_x": np.array([0.5, 1e-6]),
        "freqs_x": np.array([1.0, 3.0]),
    }
    if problem.dim == 2:
        ex["y"] = axes[1]
    return Result(
        output=u,
        kind="field",
        extras=ex,
        metrics={"rel_l2_best": 0.01, "rel_l2_best_step": 5.0},
        iterations=5,
    )


def test_figures_build_for_1d_and_2d():
    for name in ("poisson1d_sin10", "peak2d_single"):
        p = make_preset(name)
        runs = [("a", _fake(p)), ("b", _fake(p, 40))]
        assert len(V.result_figure(p, runs[0][1]).data) >= 2
        assert V.solutions_figure(p, runs).data
        assert V.error_figure(p, runs).data
        assert V.residual_figure(p, runs).data
        assert V.spectrum_figure(runs[0][1]).data
        rows = V.metrics_rows(p, runs)
        assert (
            rows[0]["rel_l2"] > 0
            and rows[0]["rel_l2 best (oracle)".replace(" best", "_best")] == 0.01
        )
        if p.dim == 2:
            assert V.surface_figure(p, runs[0][1]).data[0].type == "surface"
            assert V.surface_figure(p, runs[0][1], "error").data


def test_exports_round_trip():
    p = make_preset("peak2d_single")
    r = _fake(p)
    arrays = pio.solution_arrays(p, r)
    z = np.load(io.BytesIO(pio.to_npz(arrays)))
    np.testing.assert_array_equal(z["output"], r.output)
    assert z["u_test"].shape == (300, 300)
    with h5py.File(io.BytesIO(pio.to_hdf5(arrays, {"problem": p.name})), "r") as f:
        np.testing.assert_array_equal(f["x"][()], r.extras["x"])
    csv = pio.to_csv(p, r).decode().splitlines()
    assert csv[0] == "x,y,u" and len(csv) == 1 + 50 * 50


def _staged(problem, with_density):
    rng = np.random.default_rng(0)
    pts = np.full((3, 120, problem.dim), np.nan)
    for k, n in enumerate((100, 110, 120)):
        pts[k, :n] = rng.uniform(-1, 1, (n, problem.dim))
    r = _fake(problem)
    r.extras.update(
        stage_points=pts,
        stage_rel_l2=np.array([1.0, 0.5, 0.1]),
        stage_w1=np.array([0.5, 0.2, 0.1]),
        residual_check=rng.random((100,) * problem.dim),
        sampler="aas",
    )
    r.metrics.update(residual_w1=0.1, residual_cv=1.5, suspect=1.0)
    r.extras["suspect_reasons"] = "the loss fell only 2×"
    r.history = {
        "step": [1.0, 2.0],
        "loss": [1.0, 0.1],
        "loss_residual": [1.0, 0.1],
        "loss_boundary": [0.0, 0.0],
    }
    if with_density:
        r.extras["stage_density"] = rng.random((2,) + (64,) * problem.dim)
        r.extras["density_x"] = np.linspace(-1, 1, 64)
        if problem.dim == 2:
            r.extras["density_y"] = np.linspace(-1, 1, 64)
    return r


def test_sampling_views_show_every_stage():
    for name in ("poisson1d_sin10", "peak2d_single"):
        p = make_preset(name)
        r = _staged(p, True)
        fig = V.stages_figure(p, r)
        if p.dim == 2:
            assert len(fig.frames) == 3 and len(fig.layout.sliders[0].steps) == 3
            assert len(fig.frames[1].data[0].x) == 110
            assert len(V.density_figure(p, r).frames) == 2
        else:
            assert [len(t.x) for t in fig.data] == [100, 110, 120]
            assert len(V.density_figure(p, r).data) == 2
        h = V.residual_histogram_figure([("aas", r)])
        assert "W1 0.1" in h.data[0].name
        assert len(V.stage_metrics_figure([("aas", r)]).data) == 2
        assert len(V.loss_terms_figure([("aas", r)]).data) == 2  # the zero boundary term is dropped
        assert V.metrics_rows(p, [("aas", r)])[0]["suspect"].startswith("yes")


def test_error_curves_leave_a_gap_where_the_error_is_at_rounding_level():
    """Exact boundary values are not drawn as a dive to 1e-20 on the log axis."""
    import numpy as np

    from workbench.viz.pde import _curve_err

    true = np.sin(np.linspace(0.0, 3.0, 50))
    pred = true.copy()
    pred[1:-1] += 1e-4
    err = _curve_err(pred, true)
    assert np.isnan(err[[0, -1]]).all()
    np.testing.assert_allclose(err[1:-1], 1e-4, rtol=1e-6)
