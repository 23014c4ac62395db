"""``workbench batch``: one run per file, keyed idempotent writes, bad files fail alone, and a
worker killed mid-batch loses no run and duplicates none."""

from __future__ import annotations

import io
import json
import os
import signal
import sys

import numpy as np
import pytest

from workbench import batch, registry
from workbench.errors import InputError
from workbench.jobs import execute
from workbench.store import RunStore


def _ot_file(n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    a = rng.uniform(0.5, 1.5, n)
    b = rng.uniform(0.5, 1.5, n)
    np.savez(buf, a=a / a.sum(), b=b / b.sum(), C=rng.uniform(size=(n, n)))
    return buf.getvalue()


@pytest.fixture
def ot_dir(tmp_path):
    d = tmp_path / "inputs"
    d.mkdir()
    for i in range(4):
        (d / f"p{i}.npz").write_bytes(_ot_file(24, i))
    (d / "broken.npz").write_bytes(b"PK\x03\x04 truncated")
    (d / ".hidden").write_bytes(b"ignored")
    return d


PARAMS = {"reg": "0.05", "max_iter": "400"}


def test_batch_in_process_matches_single_solves_and_isolates_the_bad_file(ot_dir, tmp_path):
    store = RunStore(tmp_path / "home")
    seen = []
    summary = batch.run_batch(
        "ot",
        "sinkhorn",
        batch.read_dir(ot_dir),
        PARAMS,
        store=store,
        progress=lambda t, done, total: seen.append((t.file, done, total)),
    )
    d = summary.as_dict()
    assert [t.file for t in summary.tasks] == ["broken.npz", "p0.npz", "p1.npz", "p2.npz", "p3.npz"]
    assert len(d["runs"]) == 4 and d["stored"] == 4
    assert [f["file"] for f in d["failed"]] == ["broken.npz"]
    reason = d["failed"][0]["reason"]
    assert reason and "\n" not in reason and d["failed"][0]["run_id"] is None
    assert sorted(r.run_id for r in store.list()) == sorted(d["runs"])
    assert [s[1:] for s in seen] == [(k, 5) for k in range(1, 6)]
    # each stored run is exactly what a single solve of that file gives
    dom, spec = registry.get_domain("ot"), registry.get_solver("ot", "sinkhorn")
    for t in summary.tasks[1:]:
        prob = dom.load((ot_dir / t.file).read_bytes(), t.file)
        ref, _ = execute(spec, prob, spec.params(PARAMS))
        got = store.load_result(t.run_id)
        np.testing.assert_allclose(got.output, ref.output, rtol=1e-12, atol=0)
        assert store.get(t.run_id).problem_id == prob.id


def test_rerun_reuses_every_stored_run(ot_dir, tmp_path):
    store = RunStore(tmp_path / "home")
    first = batch.run_batch("ot", "sinkhorn", batch.read_dir(ot_dir), PARAMS, store=store)
    again = batch.run_batch("ot", "sinkhorn", batch.read_dir(ot_dir), PARAMS, store=store)
    assert again.runs == first.runs
    assert again.as_dict()["reused"] == 4 and again.as_dict()["stored"] == 0
    assert len(store.list()) == 4
    # another parameter value is another task
    other = batch.run_batch(
        "ot", "sinkhorn", batch.read_dir(ot_dir), {**PARAMS, "reg": "0.1"}, store=store
    )
    assert not set(other.runs) & set(first.runs) and len(store.list()) == 8


def test_keyed_save_is_idempotent(tmp_path):
    store = RunStore(tmp_path / "home")
    dom, spec = registry.get_domain("ot"), registry.get_solver("ot", "sinkhorn")
    prob = dom.load(_ot_file(16, 0), "a.npz")
    r1, _ = execute(spec, prob, spec.params(PARAMS))
    r2, _ = execute(spec, prob, spec.params({**PARAMS, "max_iter": "3"}))
    assert store.save(prob, "sinkhorn", {}, r1, run_id="batch-k1") == "batch-k1"
    # a retried task writing the same key again changes nothing
    assert store.save(prob, "sinkhorn", {}, r2, run_id="batch-k1") == "batch-k1"
    assert [r.run_id for r in store.list()] == ["batch-k1"]
    np.testing.assert_array_equal(store.load_result("batch-k1").output, r1.output)
    assert not [p for p in (store.home / "runs").iterdir() if p.name.startswith(".tmp-")]


def test_batch_refuses_its_own_bad_input(ot_dir, tmp_path):
    store = RunStore(tmp_path / "home")
    items = batch.read_dir(ot_dir)
    with pytest.raises(InputError, match="unknown parameter"):
        batch.run_batch("ot", "sinkhorn", items, {"nope": "1"}, store=store)
    with pytest.raises(InputError):
        batch.run_batch("ot", "sinkhorn", items, {"reg": "-1"}, store=store)
    with pytest.raises(InputError, match="not both"):
        batch.run_batch("ot", "sinkhorn", items, workers=2, scheduler="tcp://x:1", store=store)
    with pytest.raises(InputError, match="folder"):
        batch.read_dir(ot_dir / "p0.npz")
    assert store.list() == []


def test_cli_batch_json(ot_dir, capsys):
    from workbench.cli import main

    rc = main(
        ["batch", "ot", "--solver", "sinkhorn", "--inputs", str(ot_dir), "--json", "-q"]
        + [f"--param={k}={v}" for k, v in PARAMS.items()]
    )
    out, err = capsys.readouterr()
    assert rc == 1  # one task failed
    lines = out.strip().splitlines()
    assert len(lines) == 1
    d = json.loads(lines[0])
    assert len(d["runs"]) == 4 and [f["file"] for f in d["failed"]] == ["broken.npz"]
    assert {t["status"] for t in d["tasks"]} == {"stored", "failed"}
    assert len(RunStore().list()) == 4

    rc = main(["batch", "ot", "--solver", "sinkhorn", "--inputs", str(ot_dir), "--param", "x=1"])
    out, err = capsys.readouterr()
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error:")
    assert len(RunStore().list()) == 4


@pytest.mark.slow
def test_killed_worker_loses_no_run_and_duplicates_none(tmp_path):
    """Two local worker processes; once the first results are in, SIGKILL a worker that is
    processing a task. Its tasks are rerun elsewhere and every file is stored exactly once."""
    from distributed import Client, LocalCluster

    n = 10
    items = [(f"q{i:02d}.npz", _ot_file(120, i)) for i in range(n)]
    params = {"reg": "0.005", "max_iter": "4000", "tol": "1e-9"}
    store = RunStore(tmp_path / "home")
    killed: dict = {}
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, dashboard_address=None, env=batch.WORKER_ENV
    )
    try:
        with Client(cluster) as client:

            def kill_one(task, done, total):
                if killed:
                    return
                busy = {w: ts for w, ts in client.processing().items() if ts}
                if not busy:
                    return
                addr = sorted(busy)[0]
                pid = client.run(os.getpid, workers=[addr])[addr]
                os.kill(pid, signal.SIGKILL)
                killed.update(addr=addr, keys=list(busy[addr]))

            summary = batch.run_batch(
                "ot",
                "sinkhorn",
                items,
                params,
                scheduler=cluster.scheduler_address,
                store=store,
                progress=kill_one,
            )
    finally:
        cluster.close()
    assert killed, "no worker was busy when a result came in"
    d = summary.as_dict()
    assert d["failed"] == [] and d["stored"] == n
    runs = store.list()
    assert len(runs) == n and len({r.run_id for r in runs}) == n
    assert sorted(r.problem for r in runs) == [name for name, _ in items]
    # the tasks the dead worker held were finished by another worker
    lost = {k.removeprefix("wb-solve-") for k in killed["keys"]}
    redone = [t for t in summary.tasks if t.key in lost]
    assert redone and all(t.worker != killed["addr"] for t in redone)


def test_cli_start_up_does_not_import_dask():
    import subprocess

    code = "import sys, workbench.cli, workbench.batch; print('distributed' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_page_queues_a_batch_over_uploads():
    """The domain page's 'Batch' expander: three uploads (one broken) → two runs, one failure."""
    import time
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    root = Path(__file__).resolve().parents[2]
    at = AppTest.from_file(str(root / "app_pages/ot.py"), default_timeout=90).run()
    at.radio(key="wb.ot.picker.source").set_value("Upload").run()
    assert not at.exception
    mime = "application/octet-stream"
    files = [("u0.npz", _ot_file(12, 0), mime), ("u1.npz", _ot_file(12, 1), mime)]
    files.append(("broken.npz", b"PK\x03\x04 truncated", mime))
    at.file_uploader(key="wb.ot.picker.batch.files").set_value(files).run()
    at.selectbox(key="wb.ot.picker.batch.solver").set_value("emd").run()
    at.button(key="wb.ot.picker.batch.go").click().run()
    assert not at.exception
    store = RunStore()
    t_end = time.time() + 60
    while len(store.list()) < 2 and time.time() < t_end:
        time.sleep(0.2)
    # the thread records the summary after the last write: rerun the page until it shows
    done = False
    while not done and time.time() < t_end + 30:
        time.sleep(0.5)
        at.run()
        done = any("2 run(s), 1 failed" in s.value for s in at.success)
    assert sorted(r.problem for r in store.list()) == ["u0.npz", "u1.npz"]
    assert done, [s.value for s in at.success]
