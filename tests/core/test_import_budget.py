"""Imports follow need: a CLI call imports only what the chosen solver uses.

Each case runs the CLI in a fresh interpreter and reads ``sys.modules`` afterwards -- what was
imported, never how long it took (timings live in ``benchmarks/startup.py``). POT pulls in
scikit-learn and torch, torch costs about a second, plotly and kaleido are only for figures: a
NumPy solve with ``--no-figure`` must load none of them.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "ot", "sklearn", "plotly", "kaleido", "pandas", "pyvista", "vtk", "streamlit")

PROBE = """
import json, sys
from workbench.cli import main
code = main(sys.argv[1:]) if len(sys.argv) > 1 else 0
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
watched = sorted(m for m in {watch!r} if m in sys.modules)
print(json.dumps({{"code": code, "heavy": heavy, "scipy": "scipy" in sys.modules,
                   "watched": watched}}))
"""
#: Lighter modules some solvers must not need either (reported, asserted case by case).
WATCH = ("scipy.stats", "scipy.ndimage", "torch", "nibabel", "skimage", "h5py")


def _probe(tmp_path: Path, *argv: str) -> dict:
    env = {
        **os.environ,
        "WORKBENCH_HOME": str(tmp_path / "home"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY, watch=WATCH), *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def ot10(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "ot10.npz"
    np.savez(path, a=np.full(10, 0.1), b=np.full(10, 0.1), C=rng.random((10, 10)))
    return str(path)


def test_importing_the_cli_loads_no_numerics(tmp_path):
    got = _probe(tmp_path)
    assert got["heavy"] == [] and not got["scipy"]


def test_sinkhorn_no_figure_imports_no_torch_pot_sklearn_plotly(tmp_path, ot10):
    argv = ["solve", "ot", "--solver", "sinkhorn", "--input", ot10, "--no-figure", "--json"]
    got = _probe(tmp_path, *argv, "--param", "reg=0.05", "--out", str(tmp_path / "out"))
    assert got["code"] == 0
    assert got["heavy"] == []
    assert not got["scipy"]  # a 10 x 10 exact cost needs no LP solver either
    # the run really happened, with the exact cost (HiGHS, not POT) among its metrics
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["marginal_error"] <= 1e-8 and metrics["exact_cost"] > 0


def test_other_domains_numpy_solver_imports_no_torch(tmp_path):
    argv = ["solve", "pde", "--solver", "reference", "--problem", "poisson1d_sin10"]
    got = _probe(tmp_path, *argv, "--no-figure")
    assert got["code"] == 0 and got["heavy"] == []


def test_listing_and_help_stay_light(tmp_path):
    assert _probe(tmp_path, "problems", "ot")["heavy"] == []
    assert _probe(tmp_path, "runs", "list")["heavy"] == []


def test_mri_zero_filled_is_numpy_only(tmp_path):
    """The MRI baseline, its sample (simulated k-space, ESPIRiT maps) and its evaluation (the
    data-consistency residual) run in NumPy: no torch for a zero-filled solve."""
    argv = ["solve", "mri", "--solver", "zero_filled", "--problem", "mni_slice", "--no-figure"]
    got = _probe(tmp_path, *argv, "--json", "--out", str(tmp_path / "out"))
    assert got["code"] == 0 and got["heavy"] == []
    assert "nibabel" not in got["watched"]  # the template is read by workbench.physics.nifti
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["psnr"] > 15 and 0 < metrics["data_residual"] < 1


def test_eels_pca_needs_no_scipy_stats_or_ndimage(tmp_path):
    """A PCA detector's rank-based metrics (ROC AUC) use the project's own tie-averaging ranks
    and the sample's synthesis its own Gaussian filter: importing scipy.stats or scipy.ndimage
    took longer than the PCA run or the synthesis."""
    argv = ["solve", "eels", "--solver", "pca_t2", "--problem", "small_2eV_5pct", "--no-figure"]
    got = _probe(tmp_path, *argv, "--json", "--out", str(tmp_path / "out"))
    assert got["code"] == 0 and got["heavy"] == []
    assert "scipy.stats" not in got["watched"] and "scipy.ndimage" not in got["watched"]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert 0.5 < metrics["roc_auc"] <= 1.0


def test_tumor_lookup_imports_no_scipy_once_the_atlas_is_cached(tmp_path):
    """The tumour lookup's sample and re-simulations need the 64^3 atlas; the first call builds
    it from the 1 mm templates (with scipy.ndimage) and caches it under WORKBENCH_HOME, a later
    call reads it back and imports no scipy at all (the seed's erf is math.erf)."""
    argv = ["solve", "tumor", "--solver", "db_lookup_fast", "--problem", "synthetic_small"]
    argv += ["--no-figure", "--json"]
    first = _probe(tmp_path, *argv, "--out", str(tmp_path / "out1"))
    assert first["code"] == 0 and first["heavy"] == []
    assert list((tmp_path / "home" / "cache" / "tumor").glob("atlas64_*.npz"))
    got = _probe(tmp_path, *argv, "--out", str(tmp_path / "out2"))
    assert got["code"] == 0 and got["heavy"] == []
    assert not got["scipy"] and "nibabel" not in got["watched"]
    # the same run both times, with the database's lookup really done
    m1 = json.loads((tmp_path / "out1" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "out2" / "metrics.json").read_text())
    assert m2["dice_edema"] > 0.5 and m2["n_db"] > 1000
    assert {k: v for k, v in m1.items() if not k.endswith("_s")} == {
        k: v for k, v in m2.items() if not k.endswith("_s")
    }
