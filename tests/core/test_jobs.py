import os
import signal
import sys
import time
import types

import numpy as np
import pytest

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


# ---- the process backend: one worker process shared by the tests below (spawn costs seconds) ---


@pytest.fixture(scope="module")
def pq(tmp_path_factory):
    q = JobQueue(RunStore(tmp_path_factory.mktemp("pq")), backend="process")
    yield q
    q.close()


def _new_runs(q, before):
    return [r for r in q.store.list() if r.run_id not in before]


def test_process_and_thread_backends_give_the_same_ot_run(pq, tmp_path):
    from workbench import registry

    spec = registry.get_solver("ot", "sinkhorn")
    problem = registry.get_domain("ot").sample("hist1d")
    params = spec.params({"max_iter": 50})
    tq = JobQueue(RunStore(tmp_path), backend="thread")
    a, b = tq.submit(spec, problem, params), pq.submit(spec, problem, params)
    assert tq.wait(120) and pq.wait(120)
    assert a.error is None and b.error is None
    assert a.result.status == b.result.status and a.result.iterations == b.result.iterations
    np.testing.assert_array_equal(a.result.output, b.result.output)
    timing = {"wall_s", "time_s"}
    assert {k: v for k, v in a.result.metrics.items() if k not in timing} == {
        k: v for k, v in b.result.metrics.items() if k not in timing
    }
    # stored by the worker, in the queue's store
    stored = pq.store.load_result(b.run_id)
    np.testing.assert_array_equal(stored.output, b.result.output)
    steps = [r["step"] for r in b.progress.snapshot()]
    assert steps == [r["step"] for r in a.progress.snapshot()] and len(steps) > 1
    # before its first step each job said what it was doing: running the solver (and, for the
    # process backend, whatever the worker had to start or import first), with the times
    for job in (a, b):
        texts = [text for _, text in job.progress.notes]
        assert f"running {spec.title}" in texts
        times = [t for t, _ in job.progress.notes]
        assert times == sorted(times) and times[0] >= 0


def test_process_cancel_at_k_equals_max_iter_k(pq, toy):
    p = toy.make(16)
    job = pq.submit(toy.SPEC, p, toy.SPEC.params(max_iter=100_000, lr=1e-6, tol=0.0))
    t_end = time.time() + 60
    while job.progress.step < 5 and time.time() < t_end:
        time.sleep(0.01)
    job.cancel()
    assert pq.wait(60)
    res = job.result
    assert res.status == "cancelled" and 5 <= res.iterations < 100_000
    ref, _ = execute(toy.SPEC, p, toy.SPEC.params(max_iter=res.iterations, lr=1e-6, tol=0.0))
    np.testing.assert_array_equal(res.output, ref.output)
    # every report arrived, in order, up to the step it stopped at
    assert [r["step"] for r in job.progress.snapshot()] == list(range(1, res.iterations + 1))


def test_process_input_error_is_the_jobs_error_and_nothing_is_stored(pq, toy):
    from workbench import registry

    registry.add_catalog(solvers="toy_refuse")
    spec = registry.get_solver("toy", "refuse")
    before = {r.run_id for r in pq.store.list()}
    job = pq.submit(spec, toy.make(8), spec.params())
    assert pq.wait(60)
    assert job.error.startswith("the window") and job.result is None and job.run_id is None
    assert job.progress.phase == "checking the input"  # the phase the solver noted, forwarded
    assert _new_runs(pq, before) == []


def test_a_killed_worker_fails_its_job_and_the_next_job_runs(pq, toy):
    p = toy.make(16)
    before = {r.run_id for r in pq.store.list()}
    job = pq.submit(toy.SPEC, p, toy.SPEC.params(max_iter=100_000, lr=1e-6, tol=0.0))
    t_end = time.time() + 60
    while job.progress.step < 3 and time.time() < t_end:
        time.sleep(0.01)
    (pid,) = pq.worker_pids()
    os.kill(pid, signal.SIGKILL)
    assert pq.wait(30)
    assert job.state == "done" and job.result is None
    assert "died" in job.error and "\n" not in job.error
    assert _new_runs(pq, before) == []
    nxt = pq.submit(toy.SPEC, p, toy.SPEC.params(max_iter=20))
    assert pq.wait(60)
    assert nxt.error is None and nxt.result.iterations == 20 and nxt.run_id is not None
    assert pq.worker_pids() != [pid]


def test_process_forwards_what_the_solver_sets_on_its_progress(pq, toy):
    from workbench import registry

    registry.add_catalog(solvers="toy_refuse")
    spec = registry.get_solver("toy", "preview")
    job = pq.submit(spec, toy.make(8), spec.params(max_iter=300))
    assert pq.wait(60) and job.error is None
    recs = job.progress.snapshot()
    assert [r["step"] for r in recs] == list(range(1, 301))
    assert recs[-1]["loss"] == 1.0 / 300 and job.progress.total == 300
    np.testing.assert_array_equal(job.progress.preview, np.full((2, 3), 300.0))


def test_the_worker_does_not_rerun_the_parents_main_script(toy, tmp_path, monkeypatch):
    # in the web server ``__main__`` is the page script a session is running; spawn would run it
    # again in the worker (which would queue a warm-up, which would spawn a worker...)
    marker = tmp_path / "ran"
    script = tmp_path / "page.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\n")
    page = types.ModuleType("__main__")
    page.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", page)
    q = JobQueue(RunStore(tmp_path / "store"), backend="process")
    try:
        job = q.submit(toy.SPEC, toy.make(8), toy.SPEC.params(max_iter=5))
        assert q.wait(60) and job.result.iterations == 5
    finally:
        q.close()
    assert not marker.exists() and sys.modules["__main__"] is page
