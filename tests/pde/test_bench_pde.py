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
    # (the operator's own coefficients, "params", are data a user gives)
    sets = (
        "HELD_OUT",
        "HELD_OUT_2",
        "HELD_OUT_3",
        "HELD_OUT_4",
        "VALIDATION_MIX",
        "VALIDATION_SINGLE",
        "VALIDATION_CHIRP",
    )
    for name in sets:
        for spec in bench[name].values():
            assert set(spec) - {"params"} == {"operator", "domain", "exact"}
    # each held-out set shares no problem with the validation sets or the earlier sets
    seen = {s["exact"] for s in bench["VALIDATION_ALL"].values()}
    for name in ("HELD_OUT", "HELD_OUT_2", "HELD_OUT_3", "HELD_OUT_4"):
        exprs = {s["exact"] for s in bench[name].values()}
        assert len(exprs) >= 5 and not exprs & seen
        seen |= exprs
    # the third set has another operator than Poisson and Allen–Cahn
    for name in ("HELD_OUT_3", "HELD_OUT_4"):
        assert {s["operator"] for s in bench[name].values()} >= {"nl_poisson", "allen_cahn"}
    # every set the held-out section scores is listed there, the validation set with the chirps
    assert [sid for sid, _, _ in bench["HO_SETS"]] == ["HO-val", "HO-diag", "HO", "HO3", "HO4"]
    assert set(bench["VALIDATION_CHIRP"]) <= set(bench["VALIDATION_ALL"])


def _pde_md(measured: str) -> str:
    return (
        "# Benchmarks\n\n## PDE\n\nCommand: `workbench bench pde`  \n"
        f"Measured {measured} 13:57 UTC; numpy 2.4.6.\n\nOne process.\n\n"
        "| id | solver | problem | rel_l2 |\n|---|---|---|---|\n"
        "| GP2 | gp_hm stm + exact finish | poisson1d_sin100 | 3.99e-07 |\n"
        "| GP2 | pinn 3×100 tanh, Adam 1e-3 | poisson1d_sin100 | 5.39 |\n"
        "| GP2 | pinn_fourier 64 RFF + 3×100 | poisson1d_sin100 | 0.893 |\n"
        "| GP4 | alias check | poisson2d_sin100 @200² | max |Δu_a − f| = 1e-13 |\n\n"
        "## PDE: PINN baseline\n\nCommand: `workbench bench pde --only PINN`  \n"
        "Measured 2026-12-07 04:00 UTC.\n\n| id | solver |\n|---|---|\n| PINN | pinn |\n"
    )


def test_stale_pinn_rows_of_the_main_section_are_marked_superseded_once(bench):
    mark, tag = bench["mark_superseded_pinn_rows"], bench["SUPERSEDED"]
    old = _pde_md("2026-11-30")
    new = mark(old, "2026-12-07")
    lines = new.splitlines()
    # only the two PINN rows of GP2 are marked; GP-HM, GP4 and the PINN section are not
    assert [ln.split(" | ")[1] for ln in lines if tag in ln] == [
        f"pinn 3×100 tanh, Adam 1e-3 {tag}",
        f"pinn_fourier 64 RFF + 3×100 {tag}",
    ]
    assert sum("Superseded PINN rows" in ln for ln in lines) == 1
    assert "(measured 2026-12-07)" in new
    assert new.split("## PDE: PINN baseline")[1] == old.split("## PDE: PINN baseline")[1]
    # a rerun refreshes the date instead of stacking a second mark
    again = mark(new, "2026-12-09")
    assert again == new.replace("(measured 2026-12-07)", "(measured 2026-12-09)")
    # a main section measured with the balanced PINN holds fresh rows: left alone
    fresh = _pde_md("2026-12-08")
    assert mark(fresh, "2026-12-09") == fresh
