import dataclasses
import io
import json

import numpy as np
import pytest

from workbench.cli import main
from workbench.store import RunStore


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_problems_and_solvers(toy, capsys):
    code, out, _ = run(capsys, "problems", "toy")
    assert code == 0 and out.splitlines()[0].split()[0] == "toy_8"
    code, out, _ = run(capsys, "solvers", "toy", "--json")
    spec = json.loads(out)[0]
    assert spec["name"] == "gd" and {p["name"] for p in spec["params"]} >= {
        "max_iter",
        "lr",
        "seed",
    }


def test_solve_json_contract(toy, capsys, tmp_path):
    out_dir = tmp_path / "out"
    code, out, _ = run(
        capsys, "solve", "toy", "--solver", "gd", "--problem", "toy_8",
        "--param", "max_iter=3000", "--param", "lr=0.02", "--out", str(out_dir), "--json", "--no-figure",
    )  # fmt: skip
    assert code == 0
    obj = json.loads(out)  # exactly one JSON object on stdout
    assert set(obj) >= {"run_id", "domain", "solver", "status", "metrics", "wall_s", "artifacts"}
    assert obj["status"] == "converged" and obj["metrics"]["error"] < 1e-6
    assert obj["verdict"]["code"] == "converged" and obj["verdict"]["label"] == "converged"
    with np.load(out_dir / "result.npz") as z:
        assert z["output"].shape == (8,)
    assert json.loads((out_dir / "metrics.json").read_text())["error"] == obj["metrics"]["error"]
    assert RunStore().get(obj["run_id"]).solver == "gd"


def _npz(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--problem", "nope"], "unknown toy sample"),
        (["--input", "/no/such/file.npz"], "no such file"),
        (["--input", "BAD_NPZ"], "not a valid NPY/NPZ"),
        (["--input", "NAN_NPZ"], "NaN"),
        (["--input", "SHAPE_NPZ"], "shapes do not fit"),
        (["--input", "PICKLE_NPZ"], "pickled"),
        (["--problem", "toy_8", "--param", "lr=-1"], "below its minimum"),
        (["--problem", "toy_8", "--param", "bogus=1"], "unknown parameter"),
        (["--problem", "toy_8", "--input", "x"], "exactly one"),
        (["--problem", "toy_8", "--out", "A_FILE"], "is a file, not a folder"),
        (["--problem", "toy_8", "--out", "A_FILE/sub"], "cannot be created"),
    ],
)
def test_bad_input_exits_2_and_stores_nothing(toy, capsys, tmp_path, argv, words):
    files = {
        "BAD_NPZ": b"this is not a zip file at all",
        "NAN_NPZ": _npz(A=np.ones((4, 2)), y=np.array([1, 2, np.nan, 4.0])),
        "SHAPE_NPZ": _npz(A=np.ones((4, 2)), y=np.ones(3)),
        "PICKLE_NPZ": _npz(A=np.array([{"evil": 1}], dtype=object), y=np.ones(1)),
    }
    argv = list(argv)
    (tmp_path / "a_file").write_text("x")
    argv = [a.replace("A_FILE", str(tmp_path / "a_file")) for a in argv]
    for i, a in enumerate(argv):
        if a in files:
            path = tmp_path / f"{a.lower()}.npz"
            path.write_bytes(files[a])
            argv[i] = str(path)
    code, out, err = run(capsys, "solve", "toy", "--solver", "gd", *argv, "--json")
    assert code == 2 and out == ""
    assert err.startswith("error:") and words in err and len(err.strip().splitlines()) == 1
    assert RunStore().list() == []


def test_unknown_solver_and_domain(toy, capsys):
    assert run(capsys, "solve", "toy", "--solver", "nope", "--problem", "toy_8")[0] == 2
    assert run(capsys, "problems", "nodomain")[0] == 2


def test_runs_commands(toy, capsys, tmp_path):
    code, out, _ = run(
        capsys, "solve", "toy", "--solver", "gd", "--problem", "toy_8", "--json", "--no-figure"
    )
    solved = json.loads(out)
    rid = solved["run_id"]
    code, out, _ = run(capsys, "runs", "list", "--json")
    assert [r["run_id"] for r in json.loads(out)] == [rid]
    code, out, _ = run(capsys, "runs", "show", rid, "--json")
    shown = json.loads(out)
    assert shown["solver"] == "gd" and shown["verdict"] == solved["verdict"]["code"]
    # five steps of gradient descent stop at the limit with the residual still falling
    code, out, _ = run(
        capsys, "solve", "toy", "--solver", "gd", "--problem", "toy_8", "--param", "max_iter=5",
        "--json", "--no-figure",
    )  # fmt: skip
    limited = json.loads(out)
    assert limited["status"] == "max_iter" and limited["verdict"]["code"] == "at_limit"
    code, out, _ = run(capsys, "runs", "list", "--verdict", "at_limit", "--json")
    assert limited["run_id"] in [r["run_id"] for r in json.loads(out)]
    code, out, _ = run(capsys, "runs", "list", "--verdict", "suspect", "--json")
    assert json.loads(out) == []
    run(capsys, "runs", "delete", limited["run_id"])
    code, out, _ = run(capsys, "runs", "delete", rid)
    assert code == 0 and RunStore().list() == []
    assert run(capsys, "runs", "show", rid)[0] == 2


def test_runs_export_creates_the_folder_and_vacuum_runs(toy, capsys, tmp_path):
    import os
    import time

    code, out, _ = run(
        capsys, "solve", "toy", "--solver", "gd", "--problem", "toy_8", "--json", "--no-figure"
    )
    rid = json.loads(out)["run_id"]
    target = tmp_path / "missing" / "deeper" / "bundle.zip"
    code, out, _ = run(capsys, "runs", "export", rid, "--out", str(target))
    assert code == 0 and target.stat().st_size > 0
    code, out, _ = run(capsys, "runs", "export", rid, "--out", str(tmp_path / "dir") + "/")
    assert code == 0 and (tmp_path / "dir" / f"{rid}.zip").exists()
    store = RunStore()
    orphan = store.home / "runs" / ".tmp-crashed.npz"
    orphan.write_bytes(b"half a write")
    stray = store.home / "runs" / "no-such-run.npz"
    stray.write_bytes(b"x")
    old = time.time() - 7200
    for f in (orphan, stray):
        os.utime(f, (old, old))
    code, out, _ = run(capsys, "runs", "vacuum")
    assert code == 0 and "removed 2" in out
    assert not orphan.exists() and not stray.exists()
    assert store.artifact_path(rid).exists() and store.get(rid).solver == "gd"


def test_store_vacuums_when_it_opens_at_most_hourly(tmp_path):
    import os
    import time

    home = tmp_path / "home"
    RunStore(home)
    orphan = home / "runs" / ".tmp-x.npz"
    orphan.write_bytes(b"x")
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    RunStore(home)  # vacuumed less than an hour ago: left alone
    assert orphan.exists()
    os.utime(home / ".last-vacuum", (old, old))
    RunStore(home)
    assert not orphan.exists()


def test_input_error_inside_a_solver_is_refused_not_stored(toy):
    from workbench import registry
    from workbench.errors import InputError
    from workbench.jobs import JobQueue, execute

    spec = registry.get_solver("toy", "gd")

    def refuse(problem, params, progress=None):
        raise InputError("the window 900-950 eV lies outside the data (600-700 eV)")

    bad = dataclasses.replace(spec, solve=refuse)
    problem = registry.get_domain("toy").sample("toy_8")
    store = RunStore()
    with pytest.raises(InputError, match="outside the data"):
        execute(bad, problem, bad.params(), store=store)
    queue = JobQueue(store)
    job = queue.submit(bad, problem, bad.params())
    assert queue.wait(10)
    assert job.error.startswith("the window") and job.result is None
    assert store.list() == []


def test_file_parameters_offer_their_files_and_refuse_missing_ones(tmp_path):
    from workbench import registry
    from workbench.errors import InputError
    from workbench.solvers.mri import recurrentvarnet

    schema = {p["name"]: p for p in recurrentvarnet.SPEC.schema()}
    offered = registry.file_options(schema["checkpoint"])
    assert offered[0] == "auto" and {"rvn_corpus", "rvn_4x", "rvn_8x"} <= set(offered)
    assert recurrentvarnet.SPEC.params({"checkpoint": "rvn_8x"}).checkpoint == "rvn_8x"
    with pytest.raises(InputError, match="no such file"):
        recurrentvarnet.SPEC.params({"checkpoint": "/etc/nothing-here.pt"})
    own = tmp_path / "mine.pt"
    own.write_bytes(b"")
    assert recurrentvarnet.SPEC.params({"checkpoint": str(own)}).checkpoint == str(own)


def test_figure_export_has_a_deadline(toy, capsys, monkeypatch, tmp_path):
    import time

    import workbench.export as export

    def hang(*a, **k):
        time.sleep(30)

    monkeypatch.setattr(export, "figure_bytes_shared", hang)
    monkeypatch.setenv("WORKBENCH_FIGURE_TIMEOUT", "0.5")
    code, out, err = run(
        capsys, "solve", "toy", "--solver", "gd", "--problem", "toy_8", "--json",
        "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert code == 0 and "figure" not in json.loads(out)["artifacts"]
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "within 0.5 s" in warning[0]
    assert len(RunStore().list()) == 1


def test_a_reader_that_leaves_early_ends_the_listing_quietly(tmp_path):
    """``workbench solvers | head -1``: no BrokenPipeError traceback, the shell's 141 (the
    listing is hundreds of lines, each its own write, so the writer meets the closed pipe)."""
    import shlex
    import subprocess
    import sys

    err = tmp_path / "err.txt"
    cmd = f"{shlex.quote(sys.executable)} -m workbench.cli solvers 2>{err} | head -1 >/dev/null"
    out = subprocess.run(
        ["bash", "-c", cmd + "; echo ${PIPESTATUS[0]}"], capture_output=True, text=True
    )
    assert out.stdout.strip() == "141", err.read_text()[-2000:]
    assert "Traceback" not in err.read_text()
