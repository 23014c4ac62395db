"""The CLI contract against the real domains, in a subprocess as a user runs it."""

import json
import subprocess
import sys

import numpy as np
import pytest

from workbench import registry

DOMAINS = registry.domain_names()


def _cli(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("domain", DOMAINS)
def test_problems_and_solvers_listed(domain):
    proc = _cli("problems", domain)
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    assert names == registry.get_domain(domain).sample_names()
    proc = _cli("solvers", domain, "--json")
    specs = json.loads(proc.stdout)
    assert specs and all(s["domain"] == domain and s["params"] for s in specs)


def test_solve_ot_writes_npz_metrics_and_png(tmp_path):
    out = tmp_path / "out"
    proc = _cli(
        "solve", "ot", "--solver", "sinkhorn_newton", "--problem", "hist1d",
        "--param", "reg=0.01", "--out", str(out), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.strip().splitlines()  # exactly one JSON object
    obj = json.loads(line)
    assert obj["status"] == "converged" and obj["metrics"]["marginal_error"] < 1e-8
    with np.load(out / "result.npz") as z:
        plan = z["output"]
    assert plan.shape == (64, 48) and abs(plan.sum() - 1) < 1e-8
    assert (out / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "metrics.json").read_text())["marginal_error"] < 1e-8


def test_negative_mass_is_refused(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, a=np.array([0.6, -0.1, 0.5]), b=np.full(2, 0.5), C=np.ones((3, 2)))
    proc = _cli("solve", "ot", "--solver", "emd", "--input", str(bad), "--json")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error:") and len(proc.stderr.strip().splitlines()) == 1
