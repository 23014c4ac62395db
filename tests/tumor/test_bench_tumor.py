"""The tumour benchmark script's process pool (benchmarks/tumor.py): every job run once, results
in job order, never more processes at work than asked for, failures reported per job."""

import importlib.util
import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("tumor_bench", ROOT / "benchmarks" / "tumor.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_pool_runs_every_job_once_in_order_with_at_most_workers_processes(tmp_path, workers):
    B = _bench()

    def job(j):
        # each job leaves a start/end stamp, so that the overlap of processes can be counted
        t0 = time.time()
        time.sleep(0.05)
        if j == 3:
            raise ValueError("planted failure")
        (tmp_path / f"{j}.txt").write_text(f"{os.getpid()} {t0} {time.time()}")
        return {"job": j, "pid": os.getpid()}

    jobs = list(range(7))
    state = B._start_jobs(job, jobs, workers)
    here = os.getpid()
    got = B._collect_jobs(state)
    assert [g.get("job") for g in got] == [0, 1, 2, None, 4, 5, 6]
    assert got[3] == {"error": "ValueError: planted failure"}
    stamps = [
        tuple(map(float, (tmp_path / f"{j}.txt").read_text().split())) for j in jobs if j != 3
    ]
    pids = {int(p) for p, _, _ in stamps}
    assert len(pids) <= workers
    if workers == 1:
        assert pids == {here}  # no fork at all
    # at no start time are more than `workers` jobs running
    for _, s, _ in stamps:
        assert sum(a <= s < b for _, a, b in stamps) <= workers
