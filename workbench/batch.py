"""Batches of independent solves on Dask distributed: one run per input file, one run store.

``workbench batch <domain> --solver S --inputs DIR [--param k=v ...] [--workers N | --scheduler
tcp://HOST:PORT] [--json]`` and the pages call :func:`run_batch` with a list of ``(name, bytes)``
items. Each item becomes one task::

    bytes ──(client)──▶ worker: domain.load → solver (jobs.execute, no store) ──▶ client: store.save

Where things run, and why:

- **Reading and writing stay with the client.** The client reads the files (size-checked) and
  sends their bytes with the task; the worker parses, solves, evaluates and sends the problem and
  the :class:`~workbench.result.Result` back; the client writes the run. Workers therefore need
  neither the input folder nor the run store: a ``--scheduler`` cluster on other machines works
  without a shared file system, and SQLite is written by one process.
- **Keyed, idempotent writes.** Every task has a key, a hash of (domain, solver, parameters,
  options, file name, file bytes), and its run is stored under ``batch-<key>`` with
  :meth:`RunStore.save(run_id=...) <workbench.store.RunStore.save>`, which writes nothing when that
  run exists. A worker that dies mid-task makes the scheduler run the task again elsewhere (Dask's
  ``allowed-failures``, 3 by default); its run is still stored once. Rerunning a batch that was
  interrupted skips the runs already stored (``reused``) and solves the rest.
- **A bad file fails its own task.** Its :class:`~workbench.errors.InputError` becomes that
  task's one-line reason; nothing is stored for it and the other tasks go on.
- ``workers <= 1`` and no scheduler: the tasks run one after the other in this process (no Dask
  at all); ``workers > 1``: a :class:`distributed.LocalCluster` of that many single-threaded
  worker processes; ``scheduler``: an existing cluster (``dask scheduler`` + ``dask worker``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import registry
from workbench.errors import InputError

#: Environment of the local worker processes: one thread each (the workers are the parallelism)
#: and passive OpenMP, without which torch runs many times slower on a busy machine.
WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
}


@dataclass
class Task:
    """One input of a batch and, once done, what became of it."""

    file: str
    key: str
    data: bytes | None = field(default=None, repr=False)
    status: str = "queued"  # queued, stored, reused, failed
    run_id: str | None = None
    solver_status: str | None = None
    reason: str | None = None
    wall_s: float | None = None
    worker: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("data")
        return d


@dataclass
class BatchSummary:
    """What :func:`run_batch` returns; :meth:`as_dict` is the CLI's ``--json`` object."""

    domain: str
    solver: str
    tasks: list[Task]
    wall_s: float
    workers: int | None
    scheduler: str | None

    @property
    def runs(self) -> list[str]:
        """Ids of the stored runs (new or reused), in input order."""
        return [t.run_id for t in self.tasks if t.run_id]

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Tasks that did not give a successful run: bad files and failed solves."""
        return [
            {"file": t.file, "reason": t.reason, "run_id": t.run_id}
            for t in self.tasks
            if t.status == "failed" or t.solver_status == "failed"
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "solver": self.solver,
            "runs": self.runs,
            "failed": self.failed,
            "stored": sum(t.status == "stored" for t in self.tasks),
            "reused": sum(t.status == "reused" for t in self.tasks),
            "wall_s": self.wall_s,
            "workers": self.workers,
            "scheduler": self.scheduler,
            "tasks": [t.as_dict() for t in self.tasks],
        }


# ---- inputs and parameters ------------------------------------------------------------------


def read_dir(path: str | os.PathLike) -> list[tuple[str, bytes | InputError]]:
    """The regular, non-hidden files of a folder, sorted by name, as ``(name, bytes)``.

    A file that cannot be read (too large, empty) is returned with its InputError in place of
    the bytes, so that it fails its own task rather than the batch.
    """
    from workbench.io.validate import read_input

    root = Path(path)
    if not root.is_dir():
        raise InputError(f"--inputs must be a folder: {root}")
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise InputError(f"no input files in {root}")
    out: list[tuple[str, bytes | InputError]] = []
    for p in files:
        try:
            out.append((p.name, read_input(p)))
        except InputError as exc:
            out.append((p.name, exc))
    return out


def task_key(domain: str, solver: str, s_kv: dict, o_kv: dict, name: str, data: bytes) -> str:
    """The task's identity: sha256 over what determines its run (seeded solvers are
    deterministic, so the same key means the same run)."""
    h = hashlib.sha256()
    head = json.dumps(
        [domain, solver, sorted(s_kv.items()), sorted(o_kv.items()), name], default=str
    )
    h.update(head.encode())
    h.update(b"\0")
    h.update(hashlib.sha256(data).digest())
    return h.hexdigest()[:24]


def run_id_of(key: str) -> str:
    return f"batch-{key}"


# ---- the task (runs on a worker) --------------------------------------------------------------


def solve_item(
    domain: str, solver: str, s_kv: dict, o_kv: dict, name: str, data: bytes
) -> dict[str, Any]:
    """Parse one file and solve it; never raises for the user's input or a solver error.

    Returns ``{"ok": True, "problem", "result", "params", "worker"}`` or ``{"ok": False,
    "reason", "worker"}`` (the InputError's one line). Runs on a Dask worker or in-process.
    """
    from workbench.jobs import execute

    worker = _worker_address()
    try:
        dom = registry.get_domain(domain)
        spec = registry.get_solver(domain, solver)
        params = spec.params(s_kv)
        options = dom.options(o_kv)
        if dom.load is None:
            raise InputError(f"{dom.name} does not read files")
        try:
            problem = dom.load(data, name, **options)
        except InputError:
            raise
        except Exception as exc:  # a reader bug or an unreadable file: still one line
            raise InputError(f"cannot read {name}: {type(exc).__name__}: {exc}") from None
        check = getattr(dom, "check", None)  # parameters that do not fit this file's data
        if check is not None:
            check(problem, spec, params)
        # a solver that refuses its input raises InputError too: the task fails, nothing stored
        result, _ = execute(spec, problem, params, store=None)
    except InputError as exc:
        return {"ok": False, "reason": _one_line(str(exc)), "worker": worker}
    return {
        "ok": True,
        "problem": problem,
        "result": result,
        "params": dataclasses.asdict(params),
        "worker": worker,
    }


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"local:{os.getpid()}"


def _one_line(msg: str) -> str:
    line = " ".join(msg.split())
    return line if len(line) <= 300 else line[:297] + "..."


# ---- the batch (runs on the client) ---------------------------------------------------------


def run_batch(
    domain: str,
    solver: str,
    items: Iterable[tuple[str, bytes | InputError]],
    params: dict[str, Any] | None = None,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    store: Any = None,
    label: str = "",
    progress: Callable[[Task, int, int], None] | None = None,
) -> BatchSummary:
    """Solve every item as its own run and store the runs (keyed, idempotent).

    Parameters
    ----------
    domain, solver : str
        Registered names.
    items : iterable of (name, bytes or InputError)
        The inputs, e.g. :func:`read_dir` or a page's uploads.
    params : dict of str to str
        ``--param`` pairs (solver parameters and domain options), validated before anything runs.
    workers : int
        ``<= 1``: in this process, one after the other; ``> 1``: a LocalCluster of that many
        single-threaded worker processes.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); excludes ``workers > 1``.
    store : RunStore, optional
        Default: the user's store (``WORKBENCH_HOME``).
    progress : callable(task, done, total), optional
        Called on the client after each task is finished (stored, reused or failed).

    Raises
    ------
    InputError
        For the batch's own input (unknown solver, bad parameter, no items, workers and
        scheduler both given); a bad item never raises, it fails its task.
    """
    from workbench.store import RunStore

    if scheduler and workers > 1:
        raise InputError("give --workers or --scheduler, not both")
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    s_kv, o_kv = registry.split_params(domain, solver, dict(params or {}))
    # the key hashes the parsed values, defaults included: `reg=0.01` typed on the command line,
    # 0.01 from a page's widget and the default left alone give one key when they mean one run
    dom, spec = registry.get_domain(domain), registry.get_solver(domain, solver)
    canon_s = dataclasses.asdict(spec.params(s_kv))
    canon_o = dict(dom.options(o_kv) or {})
    store = store if store is not None else RunStore()
    tasks: list[Task] = []
    for name, data in items:
        if isinstance(data, InputError):
            tasks.append(Task(name, key="", status="failed", reason=_one_line(str(data))))
        else:
            tasks.append(Task(name, task_key(domain, solver, canon_s, canon_o, name, data), data))
    if not tasks:
        raise InputError("the batch has no inputs")
    total, done = len(tasks), 0
    t0 = time.perf_counter()

    def finish(task: Task) -> None:
        nonlocal done
        task.data = None
        done += 1
        if progress is not None:
            progress(task, done, total)

    pending: list[Task] = []
    for t in tasks:
        if t.status == "failed":
            finish(t)
        elif store.exists(run_id_of(t.key)):
            # Stored by an earlier, interrupted run of the same batch: nothing to compute.
            info = store.get(run_id_of(t.key))
            t.status, t.run_id, t.solver_status = "reused", info.run_id, info.status
            t.wall_s = info.wall_s
            if info.status == "failed":
                t.reason = _one_line(info.message)
            finish(t)
        else:
            pending.append(t)

    def record(task: Task, out: dict[str, Any]) -> None:
        task.worker = out.get("worker")
        if not out["ok"]:
            task.status, task.reason = "failed", out["reason"]
            return
        result = out["result"]
        task.run_id = store.save(
            out["problem"], solver, out["params"], result, label=label, run_id=run_id_of(task.key)
        )
        task.status, task.solver_status = "stored", result.status
        task.wall_s = result.meta.get("wall_s")
        if result.status == "failed":
            task.reason = _one_line(result.message)

    if pending and scheduler is None and workers <= 1:
        for t in pending:
            record(t, solve_item(domain, solver, s_kv, o_kv, t.file, t.data))
            finish(t)
    elif pending:
        _run_dask(domain, solver, s_kv, o_kv, pending, workers, scheduler, record, finish)
    return BatchSummary(
        domain=domain,
        solver=solver,
        tasks=tasks,
        wall_s=time.perf_counter() - t0,
        workers=None if scheduler else workers,
        scheduler=scheduler,
    )


def _run_dask(domain, solver, s_kv, o_kv, pending, workers, scheduler, record, finish) -> None:
    import logging

    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            env=WORKER_ENV,
        )
    try:
        try:
            client = Client(cluster if cluster is not None else scheduler, timeout="20s")
        except OSError as exc:
            raise InputError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
        with client:
            futures = {}
            for t in pending:
                fut = client.submit(
                    solve_item,
                    domain,
                    solver,
                    s_kv,
                    o_kv,
                    t.file,
                    t.data,
                    key=f"wb-solve-{t.key}",
                    pure=False,
                )
                futures[fut] = t
            for fut in as_completed(futures):
                t = futures[fut]
                try:
                    record(t, fut.result())
                except Exception as exc:  # KilledWorker after the retries, a lost connection
                    t.status, t.reason = "failed", _one_line(f"{type(exc).__name__}: {exc}")
                fut.release()
                finish(t)
    finally:
        if cluster is not None:
            cluster.close()


# ---- the command line -------------------------------------------------------------------------


class ProgressBar:
    """``[#######.....] 37/100 · 35 stored · 2 failed · 4.1 s`` on stderr (redrawn in place on
    a terminal, a line per tenth otherwise)."""

    def __init__(self, stream=None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self.counts = {"stored": 0, "reused": 0, "failed": 0}
        self.last_tenth = -1

    def __call__(self, task: Task, done: int, total: int) -> None:
        self.counts[task.status] = self.counts.get(task.status, 0) + 1
        fill = round(self.width * done / total)
        parts = [f"{v} {k}" for k, v in self.counts.items() if v]
        line = (
            f"[{'#' * fill}{'.' * (self.width - fill)}] {done}/{total} · "
            + " · ".join(parts)
            + f" · {time.perf_counter() - self.t0:.1f} s"
        )
        if self.tty:
            self.stream.write("\r" + line + ("\n" if done == total else ""))
        else:
            tenth = 10 * done // total
            if tenth == self.last_tenth:
                return
            self.last_tenth = tenth
            self.stream.write(line + "\n")
        self.stream.flush()


def main(args: Any) -> int:
    """``workbench batch``: the arguments parsed by :mod:`workbench.cli`."""
    import contextlib

    kv = registry.parse_kv(args.param)
    registry.split_params(args.domain, args.solver, kv)
    items = read_dir(args.inputs)
    with contextlib.redirect_stdout(sys.stderr):  # solvers' chatter never pollutes --json
        summary = run_batch(
            args.domain,
            args.solver,
            items,
            kv,
            workers=1 if args.workers is None else args.workers,
            scheduler=args.scheduler,
            label=args.label or "",
            progress=None if args.quiet else ProgressBar(),
        )
    if args.json:
        sys.stdout.write(json.dumps(summary.as_dict(), default=_json_default) + "\n")
    else:
        for t in summary.tasks:
            what = t.solver_status or ""
            print(f"{t.file}: {t.status} {t.run_id or ''} {what} {t.reason or ''}".rstrip())
        d = summary.as_dict()
        print(
            f"{len(d['runs'])} runs ({d['stored']} new, {d['reused']} reused), "
            f"{len(d['failed'])} failed, {summary.wall_s:.3g} s"
        )
    return 1 if summary.failed else 0


def _json_default(v: Any) -> Any:
    return v if isinstance(v, (int, float, str)) else str(v)
