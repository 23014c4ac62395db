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
