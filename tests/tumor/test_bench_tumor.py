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


class _Built(Exception):
    def __init__(self, parser):
        self.parser = parser


@pytest.mark.parametrize(
    ("title", "script"),
    [("Tumour growth", "tumor"), ("Tumour growth: patient space", "tumor_patient")],
)
def test_make_bench_regenerates_the_tumour_sections_by_their_printed_command(
    title, script, monkeypatch
):
    """`make bench` runs `workbench bench <script>` with no options, so the options of the
    command a tumour section prints must all be the script's defaults."""
    import argparse
    import re
    import runpy
    import shlex

    text = (ROOT / "BENCHMARKS.md").read_text()
    body = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M).group(1)
    cmd = shlex.split(re.search(r"^Command: `([^`]+)`", body, re.M).group(1))
    assert cmd[:3] == ["workbench", "bench", script]

    def capture(self, *a, **k):
        raise _Built(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    mod = runpy.run_path(str(ROOT / "benchmarks" / f"{script}.py"), run_name="workbench_bench")
    with pytest.raises(_Built) as got:
        mod["main"]([])
    parser = got.value.parser
    printed, extra = parser.parse_known_args(cmd[3:])  # parse_args itself is patched above
    assert extra == []
    assert vars(printed) == vars(parser.parse_known_args([])[0])
