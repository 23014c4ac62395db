"""Running solves: :func:`execute` for one solve, :class:`JobQueue` for background runs.

``execute`` is what the CLI, the pages and the benchmarks call: it runs the solver, turns an
exception into a ``failed`` Result (the message kept, the process alive), adds the domain's
ground-truth metrics and the run metadata, and stores the run. ``JobQueue`` runs ``execute`` in a
worker thread so the page stays responsive; it never calls streamlit. The page polls the jobs'
:class:`~workbench.progress.Progress` snapshots and cancels through them.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.device import versions
from workbench.errors import InputError
from workbench.problems import Problem
from workbench.progress import Progress
from workbench.registry import SolverSpec, get_domain
from workbench.result import Result, Verdict, judge
from workbench.store import RunStore

log = logging.getLogger(__name__)

_KIND_BY_DOMAIN = {
    "ot": "plan",
    "mri": "image",
    "tumor": "volume",
    "eels": "score_map",
    "pde": "field",
}


def execute(
    spec: SolverSpec,
    problem: Problem,
    params: Any,
    progress: Progress | None = None,
    store: RunStore | None = None,
    label: str = "",
) -> tuple[Result, str | None]:
    """Run one solve, evaluate it against ground truth and store it.

    Returns
    -------
    result : Result
        Never raises for a solver error: the Result then has ``status="failed"`` and the message.
    run_id : str or None
        The stored run's id (``None`` when ``store`` is None).

    Raises
    ------
    InputError
        When the solver refuses its input (a bad checkpoint, a window outside the data): that is
        the user's input, not a run, so nothing is stored.
    """
    progress = progress if progress is not None else Progress(keep=10_000)
    t0 = time.perf_counter()
    try:
        result = spec.solve(problem, params, progress)
    except InputError:
        raise
    except Exception as exc:  # a solver bug must not take the server down
        log.exception("solver %s failed", spec.name)
        result = Result(
            output=np.zeros(0),
            kind=_KIND_BY_DOMAIN.get(spec.domain, "field"),
            status="failed",
            message=f"{type(exc).__name__}: {exc}",
            meta={"traceback": traceback.format_exc(limit=8)},
        )
    wall = time.perf_counter() - t0
    if progress.cancelled and result.status == "max_iter":
        result.status = "cancelled"
    result.meta.setdefault("wall_s", wall)
    result.meta.setdefault("seed", getattr(params, "seed", None))
    result.meta.setdefault("device", getattr(params, "device", "cpu"))
    result.meta["versions"] = versions()
    if result.status != "failed" and result.output.size:
        try:
            result.metrics.update(get_domain(spec.domain).evaluate(problem, result))
        except Exception as exc:
            log.exception("evaluation of %s failed", spec.name)
            result.message = (result.message + f" (evaluation failed: {exc})").strip()
    result.meta["verdict"] = verdict_for(spec, problem, result).as_dict()
    run_id = None
    if store is not None:
        run_id = store.save(problem, spec.name, dataclasses.asdict(params), result, label=label)
    return result, run_id


def verdict_for(spec: SolverSpec, problem: Problem, result: Result) -> Verdict:
    """The run verdict (:func:`workbench.result.judge`) with what the registry knows: whether the
    solver's iteration count is by design, the domain's key metric and its baseline's value."""
    try:
        dom = get_domain(spec.domain)
    except Exception:  # a solver of an unregistered domain (tests): judge the Result alone
        return judge(result, planned_stop=spec.planned_stop)
    base = None
    if dom.key_metric and dom.baseline and dom.baseline != spec.name and result.ok:
        value = baseline_value(spec.domain, problem)
        if value is not None:
            base = (dom.baseline, value)
    return judge(
        result,
        planned_stop=spec.planned_stop,
        key_metric=dom.key_metric,
        higher_is_better=dom.key_metric_higher,
        baseline=base,
    )


_BASELINES: dict[tuple[str, str], float | None] = {}
_BASELINES_LOCK = threading.Lock()


def baseline_value(domain: str, problem: Problem) -> float | None:
    """The domain's baseline solver's ``key_metric`` on ``problem`` (default parameters), or None.

    Computed once per problem and process: the baselines are the cheap classical methods
    (zero-filled MRI takes milliseconds), so the verdict never depends on which runs happen to
    be in the store or in what order they were made.
    """
    from workbench.registry import get_solver

    dom = get_domain(domain)
    if not dom.key_metric or not dom.baseline:
        return None
    key = (domain, problem.id)
    with _BASELINES_LOCK:
        if key in _BASELINES:
            return _BASELINES[key]
    value = None
    try:
        spec = get_solver(domain, dom.baseline)
        res = spec.solve(problem, spec.params({}), Progress(keep=1))
        if res.ok and res.output.size:
            v = dom.evaluate(problem, res).get(dom.key_metric)
            value = float(v) if v is not None and np.isfinite(v) else None
    except Exception:  # no baseline is no reason to fail the run being judged
        log.exception("baseline %s on %s failed", dom.baseline, problem.id)
    with _BASELINES_LOCK:
        if len(_BASELINES) > 256:
            _BASELINES.clear()
        _BASELINES[key] = value
    return value


@dataclass
class Job:
    """One queued or running solve."""

    id: int
    spec: SolverSpec
    problem: Problem
    params: Any
    label: str = ""
    progress: Progress = field(default_factory=lambda: Progress(keep=20_000))
    state: str = "queued"  # queued, running, done, cancelled
    result: Result | None = None
    run_id: str | None = None
    error: str | None = None  # the one-line reason when the solver refused the input
    submitted: float = field(default_factory=time.time)

    def cancel(self) -> None:
        self.progress.cancel()

    @property
    def title(self) -> str:
        return self.label or self.spec.title


class JobQueue:
    """A FIFO of solves executed by ``workers`` background threads (default 1: the solvers use
    the cores themselves). Thread-safe; never imports streamlit."""

    def __init__(self, store: RunStore, workers: int = 1) -> None:
        self.store = store
        self._queue: queue.Queue[Job] = queue.Queue()
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        for i in range(workers):
            threading.Thread(target=self._work, name=f"wb-worker-{i}", daemon=True).start()

    def submit(self, spec: SolverSpec, problem: Problem, params: Any, label: str = "") -> Job:
        job = Job(next(self._ids), spec, problem, params, label=label)
        with self._lock:
            self._jobs[job.id] = job
        self._queue.put(job)
        return job

    def jobs(self, problem_id: str | None = None) -> list[Job]:
        with self._lock:
            jobs = list(self._jobs.values())
        return [j for j in jobs if problem_id is None or j.problem.id == problem_id]

    def active(self, problem_id: str | None = None) -> list[Job]:
        return [j for j in self.jobs(problem_id) if j.state in ("queued", "running")]

    def forget(self, job_id: int) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no job is queued or running (for tests and scripts)."""
        t_end = None if timeout is None else time.time() + timeout
        while self.active():
            if t_end is not None and time.time() > t_end:
                return False
            time.sleep(0.05)
        return True

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job.progress.cancelled:  # cancelled while queued: never ran, nothing to store
                job.state = "cancelled"
                continue
            job.state = "running"
            # until the solver's first report: its first call imports its libraries (torch, POT)
            job.progress.note("starting (importing the solver's libraries)")
            try:
                job.result, job.run_id = execute(
                    job.spec, job.problem, job.params, job.progress, self.store, job.label
                )
            except InputError as exc:  # refused input: shown on the page, never stored
                job.error = str(exc)
            except Exception:  # storing failed: keep the worker alive
                log.exception("job %s could not be stored", job.id)
            job.state = "done"


# ---- warming up what a domain's runs will import ----------------------------------------------


def warm_modules(domain: str) -> list[str]:
    """Every module the domain's solvers import, the lazy imports inside functions included.

    Read from the source (the AST of each solver module, following ``workbench`` modules
    transitively), not from a list kept by hand, so a new solver is covered when it is
    registered. Third-party modules come out as written (``scipy.sparse.linalg``, ``ot``,
    ``torch``), workbench modules as well, in the order first seen.
    """
    import ast
    import importlib.util
    import sys

    from workbench.registry import get_domain, solvers

    get_domain(domain)  # an unknown domain is refused here
    seen: dict[str, None] = {}
    # The solvers only. The page's own modules (the domain's datasets and viz, pandas, plotly)
    # are imported by the page script itself; importing them here at the same time let two
    # threads meet inside a circular import and one saw a half-initialised module ("pandas has
    # no attribute Series"). Solver modules never import the page's (tests/core/test_layering),
    # so warming them cannot form such a cycle with the script thread.
    todo = [s.solve.__module__ for s in solvers(domain)]
    visited: set[str] = set()
    while todo:
        name = todo.pop(0)
        if name in visited:
            continue
        visited.add(name)
        seen.setdefault(name, None)
        mod = sys.modules.get(name)
        path = getattr(mod, "__file__", None)
        if path is None:
            spec = importlib.util.find_spec(name)
            path = spec.origin if spec is not None else None
        if not path or not path.endswith(".py"):
            continue
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found = [node.module]
                if node.module.split(".")[0] == "workbench":  # ``from pkg import submodule``
                    found += [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for dotted in found:
                if dotted.split(".")[0] == "workbench":
                    if _is_module(dotted):
                        todo.append(dotted)
                elif dotted.split(".")[0] not in WARM_SKIP:
                    seen.setdefault(dotted, None)
    return list(seen)


def _is_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, AttributeError, ValueError):  # ``pkg.module.attribute``
        return False


#: Never warmed: imported by batch commands (``tumor build-db --scheduler``), not by a run, or
#: by the page script itself (see :func:`warm_modules`).
WARM_SKIP = ("distributed", "dask", "pandas", "plotly", "streamlit", "kaleido")


@dataclass
class Warmup:
    """A warm-up in progress: ``progress`` counts modules, ``current`` names the one loading."""

    domain: str
    progress: Progress = field(default_factory=lambda: Progress(keep=1))
    current: str = ""
    failed: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


def warm(domain: str, warmup: Warmup | None = None) -> Warmup:
    """Import everything the domain's solvers will import, and call each solver module's
    optional ``warm()`` (a hook for loading weights or databases ahead of the first run).

    Runs in the calling thread; :func:`warm_in_background` runs it in a daemon thread while a
    page opens, so that the first run starts iterating at once instead of importing for seconds
    (the first progress report of a run waits for every import its solver makes). Concurrent
    imports of the same module in the page, the worker and here are serialised by Python's
    per-module import locks.
    """
    import importlib

    w = warmup or Warmup(domain)
    try:
        names = warm_modules(domain)
        for i, name in enumerate(names):
            w.current = name
            w.progress(i, len(names))
            try:
                mod = importlib.import_module(name)
                hook = getattr(mod, "warm", None) if name.startswith("workbench.") else None
                if callable(hook):
                    hook()
            except Exception:  # an optional dependency (a GPL reader, say): the run will tell
                w.failed.append(name)
        w.current = ""
        w.progress(len(names), len(names))
    except Exception:
        log.exception("warm-up of %s failed", domain)
    finally:
        w.done.set()
    return w


def warm_in_background(domain: str) -> Warmup:
    """Start :func:`warm` in a daemon thread; poll the returned :class:`Warmup` for progress."""
    w = Warmup(domain)
    threading.Thread(target=warm, args=(domain, w), name=f"wb-warm-{domain}", daemon=True).start()
    return w
