"""The OT benchmark script: table rendering (fast) and the --quick --json contract (slow)."""

import importlib.util
import json
from pathlib import Path

import pytest

from workbench.datasets import ot as dot

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("ot_bench", ROOT / "benchmarks" / "ot.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(solver, it, wall, e, note="", total=None, passes="-", label="random_500"):
    return {
        "label": label,
        "key": solver,
        "problem": label,
        "n": 500,
        "m": 500,
        "eta": 1200.0,
        "solver": solver,
        "iterations": it,
        "iterations_total": total if total is not None else (it if isinstance(it, int) else None),
        "passes": passes,
        "wall_s": wall,
        "marginal_error": e,
        "converged": e <= 1e-8,
        "cost": 0.0035,
        "note": note,
        "curve": None,
    }


def test_tables_give_ratios_only_to_rows_that_reached_tol():
    b = _bench()
    rows = [
        _row("sns", "20+7", 0.5, 3e-9, total=27, passes=80),
        _row("POT sinkhorn", 18620, 30.0, 2e-9, passes=38483),
        _row("POT sinkhorn_log", 900, 60.0, 1e-5, "capped at 60 s", passes=1891),
        _row("RegOT sinkhorn_ssns", 14, 0.3, 1e-11),
        {**_row("POT emd (exact)", "exact", 0.05, 0.0), "cost": 0.0032},
    ]
    md = b.markdown(rows)
    assert (
        "| random_500 | 1200 | POT sinkhorn | 18620 | 38483 | 30 | 2.0e-09 | yes | 60 | 481 |" in md
    )
    capped = next(line for line in md.splitlines() if "sinkhorn_log" in line)
    assert "| **no** | - | - | - |" in capped  # no ratio, no cost gap for a row short of tol
    t = b.targets(rows)
    assert "| I20 | random_500: SNS >= 10x faster than POT sinkhorn to e <= 1e-8 | 60.0x" in t
    assert "SNS/RegOT = 1.67" in t and "| OT1 |" in t
    # a POT run capped before tol: only a lower bound, stated as such
    rows[1] = _row("POT sinkhorn", 9000, 20.0, 1e-6, "capped at 20 s")
    assert "> 40x (lower bound)" in b.targets(rows)


def test_pot_chunks_follow_one_uninterrupted_run_and_stop_on_l1():
    """Warm-restarted chunks = one POT run; the count found is the first to meet e <= tol."""
    import ot

    b = _bench()
    p = dot.random_assignment(40, seed=3)
    eta = 30.0
    row = b.run_pot("sinkhorn", p, eta, cap_s=30.0)
    assert row["converged"] and row["marginal_error"] <= b.TOL
    n_it = row["iterations"]
    P = ot.bregman.sinkhorn_knopp(p.a, p.b, p.C, 1 / eta, numItermax=n_it, stopThr=0.0, warn=False)
    assert b._e(P, p) <= b.TOL
    # at most one refinement step (an eighth of the last chunk, >= 10) too late
    step = max(10, n_it // 8)
    P_early = ot.bregman.sinkhorn_knopp(
        p.a, p.b, p.C, 1 / eta, numItermax=max(1, n_it - step), stopThr=0.0, warn=False
    )
    assert b._e(P_early, p) > b.TOL or n_it <= 10
    assert row["passes"] == b._pot_passes(n_it)
    assert row["curve"]["e"][-1] <= b.TOL and len(row["curve"]["t"]) == len(row["curve"]["e"])


def test_regot_tolerance_is_converted_to_l1():
    b = _bench()
    p = dot.random_assignment(60, seed=1)
    row = b.run_regot(p, 300.0, curve=True)
    assert row["converged"] and row["marginal_error"] <= b.TOL
    assert row["curve"]["e"][-1] <= b.TOL  # the last truncated rerun is the full run


def test_check_fails_on_missing_rows_and_non_convergence():
    from workbench.bench import CheckFailed

    b = _bench()
    specs = [("random_500", None, 1200.0, ["sns", "POT sinkhorn"])]
    good = [_row("sns", "5+16", 1.0, 1e-9, passes=65), _row("POT sinkhorn", 900, 20.0, 1e-6)]
    b.run_checks(good, specs)  # POT capped short of tol is allowed on this label
    with pytest.raises(CheckFailed, match="missing"):
        b.run_checks(good[:1], specs)
    with pytest.raises(CheckFailed, match="did not reach"):
        b.run_checks([_row("sns", "5+16", 1.0, 1e-3), good[1]], specs)
    with pytest.raises(CheckFailed, match="not finite"):
        b.run_checks([good[0], _row("POT sinkhorn", 900, 20.0, float("nan"))], specs)


@pytest.mark.slow
def test_quick_check_json(capsys):
    b = _bench()
    assert b.main(["--quick", "--check", "--json", "--only", "gauss_clouds"]) == 0
    out = json.loads(capsys.readouterr().out)
    for name in ("sns", "POT sinkhorn", "sinkhorn", "RegOT sinkhorn_ssns"):
        s = out["solvers"][name]
        assert {"iterations", "passes", "wall_s", "marginal_error"} <= set(s)
        assert s["converged"] and s["marginal_error"] <= 1e-8
