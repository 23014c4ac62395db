"""Running solves: :func:`execute` for one solve, :class:`JobQueue` for background runs.

``execute`` is what the CLI, the pages and the benchmarks call: it runs the solver, turns an
exception into a ``failed`` Result (the message kept, the process alive), adds the domain's
ground-truth metrics and the run metadata, and stores the run. ``JobQueue`` runs ``execute`` in the
background -- in a worker process (the app's default) or a thread -- so the page stays
responsive; it never calls streamlit. The page polls the jobs'
:class:`~workbench.progress.Progress` snapshots and cancels through them.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import queue
import sys
import threading
import time
import traceback
import types
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
    """A FIFO of solves run in the background; thread-safe, never imports streamlit.

    Parameters
    ----------
    store : RunStore
        Where every run is stored (by the process that ran it).
    workers : int
        How many jobs run at once (default 1: the solvers use the cores themselves).
    backend : {"thread", "process"}
        ``"thread"`` runs :func:`execute` in daemon threads of this process. ``"process"`` runs it
        in one persistent worker process per worker slot (the ``spawn`` context, started on the
        first job or warm-up), so that a CPU-bound solver never holds this process's GIL: in
        the web server a solve in a thread stalls every session's page and even the health
        check. A dispatcher thread per slot sends the job (the solver as its ``(domain, name)``
        registry key, the problem, the parameters) over a pipe, streams the worker's progress
        reports into ``job.progress``, forwards ``job.cancel()`` and receives the Result. A
        worker that dies mid-job fails that job with a one-line error and is replaced by a
        fresh one for the next job.
    """

    def __init__(self, store: RunStore, workers: int = 1, backend: str = "thread") -> None:
        if backend not in ("thread", "process"):
            raise ValueError(f"backend must be 'thread' or 'process', got {backend!r}")
        self.store = store
        self.backend = backend
        self._queue: queue.Queue[Job | Warmup] = queue.Queue()
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._warmups: dict[str, Warmup] = {}
        self._workers: list[_Worker] = []
        for i in range(workers):
            if backend == "process":
                w = _Worker(store)
                self._workers.append(w)
                target = functools.partial(self._dispatch, w)
            else:
                target = self._work
            threading.Thread(target=target, name=f"wb-worker-{i}", daemon=True).start()

    def submit(self, spec: SolverSpec, problem: Problem, params: Any, label: str = "") -> Job:
        job = Job(next(self._ids), spec, problem, params, label=label)
        with self._lock:
            self._jobs[job.id] = job
            warming = [w for w in self._warmups.values() if not w.done.is_set()]
        if self.backend == "process" and warming:
            # the worker finishes the module it is importing for the page's warm-up, then stops
            # the warm-up and takes this job (``_dispatch``): that import is where the job is
            w = warming[0]
            job.progress.note(
                f"waiting for the page's warm-up to finish {w.current}"
                if w.current
                else "waiting for the worker process (the page's warm-up is starting it)"
            )
        self._queue.put(job)
        return job

    def warm(self, domain: str) -> Warmup:
        """Import what the domain's solvers need where the jobs run, once per queue.

        With the process backend the warm-up is queued to the worker process ahead of any job
        (one thread there imports everything, so no two imports race); with the thread backend
        it is :func:`warm_in_background`. Poll the returned :class:`Warmup` for its progress.
        """
        with self._lock:
            w = self._warmups.get(domain)
            if w is None:
                if self.backend == "thread":
                    w = warm_in_background(domain)
                else:
                    w = Warmup(domain)
                    self._queue.put(w)
                self._warmups[domain] = w
        return w

    def worker_pids(self) -> list[int]:
        """The process ids of the live worker processes (none with the thread backend)."""
        return [w.proc.pid for w in self._workers if w.proc is not None and w.proc.is_alive()]

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

    def close(self) -> None:
        """Stop the worker processes (they also end with this process: they are daemons)."""
        for w in self._workers:
            w.stop()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if isinstance(job, Warmup):  # only the process backend queues warm-ups
                continue
            if job.progress.cancelled:  # cancelled while queued: never ran, nothing to store
                job.state = "cancelled"
                continue
            job.state = "running"
            # until the solver's first report: what it runs, then any heavy import it makes
            job.progress.note(f"running {job.spec.title}")
            try:
                with noting_imports(job.progress):
                    job.result, job.run_id = execute(
                        job.spec, job.problem, job.params, job.progress, self.store, job.label
                    )
            except InputError as exc:  # refused input: shown on the page, never stored
                job.error = str(exc)
            except Exception:  # storing failed: keep the worker alive
                log.exception("job %s could not be stored", job.id)
            job.state = "done"

    def _job_waiting(self) -> bool:
        with self._queue.mutex:  # another page's warm-up waiting does not count
            return any(isinstance(x, Job) for x in self._queue.queue)

    def _note_waiting(self, current: str) -> None:
        """Tell the jobs queued behind a warm-up which of its steps they wait for."""
        with self._queue.mutex:
            waiting = [x for x in self._queue.queue if isinstance(x, Job)]
        for job in waiting:
            text = f"waiting for the page's warm-up to finish {current}"
            if job.progress.phase != text:
                job.progress.note(text)

    def _dispatch(self, worker: _Worker) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, Warmup):
                # a job waiting stops the warm-up at the next module: Run pressed while the page
                # warms up waits for one import, not for every solver's
                worker.warm(item, pending=self._job_waiting, on_stage=self._note_waiting)
                continue
            if item.progress.cancelled:
                item.state = "cancelled"
                continue
            item.state = "running"
            try:
                worker.run(item)
            except Exception as exc:  # the pipe or the process broke: fail this job only
                log.exception("job %s: the worker process failed", item.id)
                item.error = _one_line(f"the worker process failed ({type(exc).__name__}: {exc})")
                worker.stop()
            item.state = "done"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# ---- the worker process --------------------------------------------------------------------------

#: Progress attributes that travel as records, or are the child's own state; every other public
#: attribute a solver sets on its Progress (a preview image, say) is forwarded as it is.
_PROGRESS_OWN = frozenset({"records", "step", "total", "t0", "phase", "notes"})
_FLUSH_S = 0.05  # how often the child sends its buffered progress reports


_start_lock = threading.Lock()


class _Worker:
    """The parent's side of one worker process: starts it lazily, runs one item at a time."""

    def __init__(self, store: RunStore) -> None:
        self.home = str(store.home)
        self.proc: Any = None
        self.conn: Any = None
        self.cancel_event: Any = None

    def _ensure(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            return
        self.stop()
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self.cancel_event = ctx.Event()
        self.proc = ctx.Process(
            target=_child_main,
            args=(child, self.cancel_event, self.home),
            name="wb-job-worker",
            daemon=True,
        )
        with _start_lock:
            # spawn re-runs the parent's ``__main__`` in the child, and in the web server that is
            # whichever page script a session is running (streamlit swaps it in per run): the
            # worker would run a page, which queues a warm-up, which spawns a worker... Start it
            # with a main module that has no file, so the child imports nothing of ours at all.
            main = sys.modules.get("__main__")
            stub = types.ModuleType("__main__")
            sys.modules["__main__"] = stub
            try:
                self.proc.start()
            finally:
                if sys.modules.get("__main__") is stub:  # unless a script run swapped in its own
                    if main is not None:
                        sys.modules["__main__"] = main
                    else:
                        del sys.modules["__main__"]
        child.close()  # the parent keeps only its end: EOF on recv once the child is gone
        self.conn = parent

    def stop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.send(("stop",))
            except (OSError, ValueError):
                pass
            self.conn.close()
            self.conn = None
        if self.proc is not None:
            self.proc.join(2)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(2)
            self.proc = None

    def _recv(self, poll_s: float) -> Any:
        """The next message, None after ``poll_s`` without one; EOFError once the child died."""
        if self.conn.poll(poll_s):
            return self.conn.recv()
        if not self.proc.is_alive():  # died without closing its end (it cannot: it is dead)
            raise EOFError
        return None

    def _died(self) -> str:
        code = self.proc.exitcode if self.proc is not None else None
        self.stop()
        return (
            f"the worker process running this job died (exit code {code}); "
            "nothing was stored, and the next run starts a fresh worker"
        )

    def run(self, job: Job) -> None:
        from workbench import registry

        if self.proc is None or not self.proc.is_alive():
            job.progress.note("starting the worker process")
        self._ensure()
        self.cancel_event.clear()
        catalogs = {k: list(v) for k, v in registry._CATALOGS.items()}
        import pickle

        # the problem and parameters travel pickled inside the message: unpickling the
        # parameters imports the solver's module (torch, for most), and the child does that
        # only once it can report it as the job's stage ("importing the solver", "importing
        # torch"), not silently while it receives the message
        payload = pickle.dumps((job.problem, job.params), protocol=pickle.HIGHEST_PROTOCOL)
        module = job.spec.solve.__module__
        self.conn.send(
            ("job", catalogs, job.spec.domain, job.spec.name, module, job.label, payload)
        )
        while True:
            if job.progress.cancelled and not self.cancel_event.is_set():
                self.cancel_event.set()
            try:
                msg = self._recv(_FLUSH_S)
            except EOFError:
                job.error = self._died()
                return
            if msg is None:
                continue
            kind = msg[0]
            if kind == "progress":
                _apply_progress(job.progress, *msg[1:])
            elif kind == "done":
                _, job.result, job.run_id, job.error = msg
                return

    def warm(self, w: Warmup, pending: Any = None, on_stage: Any = None) -> None:
        from workbench import registry

        try:
            self._ensure()
            self.cancel_event.clear()
            catalogs = {k: list(v) for k, v in registry._CATALOGS.items()}
            self.conn.send(("warm", catalogs, w.domain))
            while True:
                if pending is not None and pending() and not self.cancel_event.is_set():
                    self.cancel_event.set()
                try:
                    msg = self._recv(_FLUSH_S)
                except EOFError:
                    w.failed.append(_one_line(self._died()))
                    return
                if msg is None:
                    continue
                if msg[0] == "warm":
                    _, w.current, step, total = msg
                    w.progress(step, total)
                    if on_stage is not None:
                        on_stage(w.current)
                elif msg[0] == "warm_done":
                    w.failed.extend(msg[1])
                    w.stopped = msg[2]
                    w.current = ""
                    return
        except Exception:
            log.exception("warm-up of %s in the worker failed", w.domain)
        finally:
            w.done.set()


def _apply_progress(p: Progress, events: list, extra: dict) -> None:
    """Replay the child's reports and phase notes into the parent's Progress, in their order."""
    for k, v in extra.items():
        setattr(p, k, v)
    for kind, value in events:
        if kind == "note":
            p.note(value)
            continue
        rec = dict(value)
        step, total = rec.pop("step"), rec.pop("total", None)
        rec.pop("t", None)
        p(step, total, **rec)


class _ChildProgress(Progress):
    """The worker's Progress: its cancel flag is the parent's event, its reports and phase notes
    are buffered in order and sent to the parent every :data:`_FLUSH_S` seconds (at once for
    the first report and for every note) by a flusher thread, so a solver reporting every
    microsecond costs the parent a few messages a second."""

    def __init__(self, conn: Any, send_lock: threading.Lock, cancel_event: Any) -> None:
        super().__init__(keep=1)
        self._cancel = cancel_event  # set by the parent's job.cancel()
        self._conn = conn
        self._send_lock = send_lock
        self._buf: list[tuple[str, Any]] = []
        self._sent_extra: dict[str, Any] = {}
        self._reported = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, daemon=True)
        self._flusher.start()

    def note(self, phase: str) -> None:
        super().note(phase)
        with self._lock:
            self._buf.append(("note", self.phase))
        self._wake.set()  # a stage the page shows: send it now

    def __call__(self, step: int, total: int | None = None, **metrics: float) -> None:
        super().__call__(step, total, **metrics)
        rec = dict(self.records[-1])
        rec["total"] = total
        with self._lock:
            self._buf.append(("record", rec))
            first, self._reported = not self._reported, True
        if first:  # the page waits for the first report: send it now, not at the next flush
            self._wake.set()

    def _extra(self) -> dict[str, Any]:
        out = {}
        for k, v in list(vars(self).items()):  # the solver's thread may add one meanwhile
            if k.startswith("_") or k in _PROGRESS_OWN:
                continue
            if self._sent_extra.get(k, _MISSING) is not v:
                out[k] = v
                self._sent_extra[k] = v
        return out

    def flush(self) -> None:
        with self._lock:
            buf, self._buf = self._buf, []
        extra = self._extra()
        if buf or extra:
            with self._send_lock:
                self._conn.send(("progress", buf, extra))

    def _flush_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(_FLUSH_S)
            self._wake.clear()
            try:
                self.flush()
            except (OSError, ValueError):  # the parent is gone
                return

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._flusher.join()
        self.flush()


_MISSING = object()


def _child_main(conn: Any, cancel_event: Any, home: str) -> None:
    """The worker process: runs jobs and warm-ups sent by the parent, one at a time."""
    import pickle
    import signal

    from workbench import registry

    # Ctrl-C in the server's terminal reaches the whole process group: the parent decides
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    store = RunStore(home)
    send_lock = threading.Lock()

    def use(catalogs: dict[str, list[str]]) -> None:
        # the parent's registry (a plug-in's catalog, the tests' toy one), served here too
        if catalogs != registry._CATALOGS:
            registry._CATALOGS.clear()
            registry._CATALOGS.update({k: list(v) for k, v in catalogs.items()})
            registry._solver_specs.cache_clear()
            registry._domain_specs.cache_clear()

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "stop":
            return
        if msg[0] == "warm":
            _, catalogs, domain = msg
            use(catalogs)
            w = Warmup(domain)

            def report(step: int, total: int | None, _m: dict, w: Warmup = w) -> None:
                with send_lock:
                    conn.send(("warm", w.current, step, total))

            w.progress = Progress(callback=report, keep=1)
            w.progress._cancel = cancel_event  # set by the parent when a job is waiting
            warm(domain, w)
            with send_lock:
                conn.send(("warm_done", w.failed, w.stopped))
            continue
        _, catalogs, domain, name, module, label, payload = msg
        progress = _ChildProgress(conn, send_lock, cancel_event)
        result, run_id, error = None, None, None
        try:
            use(catalogs)
            with noting_imports(progress):
                if module not in sys.modules:
                    progress.note(f"importing the solver ({module})")
                spec = registry.get_solver(domain, name)
                problem, params = pickle.loads(payload)  # our own parent's objects
                progress.note(f"running {spec.title}")
                result, run_id = execute(spec, problem, params, progress, store, label)
        except InputError as exc:  # refused input: shown on the page, never stored
            error = str(exc)
        except Exception as exc:  # storing failed: keep the worker alive
            log.exception("job could not be stored")
            error = _one_line(f"the run could not be stored ({type(exc).__name__}: {exc})")
        progress.close()
        with send_lock:
            conn.send(("done", result, run_id, error))


# ---- warming up what a domain's runs will import ----------------------------------------------


def warm_modules(domain: str) -> list[str]:
    """Every module the domain's solvers import, the lazy imports inside functions included.

    Read from the source (the AST of each solver module, following ``workbench`` modules
    transitively), not from a list kept by hand, so a new solver is covered when it is
    registered. Third-party modules come out as written (``scipy.sparse.linalg``, ``ot``,
    ``torch``), workbench modules as well, in the order first seen.
    """
    from workbench.registry import get_domain, solvers

    get_domain(domain)  # an unknown domain is refused here
    # The solvers only. The page's own modules (the domain's datasets and viz, pandas, plotly)
    # are imported by the page script itself; importing them here at the same time let two
    # threads meet inside a circular import and one saw a half-initialised module ("pandas has
    # no attribute Series"). Solver modules never import the page's (tests/core/test_layering),
    # so warming them cannot form such a cycle with the script thread.
    seen: dict[str, None] = {}
    for s in solvers(domain):
        seen.update(dict.fromkeys(module_imports(s.solve.__module__)))
    return list(seen)


@functools.lru_cache(maxsize=256)
def module_imports(root: str) -> tuple[str, ...]:
    """``root`` and every module it imports, lazily or not, following ``workbench`` modules
    transitively (see :func:`warm_modules`); :data:`WARM_SKIP` left out."""
    import ast
    import importlib.util

    seen: dict[str, None] = {}
    pending = [root]
    visited: set[str] = set()
    while pending:
        name = pending.pop(0)
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
                        pending.append(dotted)
                elif dotted.split(".")[0] not in WARM_SKIP:
                    seen.setdefault(dotted, None)
    return tuple(seen)


#: Packages whose first import takes long enough (0.3 s and more) to be a stage of its own.
#: ``torch._dynamo`` loads (with sympy) when a run creates its first torch optimiser.
HEAVY_IMPORTS = frozenset(
    {"torch", "ot", "sklearn", "scipy", "h5py", "nibabel", "skimage", "sympy", "pyvista", "vtk"}
    | {"torch._dynamo"}
)


class _NotingLoader:
    """Wraps a heavy package's loader: notes "importing <name>" on the job's Progress while the
    package executes, then puts back the phase it interrupted. Everything else is the loader's."""

    def __init__(self, inner: Any, progress: Progress, name: str) -> None:
        self._inner, self._progress, self._name = inner, progress, name

    def create_module(self, spec: Any) -> Any:
        return self._inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        # the module keeps its own loader (resources, reloads); only this execution is noted
        module.__loader__ = self._inner
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._inner
        before = self._progress.phase
        self._progress.note(f"importing {self._name}")
        try:
            self._inner.exec_module(module)
        finally:
            self._progress.note(before)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)


class _ImportNotes:
    """A meta-path finder that finds nothing itself: when a thread running a job (registered in
    :func:`noting_imports`) imports one of :data:`HEAVY_IMPORTS` for the first time, it wraps
    the found loader in :class:`_NotingLoader`. The page then shows "importing torch" exactly
    while torch loads for that run -- the solvers import lazily, inside ``solve`` -- and no
    import is made that the run would not make itself."""

    def __init__(self) -> None:
        self.by_thread: dict[int, Progress] = {}
        self._inside = threading.local()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        progress = self.by_thread.get(threading.get_ident())
        if progress is None or name not in HEAVY_IMPORTS or getattr(self._inside, "on", False):
            return None
        import importlib.machinery

        self._inside.on = True
        try:
            spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        finally:
            self._inside.on = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        spec.loader = _NotingLoader(spec.loader, progress, name)
        return spec


_import_notes = _ImportNotes()


class noting_imports:
    """``with noting_imports(progress): ...`` -- heavy first imports made by this thread inside
    the block are noted on ``progress`` (see :class:`_ImportNotes`)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def __enter__(self) -> noting_imports:
        if _import_notes not in sys.meta_path:
            sys.meta_path.insert(0, _import_notes)
        _import_notes.by_thread[threading.get_ident()] = self.progress
        return self

    def __exit__(self, *exc: Any) -> None:
        _import_notes.by_thread.pop(threading.get_ident(), None)


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
    stopped: bool = False  # stopped early for a waiting run; the run imports the rest itself
    done: threading.Event = field(default_factory=threading.Event)


def warm(domain: str, warmup: Warmup | None = None) -> Warmup:
    """Import everything the domain's solvers will import, and call each solver module's
    optional ``warm()`` (a hook for loading weights or databases ahead of the first run).

    Runs in the calling thread; :func:`warm_in_background` runs it in a daemon thread while a
    page opens, so that the first run starts iterating at once instead of importing for seconds
    (the first progress report of a run waits for every import its solver makes). Concurrent
    imports of the same module in the page, the worker and here are serialised by Python's
    per-module import locks. Cancelling ``warmup.progress`` stops it before the next module
    (:attr:`Warmup.stopped`): the worker process does that when a run is waiting.
    """
    import importlib

    w = warmup or Warmup(domain)
    try:
        names = warm_modules(domain)
        for i, name in enumerate(names):
            if w.progress.cancelled:  # a run is waiting (the worker process's warm-up)
                w.stopped = True
                break
            w.current = name
            w.progress(i, len(names))
            try:
                mod = importlib.import_module(name)
                hook = getattr(mod, "warm", None) if name.startswith("workbench.") else None
                if callable(hook):  # loading a database or weights: a stage of its own
                    w.current = f"{name}.warm()"
                    w.progress(i, len(names))
                    hook()
            except Exception:  # an optional dependency (a GPL reader, say): the run will tell
                w.failed.append(name)
        w.current = ""
        if not w.stopped:
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
