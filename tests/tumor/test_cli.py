"""`workbench solve tumor ... --input seg.nii.gz --json` and bad inputs (exit 2, nothing stored)."""

import gzip
import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest


def _seg(path, bad: str = ""):
    shape = (60, 72, 60)
    aff = np.array([[3.0, 0, 0, -90.0], [0, 3.0, 0, -126.0], [0, 0, 3.0, -72.0], [0, 0, 0, 1.0]])
    ijk = (
        np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1) @ aff[:3, :3].T
        + aff[:3, 3]
    )
    r = np.linalg.norm(ijk - np.array([-25.0, -10.0, 22.0]), axis=-1)
    lab = np.zeros(shape, np.uint8)
    lab[r < 20] = 2
    lab[r < 10] = 4
    if bad == "empty":
        lab[:] = 0
    if bad == "labels":
        lab[r < 5] = 9
    data = gzip.compress(nib.Nifti1Image(lab, aff).to_bytes())
    if bad == "garbage":
        data = b"\x1f\x8b" + os.urandom(500)
    path.write_bytes(data)
    return path


def _run(args, home):
    env = {**os.environ, "WORKBENCH_HOME": str(home), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.mark.parametrize("bad", ["garbage", "labels"])
def test_bad_input_exit_2_nothing_stored(tmp_path, bad):
    seg = _seg(tmp_path / "seg.nii.gz", bad)
    r = _run(
        ["solve", "tumor", "--solver", "cmaes", "--input", str(seg), "--json"], tmp_path / "home"
    )
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2
    runs = _run(["runs", "list", "--json"], tmp_path / "home")
    assert "tumor" not in runs.stdout


def test_solve_from_nifti_json(tmp_path):
    seg = _seg(tmp_path / "seg.nii.gz")
    out = tmp_path / "out"
    r = _run(
        [
            "solve",
            "tumor",
            "--solver",
            "cmaes",
            "--input",
            str(seg),
            "--param",
            "max_iter=2",
            "--param",
            "grid=32",
            "--json",
            "--out",
            str(out),
            "--no-figure",
        ],
        tmp_path / "home",
    )
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    for k in (
        "dice_core",
        "dice_edema",
        "seed_mm",
        "seed_x_mm",
        "seed_y_mm",
        "seed_z_mm",
        "ell_mm",
        "mu",
        "lambda_mm",
    ):
        assert k in s["metrics"]
    with np.load(out / "result.npz") as z:
        assert z["output"].shape == (64, 64, 64)


def test_db_lookup_cli_and_contract(tmp_path):
    """db_lookup through the CLI on a small database; cancel/seed contract on its sample."""
    from workbench.solvers.tumor.database import BuildConfig, build

    db = tmp_path / "db.h5"
    build(BuildConfig(n=32, grid=32, batch=8, v_min_cm3=2.0, rng_seed=3), db, log=lambda s: None)
    seg = _seg(tmp_path / "seg.nii.gz")
    for solver in ("db_lookup", "db_lookup_fast"):
        r = _run(
            [
                "solve",
                "tumor",
                "--solver",
                solver,
                "--input",
                str(seg),
                "--param",
                f"db={db}",
                "--json",
                "--no-figure",
                "--out",
                str(tmp_path / solver),
            ],
            tmp_path / "home",
        )
        assert r.returncode == 0, r.stderr
        m = json.loads(r.stdout)["metrics"]
        assert (
            0.0 <= m["dice_edema"] <= 1.0
            and "seed_z_mm" in m
            and m["agg_ell_mm_q25"] <= m["agg_ell_mm_q75"]
        )
        # the CLI contract: seed_mm = [x, y, z] in world mm, equal to the split keys
        assert m["seed_mm"] == [m["seed_x_mm"], m["seed_y_mm"], m["seed_z_mm"]]
