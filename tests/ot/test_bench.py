"""The OT benchmark script: table rendering (fast) and the --quick --json contract (slow)."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("ot_bench", ROOT / "benchmarks" / "ot.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(solver, it, wall, e, note="", total=None):
    r = {
        "label": "random_500",
        "problem": "random_500",
        "n": 500,
        "m": 500,
        "eta": 1200.0,
        "solver": solver,
        "iterations": it,
        "wall_s": wall,
        "marginal_error": e,
        "converged": e <= 1e-8,
        "cost": 0.0035,
        "note": note,
    }
    if total is not None:
        r["iterations_total"] = total
    return r


def test_tables_render_ratios_and_targets():
    b = _bench()
    rows = [
        _row("sns", "20+7", 0.5, 3e-9, total=27),
        _row("POT sinkhorn", 18620, 30.0, 2e-9),
        _row("POT sinkhorn_log", 900, 60.0, 1e-5, "capped"),
        _row("RegOT sinkhorn_sparse_newton", 14, 0.3, 1e-11),
        {**_row("POT emd (exact)", "exact", 0.05, 0.0), "cost": 0.0032},
    ]
    md = b.markdown(rows)
    assert "| random_500 | 1200 | POT sinkhorn | 18620 |" in md and "| 690 |" in md  # 18620 / 27
    t = b.targets(rows)
    assert "POT sinkhorn 690x" in t and "lower bound" in t
    assert "| OT2 | SNS <= 2 s at random_500 | 0.50 s | yes |" in t


@pytest.mark.slow
def test_quick_json(capsys):
    b = _bench()
    assert b.main(["--quick", "--json", "--cap-s", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    for name in ("sns", "POT sinkhorn", "sinkhorn"):
        s = out["solvers"][name]
        assert {"iterations", "wall_s", "marginal_error"} <= set(s)
    assert out["solvers"]["sns"]["marginal_error"] <= 1e-8
