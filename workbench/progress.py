"""Progress: the callable sink and cancel flag handed to every solver.

A solver calls ``progress(step, total, **metrics)`` once per iteration (epoch, sampling step) *after*
finishing that step, then checks ``progress.cancelled`` and stops if it is set. With that protocol a
run cancelled at step ``k`` returns exactly what ``max_iter=k`` returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

#: Shortest interval (seconds) between two reports of a loop that asks :meth:`Progress.due`:
#: ~50 reports a second keep a live curve smooth and a time-budget callback punctual.
REPORT_EVERY_S = 0.02


class Progress:
    """Records progress reports and carries a thread-safe cancel flag.

    Parameters
    ----------
    callback : callable, optional
        Called as ``callback(step, total, metrics)`` on every report (from the solver's thread).
    cancel_after : int, optional
        Set the cancel flag once ``step >= cancel_after`` (used by tests and by step budgets).
    keep : int
        Number of most recent reports kept in :attr:`records`.
    """

    def __init__(
        self,
        callback: Callable[[int, int | None, dict[str, float]], None] | None = None,
        cancel_after: int | None = None,
        keep: int = 100_000,
    ) -> None:
        self._callback = callback
        self._cancel = threading.Event()
        self._cancel_after = cancel_after
        self._lock = threading.Lock()
        self._keep = keep
        self.records: list[dict[str, Any]] = []
        self.step = 0
        self.total: int | None = None
        self.t0 = time.perf_counter()
        self.phase = ""  # what happens before the first step (imports, loading a checkpoint)
        # every phase as (seconds since t0, text): when each stage began, for the page's
        # latency and the start-up benchmark; the last few only
        self.notes: list[tuple[float, str]] = []
        # the latest non-numeric ``preview`` a solver reported (an image of its current estimate)
        self.preview: Any = None
        self._last = self.t0  # perf_counter() of the latest report (for :meth:`due`)

    def note(self, phase: str) -> None:
        """Say what the solver is doing before its first step ("loading the checkpoint"), so a
        page can show it instead of "step 0". Records no step, never cancels; the next report
        clears it. Its start time is kept in :attr:`notes`."""
        with self._lock:
            self.phase = str(phase)
            if self.phase:  # "" only clears (an import noted after the steps is over)
                self.notes.append((time.perf_counter() - self.t0, self.phase))
                if len(self.notes) > 200:
                    del self.notes[:100]

    def due(self, step: int) -> bool:
        """Whether a hot loop should report ``step`` now, or may skip it.

        A report costs ~20 us, more than a whole step of a small solve (an SNS step on 30
        points), so such a loop reports only when this says so: when :data:`REPORT_EVERY_S`
        seconds have passed since the latest report (or since this Progress was made) or
        ``step`` reaches ``cancel_after``. The loop still reads :attr:`cancelled` every step,
        so a cancel is honoured at the next step, and a callback that cancels (on a time
        budget, say) acts within ``REPORT_EVERY_S`` of its condition; cancelling at step ``k``
        still gives the result of ``max_iter = k``.
        """
        if self._cancel_after is not None and step >= self._cancel_after:
            return True
        return time.perf_counter() - self._last >= REPORT_EVERY_S

    def __call__(self, step: int, total: int | None = None, **metrics: float) -> None:
        self._last = now = time.perf_counter()
        rec = {"step": int(step), "t": now - self.t0}
        rec.update({k: float(v) for k, v in metrics.items() if _is_number(v)})
        with self._lock:
            self.step, self.total = int(step), total
            self.phase = ""
            self.records.append(rec)
            if "preview" in metrics and not _is_number(metrics["preview"]):
                self.preview = metrics["preview"]
            if len(self.records) > self._keep:
                del self.records[: len(self.records) - self._keep]
        if self._callback is not None:
            self._callback(step, total, metrics)
        if self._cancel_after is not None and step >= self._cancel_after:
            self._cancel.set()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def fraction(self) -> float:
        with self._lock:
            if not self.total:
                return 0.0
            return min(1.0, self.step / self.total)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.records)


def _is_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def ensure(progress: Progress | None) -> Progress:
    """Return ``progress`` or a silent :class:`Progress` when ``None`` was given."""
    return progress if progress is not None else Progress(keep=1)


def append_history(hist: dict[str, list[float]], **columns: float) -> None:
    """Append one row of named values to a history of equal-length columns."""
    for k, v in columns.items():
        hist[k].append(float(v))
