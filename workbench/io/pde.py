"""PDE solution export: the solution on its grid (and on the test grid) as NPZ, CSV or HDF5."""

from __future__ import annotations

import io

import numpy as np


def solution_arrays(problem, result) -> dict[str, np.ndarray]:
    """Named arrays of a run: ``output`` on the solver grid with ``x`` (and ``y``), and the test-grid
    prediction ``u_test`` with the truth ``u_true`` and the error."""
    from workbench.physics.pde.compiled import compile_problem
    from workbench.physics.pde.metrics import prediction_on_test, truth_on_test

    out = {"output": np.asarray(result.output, float), "x": np.asarray(result.extras["x"], float)}
    if problem.dim == 2:
        out["y"] = np.asarray(result.extras["y"], float)
    axes = compile_problem(problem).test_axes()
    out["x_test"] = axes[0]
    if problem.dim == 2:
        out["y_test"] = axes[1]
    u = prediction_on_test(problem, result)
    out["u_test"] = u
    out["u_true"] = truth_on_test(problem)
    out["error"] = u - out["u_true"]
    return out


def to_npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def to_csv(problem, result) -> bytes:
    """Long-format CSV of the solver-grid solution: x[,y],u."""
    arr = solution_arrays(problem, result)
    if problem.dim == 1:
        table = np.column_stack([arr["x"], arr["output"]])
        header = f"{problem.variables[0]},u"
    else:
        X, Y = np.meshgrid(arr["x"], arr["y"], indexing="ij")
        table = np.column_stack([X.ravel(), Y.ravel(), arr["output"].ravel()])
        header = f"{problem.variables[0]},{problem.variables[1]},u"
    buf = io.StringIO()
    np.savetxt(buf, table, delimiter=",", header=header, comments="", fmt="%.17g")
    return buf.getvalue().encode()


def to_hdf5(arrays: dict[str, np.ndarray], attrs: dict | None = None) -> bytes:
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v)
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
    return buf.getvalue()
