"""The run verdict (workbench.result.judge) on planted cases, and its trip through the store."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from workbench.problems import OTProblem
from workbench.result import Result, judge
from workbench.store import RunStore


def _result(status="max_iter", history=None, metrics=None, output=None, extras=None, it=100):
    return Result(
        output=np.ones(4) if output is None else output,
        kind="field",
        status=status,
        iterations=it,
        history=history or {},
        metrics=metrics or {},
        extras=extras or {},
    )


def _decaying(n=50, start=1.0, rate=0.9):
    return {"step": list(range(n)), "loss": [start * rate**k for k in range(n)]}


def test_flat_loss_pinn_is_suspect_even_with_a_planned_budget():
    # a PINN returning a parabola for sin 10x: the loss barely moves, relative L2 is 3.25
    rng = np.random.default_rng(0)
    flat = {"step": list(range(200)), "loss": list(2.0 + 0.01 * rng.standard_normal(200))}
    v = judge(_result(history=flat), planned_stop=True)
    assert v.code == "suspect" and "loss is flat" in v.reason
    v = judge(_result(history=_decaying(), metrics={"rel_l2": 3.25}), planned_stop=True)
    assert v.code == "suspect" and "rel_l2 = 3.25" in v.reason


def test_max_iter_with_a_falling_residual_is_at_the_limit():
    hist = {"step": list(range(30)), "residual": [10.0 / (k + 1) for k in range(30)]}
    v = judge(_result(history=hist, it=30))
    assert v.code == "at_limit" and "30" in v.reason and v.label == "stopped at the limit"


def test_a_by_design_iteration_count_is_stopped_by_design():
    hist = {"step": list(range(10)), "residual": [2.0**-k for k in range(10)]}
    v = judge(_result(history=hist, it=10), planned_stop=True)
    assert v.code == "by_design" and v.label == "stopped by design"
    # the same run from a solver whose limit is not part of the method
    assert judge(_result(history=hist, it=10)).code == "at_limit"


def test_converged_failed_and_cancelled_keep_their_status():
    assert judge(_result("converged", _decaying())).code == "converged"
    # a converged run may have a flat tail: flatness only judges runs that hit their limit
    flat = {"loss": [1.0] * 20}
    assert judge(_result("converged", flat)).code == "converged"
    assert judge(_result("failed", output=np.zeros(0))).code == "failed"
    assert judge(_result("cancelled", _decaying())).code == "cancelled"


def test_fine_tuning_from_a_checkpoint_is_not_called_flat():
    flat = {"loss": [1.0] * 20}
    tuned = _result(history=flat)
    tuned.meta["init"] = "cvae3d_default.pt"
    assert judge(tuned).code == "at_limit"
    tuned.meta["init"] = "scratch"
    assert judge(tuned).code == "suspect"


def test_short_or_signed_histories_are_not_called_flat():
    assert judge(_result(history={"loss": [1.0] * 5})).code == "at_limit"  # too few steps
    signed = {"loss": [-3.0] * 50}  # a log-likelihood: a ratio means nothing
    assert judge(_result(history=signed)).code == "at_limit"


def test_self_flag_nan_output_and_baseline_make_a_run_suspect():
    v = judge(
        _result("converged", metrics={"suspect": 1.0}, extras={"suspect_reasons": "residual high"})
    )
    assert v.code == "suspect" and "residual high" in v.reason
    assert judge(_result("converged", output=np.array([1.0, np.nan]))).code == "suspect"
    worse = judge(
        _result("converged", metrics={"psnr": 24.0}), key_metric="psnr", baseline=("zf", 27.5)
    )
    assert worse.code == "suspect" and "zf" in worse.reason
    better = judge(
        _result("converged", metrics={"psnr": 31.0}), key_metric="psnr", baseline=("zf", 27.5)
    )
    assert better.code == "converged"
    lower = judge(
        _result("converged", metrics={"rel_l2": 0.2}),
        key_metric="rel_l2",
        higher_is_better=False,
        baseline=("ref", 0.1),
    )
    assert lower.code == "suspect"


def _ot_problem():
    x = np.linspace(0, 1, 5)
    return OTProblem(
        name="tiny", a=np.full(5, 0.2), b=np.full(5, 0.2), C=(x[:, None] - x[None]) ** 2
    )


def test_the_verdict_is_stored_listed_and_filtered(tmp_path):
    store = RunStore(tmp_path)
    prob = _ot_problem()
    hist = {"step": list(range(30)), "residual": [1.0 / (k + 1) for k in range(30)]}
    rid = store.save(prob, "x", {}, _result(history=hist, it=30))
    info = store.get(rid)
    assert info.verdict == "at_limit" and "30" in info.verdict_reason
    assert store.load_result(rid).meta["verdict"]["code"] == "at_limit"
    store.save(prob, "y", {}, _result("converged"))
    assert [r.run_id for r in store.list(verdict="at_limit")] == [rid]


def test_an_index_from_before_verdicts_gains_the_columns(tmp_path):
    store = RunStore(tmp_path)
    rid = store.save(_ot_problem(), "x", {}, _result("converged"))
    con = sqlite3.connect(tmp_path / "index.sqlite")
    # rebuild the table as it was: 14 columns, no verdict
    con.executescript(
        """
        CREATE TABLE old AS SELECT run_id, created, domain, solver, problem_id, problem, params,
            metrics, status, iterations, wall_s, versions, message, label FROM runs;
        DROP TABLE runs; ALTER TABLE old RENAME TO runs;
        """
    )
    con.close()
    again = RunStore(tmp_path)
    info = again.get(rid)
    assert info.verdict == "" and info.verdict_label == "not judged"
    rid2 = again.save(_ot_problem(), "x", {}, _result("converged"))
    assert again.get(rid2).verdict == "converged"


@pytest.mark.parametrize("status", ["converged", "max_iter"])
def test_execute_judges_a_real_run(tmp_path, status):
    from workbench.jobs import execute
    from workbench.registry import get_solver

    spec = get_solver("ot", "sinkhorn")
    max_iter = 2 if status == "max_iter" else 10_000
    params = spec.params({"max_iter": max_iter, "reg": 0.05})
    result, rid = execute(spec, _ot_problem(), params, store=RunStore(tmp_path))
    assert result.status == status
    want = {"converged": "converged", "max_iter": "at_limit"}[status]
    assert result.meta["verdict"]["code"] == want
    assert RunStore(tmp_path).get(rid).verdict == want
