"""Persistent run store: an SQLite index plus one ``.npz`` artifact per run.

Layout under ``WORKBENCH_HOME`` (default ``~/.inverse-workbench``)::

    index.sqlite              runs(run_id, created, domain, solver, problem_id, params, metrics, ...)
    runs/<run_id>.npz         output, extras, history columns, result JSON
    problems/<problem_id>.npz the problem, content-addressed, written once
    cache/tumor/atlas<n>_*.npz the tumour atlas grids, rebuilt when missing or damaged
                              (:mod:`workbench.physics.tumor.atlas`)

Writes are atomic: an artifact is written to a temporary file in the same folder, flushed, fsynced
and renamed into place; only then is the index row inserted in one SQLite transaction. A crash at
any point leaves either no run or a complete one (at worst an orphan file that no row names, which
:meth:`RunStore.vacuum` removes). SQLite runs in WAL mode with a busy timeout, so several processes
(the app, the CLI, a Dask worker) can write concurrently without losing a run. Artifacts are read
with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.problems import Problem
from workbench.result import VERDICTS, Result, judge

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    created     REAL NOT NULL,
    domain      TEXT NOT NULL,
    solver      TEXT NOT NULL,
    problem_id  TEXT NOT NULL,
    problem     TEXT NOT NULL,
    params      TEXT NOT NULL,
    metrics     TEXT NOT NULL,
    status      TEXT NOT NULL,
    iterations  INTEGER NOT NULL,
    wall_s      REAL,
    versions    TEXT NOT NULL,
    message     TEXT NOT NULL,
    label       TEXT NOT NULL DEFAULT '',
    verdict     TEXT NOT NULL DEFAULT '',
    verdict_reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS runs_problem ON runs(problem_id);
CREATE INDEX IF NOT EXISTS runs_domain ON runs(domain, solver);
CREATE TABLE IF NOT EXISTS problems (
    problem_id  TEXT PRIMARY KEY,
    domain      TEXT NOT NULL,
    name        TEXT NOT NULL,
    created     REAL NOT NULL
);
"""


def default_home() -> Path:
    return Path(os.environ.get("WORKBENCH_HOME", Path.home() / ".inverse-workbench"))


@dataclass(frozen=True)
class RunInfo:
    """One row of the index."""

    run_id: str
    created: float
    domain: str
    solver: str
    problem_id: str
    problem: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    status: str
    iterations: int
    wall_s: float | None
    versions: dict[str, Any]
    message: str
    label: str
    verdict: str = ""  # a key of workbench.result.VERDICTS; "" for runs stored before verdicts
    verdict_reason: str = ""

    @property
    def title(self) -> str:
        return self.label or f"{self.solver} · {self.run_id[-6:]}"

    @property
    def verdict_label(self) -> str:
        return VERDICTS.get(self.verdict, "not judged")

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _atomic_write(path: Path, write: Any) -> None:
    """Write through ``write(fileobj)`` into ``path`` atomically (temp file + fsync + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (set, tuple)):
        return list(v)
    if isinstance(v, Path):
        return str(v)
    return repr(v)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_jsonable, allow_nan=True)


def result_to_arrays(result: Result) -> dict[str, np.ndarray]:
    """Flatten a Result into arrays (no pickles): output, ``extra.*``, ``history.*``, JSON."""
    arrays: dict[str, np.ndarray] = {"output": np.asarray(result.output)}
    plain_extras: dict[str, Any] = {}
    for k, v in result.extras.items():
        if isinstance(v, np.ndarray) and v.dtype != object:
            arrays[f"extra.{k}"] = v
        else:
            plain_extras[k] = v
    for k, col in result.history.items():
        arrays[f"history.{k}"] = np.asarray(col, dtype=float)
    head = {
        "kind": result.kind,
        "status": result.status,
        "iterations": result.iterations,
        "metrics": result.metrics,
        "meta": result.meta,
        "message": result.message,
        "extras": plain_extras,
    }
    arrays["__json__"] = np.array(_dumps(head))
    return arrays


def result_from_arrays(arrays: dict[str, np.ndarray]) -> Result:
    head = json.loads(str(arrays["__json__"]))
    extras = dict(head.get("extras", {}))
    history: dict[str, list[float]] = {}
    for k, v in arrays.items():
        if k.startswith("extra."):
            extras[k[6:]] = v
        elif k.startswith("history."):
            history[k[8:]] = v.tolist()
    return Result(
        output=arrays["output"],
        kind=head["kind"],
        status=head["status"],
        iterations=int(head["iterations"]),
        metrics=head["metrics"],
        history=history,
        extras=extras,
        meta=head["meta"],
        message=head.get("message", ""),
    )


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


class RunStore:
    """The run store under ``home`` (default :func:`default_home`)."""

    def __init__(self, home: str | os.PathLike | None = None) -> None:
        self.home = Path(home) if home is not None else default_home()
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "runs").mkdir(exist_ok=True)
        (self.home / "problems").mkdir(exist_ok=True)
        self.db_path = self.home / "index.sqlite"
        with self._connect() as con:
            con.executescript(_SCHEMA)
            # An index made before run verdicts existed gains their columns (empty: not judged).
            have = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
            for col in ("verdict", "verdict_reason"):
                if col not in have:
                    con.execute(f"ALTER TABLE runs ADD COLUMN {col} TEXT NOT NULL DEFAULT ''")
        self._vacuum_now_and_then()

    def _vacuum_now_and_then(self, every_s: float = 3600.0) -> None:
        """Vacuum when the store opens, at most once an hour (a marker file holds the time)."""
        marker = self.home / ".last-vacuum"
        try:
            if marker.exists() and time.time() - marker.stat().st_mtime < every_s:
                return
            marker.touch()
            self.vacuum()
        except OSError:  # a read-only or busy home is no reason to refuse to open
            pass

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.db_path, timeout=60, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA busy_timeout=60000")
            con.execute("PRAGMA synchronous=FULL")
            yield con
        finally:
            con.close()

    # ---- paths ----------------------------------------------------------------------------
    def artifact_path(self, run_id: str) -> Path:
        if not run_id.replace("-", "").isalnum():
            raise KeyError(run_id)
        return self.home / "runs" / f"{run_id}.npz"

    def problem_path(self, problem_id: str) -> Path:
        if not problem_id.isalnum():
            raise KeyError(problem_id)
        return self.home / "problems" / f"{problem_id}.npz"

    # ---- writing --------------------------------------------------------------------------
    def save_problem(self, problem: Problem) -> str:
        """Store a problem once (content-addressed); return its id."""
        pid = problem.id
        path = self.problem_path(pid)
        if not path.exists():
            arrays = problem.to_arrays()
            _atomic_write(path, lambda fh: np.savez(fh, **arrays))
        else:
            path.touch()  # a fresh mtime: a vacuum running now leaves the file alone
        with self._connect() as con:
            con.execute(
                "INSERT OR IGNORE INTO problems VALUES (?, ?, ?, ?)",
                (pid, problem.domain, problem.name, time.time()),
            )
        return pid

    def save(
        self,
        problem: Problem,
        solver: str,
        params: dict[str, Any],
        result: Result,
        label: str = "",
        run_id: str | None = None,
    ) -> str:
        """Store one finished, failed or cancelled run; return its id.

        With ``run_id`` given the write is keyed and idempotent: when a run of that id already
        exists nothing is written and the id is returned, so a task that a scheduler retries (a
        batch worker that died after writing, a rerun of an interrupted batch) stores its run once.
        The check and the rename of the artifact happen inside one write transaction, so two
        writers of the same key cannot both win.
        """
        pid = self.save_problem(problem)
        keyed = run_id is not None
        if run_id is None:
            run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:8]
        elif self.exists(run_id):
            return run_id
        final = self.artifact_path(run_id)
        verdict = result.meta.get("verdict")
        if not isinstance(verdict, dict):  # a Result stored without jobs.execute: judge it alone
            verdict = judge(result).as_dict()
            result.meta["verdict"] = verdict
        arrays = result_to_arrays(result)
        # Write beside the final name first; the rename happens under the write lock below.
        staged = final.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{final.name}")
        _atomic_write(staged, lambda fh: np.savez(fh, **arrays))
        row = (
            run_id,
            time.time(),
            problem.domain,
            solver,
            pid,
            problem.name,
            _dumps(params),
            _dumps(result.metrics),
            result.status,
            int(result.iterations),
            result.meta.get("wall_s"),
            _dumps(result.meta.get("versions", {})),
            result.message,
            label,
            str(verdict.get("code", "")),
            str(verdict.get("reason", "")),
        )
        try:
            with self._connect() as con:
                con.execute("BEGIN IMMEDIATE")
                try:
                    if (
                        keyed
                        and con.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                    ):
                        con.execute("ROLLBACK")
                        return run_id
                    os.replace(staged, final)
                    con.execute(f"INSERT INTO runs VALUES ({','.join('?' * len(row))})", row)
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
        finally:
            staged.unlink(missing_ok=True)
        return run_id

    def exists(self, run_id: str) -> bool:
        """Whether a run of this id is in the index."""
        with self._connect() as con:
            row = con.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row is not None

    def delete(self, run_id: str) -> bool:
        """Remove a run's row, then its artifact. Returns False if it did not exist."""
        with self._connect() as con:
            cur = con.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
            existed = cur.rowcount > 0
        self.artifact_path(run_id).unlink(missing_ok=True)
        return existed

    def relabel(self, run_id: str, label: str) -> None:
        with self._connect() as con:
            con.execute("UPDATE runs SET label = ? WHERE run_id = ?", (label, run_id))

    # ---- reading --------------------------------------------------------------------------
    def list(
        self,
        domain: str | None = None,
        solver: str | None = None,
        status: str | None = None,
        problem_id: str | None = None,
        limit: int | None = None,
        verdict: str | None = None,
    ) -> list[RunInfo]:
        """Runs, newest first, filtered by any of the given fields."""
        where, args = [], []
        for col, val in (
            ("domain", domain),
            ("solver", solver),
            ("status", status),
            ("problem_id", problem_id),
            ("verdict", verdict),
        ):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        with self._connect() as con:
            rows = con.execute(sql, args).fetchall()
        return [self._info(r) for r in rows]

    def get(self, run_id: str) -> RunInfo:
        with self._connect() as con:
            row = con.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no run {run_id!r}")
        return self._info(row)

    def load_result(self, run_id: str) -> Result:
        return result_from_arrays(_load_npz(self.artifact_path(run_id)))

    def load_problem(self, problem_id: str) -> Problem:
        from workbench.registry import get_domain

        with self._connect() as con:
            row = con.execute(
                "SELECT domain FROM problems WHERE problem_id = ?", (problem_id,)
            ).fetchone()
        if row is None:
            raise KeyError(f"no problem {problem_id!r}")
        cls = get_domain(row[0]).problem_type
        return cls.from_arrays(_load_npz(self.problem_path(problem_id)))

    def problems(self, domain: str | None = None) -> list[dict[str, Any]]:
        """Problems that have at least one run, with their run counts, newest first."""
        sql = (
            "SELECT p.problem_id, p.domain, p.name, COUNT(r.run_id), MAX(r.created) "
            "FROM problems p JOIN runs r ON r.problem_id = p.problem_id "
        )
        args: list[Any] = []
        if domain:
            sql += "WHERE p.domain = ? "
            args.append(domain)
        sql += "GROUP BY p.problem_id ORDER BY MAX(r.created) DESC"
        with self._connect() as con:
            rows = con.execute(sql, args).fetchall()
        keys = ("problem_id", "domain", "name", "runs", "last")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def vacuum(self, older_than_s: float = 3600.0) -> int:
        """Remove temp files and files that no index row names (left by a crash or a kill).

        Only files older than ``older_than_s`` go, so a write in flight in another process is
        never touched. Returns the number of files removed.
        """
        with self._connect() as con:
            runs = {r[0] for r in con.execute("SELECT run_id FROM runs")}
            problems = {r[0] for r in con.execute("SELECT problem_id FROM problems")}
        removed = 0
        now = time.time()
        for folder, known in (("runs", runs), ("problems", problems)):
            for path in (self.home / folder).iterdir():
                orphan = path.name.startswith(".tmp-") or path.stem not in known
                try:
                    if orphan and now - path.stat().st_mtime > older_than_s:
                        path.unlink(missing_ok=True)
                        removed += 1
                except FileNotFoundError:  # removed by another process meanwhile
                    continue
        return removed

    @staticmethod
    def _info(row: tuple) -> RunInfo:
        (
            rid,
            created,
            domain,
            solver,
            pid,
            pname,
            params,
            metrics,
            status,
            it,
            wall,
            vers,
            msg,
            label,
            *judged,
        ) = row
        return RunInfo(
            run_id=rid,
            created=created,
            domain=domain,
            solver=solver,
            problem_id=pid,
            problem=pname,
            params=json.loads(params),
            metrics=json.loads(metrics),
            status=status,
            iterations=it,
            wall_s=wall,
            versions=json.loads(vers),
            message=msg,
            label=label,
            verdict=judged[0] if judged else "",
            verdict_reason=judged[1] if len(judged) > 1 else "",
        )
