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
