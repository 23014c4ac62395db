"""A solver's phase before its first step (imports, a checkpoint load) reaches the page."""

import dataclasses
import threading

from workbench.jobs import JobQueue
from workbench.progress import Progress
from workbench.store import RunStore


def test_note_is_shown_until_the_first_step_and_records_nothing():
    p = Progress(cancel_after=1)
    p.note("loading the checkpoint x.pt")
    assert p.phase == "loading the checkpoint x.pt" and p.records == [] and not p.cancelled
    p(1, 10, loss=2.0)
    assert p.phase == "" and len(p.records) == 1 and p.cancelled


def test_a_queued_job_reports_its_cold_start_phase(toy, tmp_path):
    release = threading.Event()
    seen = threading.Event()

    def slow_start(problem, params, progress=None):
        progress.note("loading the trained model")
        seen.set()
        release.wait(10)  # the checkpoint load
        return toy.solve(problem, params, progress)

    spec = dataclasses.replace(toy.SPEC, solve=slow_start)
    queue = JobQueue(RunStore(tmp_path))
    job = queue.submit(spec, toy.make(8), spec.params(max_iter=20))
    assert seen.wait(10)
    assert job.state == "running" and job.progress.phase == "loading the trained model"
    release.set()
    assert queue.wait(30)
    assert job.progress.phase == "" and job.run_id is not None


def test_a_heavy_first_import_is_noted_while_it_loads(tmp_path, monkeypatch):
    """A package in HEAVY_IMPORTS imported for the first time by a job's thread is noted as
    "importing <name>" exactly while it executes; the interrupted phase comes back after it, and
    another thread's import of it is not the job's."""
    import sys

    from workbench import jobs

    pkg = tmp_path / "wb_probe_heavy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "import threading\nfrom workbench import jobs\n"
        "P = jobs._import_notes.by_thread.get(threading.get_ident())\n"
        "PHASE = P.phase if P is not None else None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(jobs, "HEAVY_IMPORTS", frozenset({"wb_probe_heavy"}))
    monkeypatch.delitem(sys.modules, "wb_probe_heavy", raising=False)
    p = Progress()
    p.note("running the toy")
    with jobs.noting_imports(p):
        import wb_probe_heavy
    assert wb_probe_heavy.PHASE == "importing wb_probe_heavy"
    assert p.phase == "running the toy"
    assert [text for _, text in p.notes] == ["running the toy", "importing wb_probe_heavy"] * 1 + [
        "running the toy"
    ]
    # the module keeps its real loader; a second import is not a stage
    assert type(wb_probe_heavy.__loader__).__name__ != "_NotingLoader"
    with jobs.noting_imports(p):
        import wb_probe_heavy  # noqa: F401, F811
    assert len(p.notes) == 3
    # outside the block (or in another thread) nothing is noted
    del sys.modules["wb_probe_heavy"]
    q = Progress()
    import wb_probe_heavy  # noqa: F401, F811

    assert q.notes == [] and len(p.notes) == 3
    del sys.modules["wb_probe_heavy"]
