import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from workbench.problems import OTProblem
from workbench.result import Result
from workbench.store import RunStore


def _problem():
    a = np.full(3, 1 / 3)
    return OTProblem(name="tiny", a=a, b=a, C=np.arange(9.0).reshape(3, 3))


def _result(v=1.0):
    return Result(
        output=np.full((3, 3), v),
        kind="plan",
        status="converged",
        iterations=3,
        metrics={"marginal_error": 1e-9, "seed_mm": [1.5, -2.0, 3.25]},
        history={"step": [1, 2, 3], "error": [1.0, 0.1, 0.01]},
        extras={"x": np.arange(3.0), "note": "hello", "pattern": [1, 2]},
        meta={"wall_s": 0.5, "seed": 0},
    )


def test_round_trip(tmp_path):
    store = RunStore(tmp_path)
    rid = store.save(_problem(), "sinkhorn", {"reg": 0.01}, _result(), label="first")
    info = store.get(rid)
    assert info.solver == "sinkhorn" and info.params == {"reg": 0.01} and info.label == "first"
    assert info.metrics["marginal_error"] == 1e-9 and info.wall_s == 0.5
    assert info.metrics["seed_mm"] == [1.5, -2.0, 3.25]  # vector metrics survive the index
    r = store.load_result(rid)
    assert r.metrics["seed_mm"] == [1.5, -2.0, 3.25]
    np.testing.assert_array_equal(r.output, np.ones((3, 3)))
    np.testing.assert_array_equal(r.extras["x"], np.arange(3.0))
    assert r.extras["note"] == "hello" and r.history["error"] == [1.0, 0.1, 0.01]
    assert [x.run_id for x in store.list(problem_id=_problem().id)] == [rid]
    assert store.problems()[0]["runs"] == 1


def test_runs_survive_a_new_store_object(tmp_path):
    rid = RunStore(tmp_path).save(_problem(), "emd", {}, _result())
    assert RunStore(tmp_path).get(rid).solver == "emd"


def test_filters_and_delete(tmp_path):
    store = RunStore(tmp_path)
    a = store.save(_problem(), "sinkhorn", {}, _result())
    failed = Result(output=np.zeros(0), kind="plan", status="failed", message="boom")
    b = store.save(_problem(), "emd", {}, failed)
    assert [r.run_id for r in store.list(status="failed")] == [b]
    assert [r.run_id for r in store.list(solver="sinkhorn")] == [a]
    assert store.delete(a) and not store.delete(a)
    assert not store.artifact_path(a).exists()
    with pytest.raises(KeyError):
        store.get(a)


def test_no_pickles_in_artifacts(tmp_path):
    store = RunStore(tmp_path)
    rid = store.save(_problem(), "sinkhorn", {}, _result())
    with np.load(store.artifact_path(rid), allow_pickle=False) as z:
        assert "output" in z.files  # loads without pickle


def test_path_traversal_is_refused(tmp_path):
    with pytest.raises(KeyError):
        RunStore(tmp_path).artifact_path("../../etc/passwd")


_CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_store import _problem, _result
    from workbench.store import RunStore
    import workbench.store as st

    store = RunStore({home!r})
    store.save(_problem(), "before", {{}}, _result())

    def slow_savez(fh, **arrays):
        fh.write(b"PK\\x03\\x04 half an archive")
        fh.flush()
        print("writing", flush=True)
        time.sleep(120)

    st.np.savez = slow_savez
    store.save(_problem(), "torn", {{}}, _result(2.0))
    """
)


def test_killed_mid_write_leaves_no_torn_run(tmp_path):
    home = tmp_path / "home"
    code = _CHILD.format(tests=os.path.dirname(__file__), home=str(home))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
    finally:
        child.kill()
        child.wait(10)
    store = RunStore(home)
    runs = store.list()
    assert [r.solver for r in runs] == ["before"]
    store.load_result(runs[0].run_id)  # the finished run is intact
    leftovers = list((home / "runs").glob(".tmp-*"))
    assert leftovers, "the killed write should have left its temp file"
    assert store.vacuum(older_than_s=0) == len(leftovers)
    assert [r.solver for r in store.list()] == ["before"]


_WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_store import _problem, _result
    from workbench.store import RunStore
    store = RunStore({home!r})
    for i in range(15):
        store.save(_problem(), "writer{w}", {{"i": i}}, _result(float(i)))
    """
)


def test_concurrent_writers_lose_nothing(tmp_path):
    home = str(tmp_path / "home")
    RunStore(home)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER.format(tests=os.path.dirname(__file__), home=home, w=w)]
        )
        for w in (1, 2)
    ]
    assert [p.wait(120) for p in procs] == [0, 0]
    store = RunStore(home)
    runs = store.list()
    assert len(runs) == 30
    for w in (1, 2):
        got = sorted(r.params["i"] for r in runs if r.solver == f"writer{w}")
        assert got == list(range(15))
    for r in runs:
        assert store.load_result(r.run_id).output.shape == (3, 3)


def test_metrics_rows_show_vector_metrics(tmp_path):
    from workbench.viz.common import metrics_rows

    store = RunStore(tmp_path)
    rid = store.save(_problem(), "sinkhorn", {}, _result())
    (row,) = metrics_rows([(store.get(rid), None)])
    assert row["marginal_error"] == 1e-9 and row["seed_mm"] == "(1.5, -2, 3.25)"
