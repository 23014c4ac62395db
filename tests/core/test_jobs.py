import numpy as np

from workbench.jobs import JobQueue, execute
from workbench.progress import Progress
from workbench.store import RunStore


def test_execute_stores_and_evaluates(toy, tmp_path):
    store = RunStore(tmp_path)
    problem = toy.make(8)
    result, rid = execute(toy.SPEC, problem, toy.SPEC.params(max_iter=5000, lr=0.02), store=store)
    assert result.status == "converged"
    assert result.metrics["error"] < 1e-6
    assert result.meta["wall_s"] > 0 and "numpy" in result.meta["versions"]
    assert store.get(rid).metrics["error"] == result.metrics["error"]


def test_solver_exception_becomes_failed_run(toy, tmp_path):
    store = RunStore(tmp_path)
    bad = toy.ToyProblem(name="bad", A=np.ones((3, 2)), y=np.ones(4))  # shapes do not fit
    result, rid = execute(toy.SPEC, bad, toy.SPEC.params(), store=store)
    assert result.status == "failed" and "ValueError" in result.message
    assert store.get(rid).status == "failed"


def test_cancel_at_k_equals_max_iter_k(toy):
    p = toy.make(8)
    a, _ = execute(toy.SPEC, p, toy.SPEC.params(max_iter=500), Progress(cancel_after=7))
    b, _ = execute(toy.SPEC, p, toy.SPEC.params(max_iter=7))
    assert a.status == "cancelled" and a.iterations == 7
    np.testing.assert_array_equal(a.output, b.output)


def test_queue_runs_in_background_and_cancels(toy, tmp_path):
    store = RunStore(tmp_path)
    q = JobQueue(store)
    p = toy.make(16)
    slow = q.submit(toy.SPEC, p, toy.SPEC.params(max_iter=100_000, lr=1e-6, tol=0.0))
    queued = q.submit(toy.SPEC, p, toy.SPEC.params(max_iter=10))
    while slow.progress.step < 5:
        pass
    queued.cancel()  # cancelled while waiting: never runs, nothing stored
    slow.cancel()
    assert q.wait(60)
    assert slow.state == "done" and slow.result.status == "cancelled"
    assert 5 <= slow.result.iterations < 100_000
    assert queued.state == "cancelled" and queued.result is None
    assert [r.status for r in store.list()] == ["cancelled"]
