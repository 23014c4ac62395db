"""The page warm-up: which modules a domain's runs import, found from the source, and a warm-up
that reports its progress and ends even when an optional dependency is missing."""

import sys

import pytest

from workbench import jobs


def test_warm_modules_follow_the_lazy_imports_of_the_ot_solvers():
    names = jobs.warm_modules("ot")
    # lazy imports inside functions: POT for emd, torch for the Newton solver
    for needed in ("ot", "torch"):
        assert needed in names
    # the page's own modules are left to the page script (two threads inside one circular
    # import saw half-initialised modules)
    assert not any(n.split(".")[0] in ("pandas", "plotly") for n in names)
    assert "workbench.datasets.ot" not in names and "workbench.viz.ot" not in names
    assert "workbench.solvers.ot.sinkhorn_newton" in names
    assert "workbench.solvers.ot._np_sinkhorn" in names  # followed through sinkhorn.py
    assert not any(n.split(".")[0] in jobs.WARM_SKIP for n in jobs.warm_modules("tumor"))


def test_warm_reports_progress_and_survives_missing_modules(toy, monkeypatch):
    monkeypatch.setattr(jobs, "warm_modules", lambda d: ["json", "no_such_module_xyz", "toy"])
    calls = []
    monkeypatch.setattr(toy, "warm", lambda: calls.append(1), raising=False)
    w = jobs.warm_in_background("toy")
    assert w.done.wait(30)
    assert w.failed == ["no_such_module_xyz"] and w.current == ""
    assert (w.progress.step, w.progress.total) == (3, 3)
    assert calls == []  # the hook is only called on workbench modules
    assert "json" in sys.modules


def test_queue_warms_in_its_worker_process_once(toy, tmp_path):
    from workbench.jobs import JobQueue
    from workbench.store import RunStore

    q = JobQueue(RunStore(tmp_path), backend="process")
    try:
        w = q.warm("toy")
        assert q.warm("toy") is w  # once per queue and domain
        assert w.done.wait(60)
        n = len(jobs.warm_modules("toy"))
        assert w.failed == [] and w.current == ""
        assert (w.progress.step, w.progress.total) == (n, n)
        assert len(q.worker_pids()) == 1  # the worker it warmed is the one that runs the jobs
        job = q.submit(toy.SPEC, toy.make(8), toy.SPEC.params(max_iter=10))
        assert q.wait(60) and job.result.iterations == 10
    finally:
        q.close()


@pytest.mark.slow  # a fresh worker process importing torch: ~20 s on the shared machine
def test_a_waiting_run_stops_the_workers_warm_up_at_the_next_module(tmp_path):
    from workbench import registry
    from workbench.jobs import JobQueue
    from workbench.store import RunStore

    q = JobQueue(RunStore(tmp_path), backend="process")
    try:
        w = q.warm("ot")  # dozens of modules, torch and POT among them: seconds in a new process
        spec = registry.get_solver("ot", "sinkhorn")
        job = q.submit(spec, registry.get_domain("ot").sample("hist1d"), spec.params())
        assert q.wait(120) and job.error is None and job.result.ok
        assert w.done.is_set() and w.stopped
        assert w.progress.total is None or w.progress.step < w.progress.total
        # while it waited, the run said for what: the worker starting or the module importing
        first = job.progress.notes[0][1]
        assert first.startswith("waiting for the"), job.progress.notes
        assert any(t.startswith("running ") for _, t in job.progress.notes)
    finally:
        q.close()
