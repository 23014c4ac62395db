"""Progress.due: a hot loop may skip reports, but never a cancel_after step, and never for long."""

import time

from workbench import progress as prog
from workbench.progress import Progress


def test_due_after_the_interval_since_creation_or_the_last_report(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(prog.time, "perf_counter", lambda: clock[0])
    p = Progress()
    assert not p.due(1)  # just made
    clock[0] += 1.5 * prog.REPORT_EVERY_S
    assert p.due(1)
    p(1, 10)
    assert not p.due(2)  # just reported
    clock[0] += prog.REPORT_EVERY_S / 2
    assert not p.due(3)
    clock[0] += prog.REPORT_EVERY_S
    assert p.due(4)


def test_due_at_cancel_after_so_cancel_equals_max_iter():
    p = Progress(cancel_after=5)
    p(1, 10)
    assert not p.due(4)
    assert p.due(5) and p.due(6)
    p(5, 10)
    assert p.cancelled


def test_a_callback_that_cancels_acts_within_the_interval():
    """A loop that reports only when due and reads the flag every step stops within
    REPORT_EVERY_S (plus one step) of the callback's condition."""
    t3 = None  # when the callback's condition (step >= 3) became true

    def cb(step, total, m):
        if step >= 3:
            p.cancel()

    p = Progress(callback=cb)
    step = 0
    while not p.cancelled:
        step += 1
        if step == 3:
            t3 = time.perf_counter()
        time.sleep(0.001)
        if p.due(step):
            p(step, None)
    # REPORT_EVERY_S (20 ms) plus a step, with a wide margin for a loaded machine
    assert time.perf_counter() - t3 < prog.REPORT_EVERY_S + 0.5
