"""benchmarks/gpu.py, the CUDA-vs-CPU harness: every torch solver has a parity case, a CPU-only
machine skips with a reason, and with CPU standing in for CUDA the harness finds exact parity."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gpu():
    return runpy.run_path(str(ROOT / "benchmarks" / "gpu.py"), run_name="gpu_bench")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_every_torch_solver_has_a_parity_case(gpu):
    keys = gpu["device_solvers"]()
    assert {"ot/sinkhorn", "mri/recurrentvarnet", "eels/cvae3d", "pde/pinn"} <= set(keys)
    assert "pde/reference" not in keys  # its device is cpu only
    assert set(keys) <= set(gpu["PARITY"]), set(keys) - set(gpu["PARITY"])


def test_rel_l2(gpu):
    assert gpu["rel_l2"]([3.0, 4.0], [3.0, 4.0]) == 0.0
    assert gpu["rel_l2"]([3.0, 4.0], [3.0, 4.5]) == pytest.approx(0.1)
    assert gpu["rel_l2"]([1j, 1.0], [1j, 1.0]) == 0.0
    assert gpu["rel_l2"]([1.0], [1.0, 2.0]) == float("inf")


@pytest.mark.skipif(_cuda(), reason="this machine has CUDA: nothing is skipped")
def test_cpu_only_machine_skips_with_a_reason(gpu, capsys):
    assert gpu["main"](["--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "no CUDA device" in out["skipped"]


def test_cpu_fallback_runs_the_harness(gpu, capsys, tmp_path):
    argv = ["--allow-cpu", "--only", "ot/sinkhorn", "mri/zero_filled", "--no-train"]
    rc = gpu["main"]([*argv, "--no-timings", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    if not _cuda():
        assert out["compared"] == "cpu"
        assert [r["rel_l2"] for r in out["parity"]] == [0.0, 0.0]  # seeded: CPU twice is exact
    assert rc == 0 and out["all_ok"]


@pytest.mark.gpu
def test_cuda_parity_of_fast_solvers(gpu, capsys):
    keys = ["ot/sinkhorn", "mri/zero_filled", "mri/cg_sense", "pde/gp_se"]
    rc = gpu["main"](["--only", *keys, "--no-train", "--no-timings", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["compared"] == "cuda"
    assert rc == 0, [r for r in out["parity"] if not r["ok"]]
