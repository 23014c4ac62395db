"""The correctness gate of ``workbench bench pde --check`` (never about time)."""

import runpy

import pytest

from workbench.bench import CheckFailed, benchmarks_dir


@pytest.fixture(scope="module")
def bench():
    return runpy.run_path(str(benchmarks_dir() / "pde.py"), run_name="bench_pde_test")


def _as_rows(bench, drop=None):
    rows = []
    for pname, _ in bench["_as_problems"]():
        for s in ("pinn_uniform (fixed)", "pinn_rar", "pinn_rad", "pinn_aas"):
            if (pname, s) != drop:
                rows.append({"id": "AS", "solver": s, "problem": pname, "rel_l2": 0.5})
    return rows


def test_check_passes_complete_finite_rows_and_flags_faults(bench):
    check_rows = bench["check_rows"]
    rows = _as_rows(bench) + [
        {"id": "GP3", "solver": "Kronecker vs dense K (20×20)", "rel_l2": 1e-15},
        {"id": "GP4", "solver": "gp_hm stm", "rel_l2": 2e-3, "_finish_converged": 0.0},
    ]
    check_rows(rows, ["AS", "GP3", "GP4"], quick=True)  # an unconverged finish is printed only
    with pytest.raises(CheckFailed, match="missing"):
        check_rows(_as_rows(bench, drop=("peak2d_single", "pinn_aas")), ["AS"], quick=True)
    with pytest.raises(CheckFailed, match="rel_l2"):
        check_rows(rows + [{"id": "GP1", "solver": "gp_hm", "rel_l2": float("nan")}], ["AS"], True)
    with pytest.raises(CheckFailed, match="Kronecker"):
        check_rows([{"id": "GP3", "solver": "Kronecker vs dense", "rel_l2": 1e-6}], ["GP3"], True)
    with pytest.raises(CheckFailed, match="converged flag"):
        check_rows([{"id": "GP4", "solver": "gp_hm stm", "rel_l2": 1e-3}], ["GP4"], True)
    with pytest.raises(CheckFailed, match="no rows"):
        check_rows([], ["HO"], True)


def test_held_out_problems_carry_no_setting_taken_from_the_answer(bench):
    # no grid size and no frequency bound: both come from the source, as for a user's file
    for specs in (bench["HELD_OUT"], bench["HELD_OUT_2"], bench["VALIDATION_MIX"]):
        for spec in specs.values():
            assert set(spec) == {"operator", "domain", "exact"}
    # the second held-out set shares no problem with the validation sets or the first one
    exprs = {s["exact"] for s in (*bench["HELD_OUT"].values(), *bench["VALIDATION_MIX"].values())}
    assert len(bench["HELD_OUT_2"]) >= 5
    assert not exprs & {s["exact"] for s in bench["HELD_OUT_2"].values()}
