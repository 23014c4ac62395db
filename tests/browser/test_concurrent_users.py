"""Three browser sessions and two CLI writers on one server and one run store at once.

Each session uploads its own OT problem and runs it while two `workbench solve` processes write
to the same store, and a fourth user opens the page meanwhile: every run is stored, the fourth
page draws, and no session sees another's upload. Time to first paint under this load is in
BENCHMARKS.md (``workbench bench startup``, App section).

"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.browser.test_ot_browser import ROOT, _open_ot, _wait_gone, _wait_text
from workbench.store import RunStore

pytestmark = pytest.mark.browser


def _problem(n: int) -> bytes:
    rng = np.random.default_rng(n)
    buf = io.BytesIO()
    np.savez(buf, a=np.full(n, 1 / n), b=np.full(5, 0.2), C=rng.random((n, 5)))
    return buf.getvalue()


def test_three_sessions_and_two_cli_writers(server, browser):
    env = {**os.environ, "WORKBENCH_HOME": str(server["home"]), "OMP_WAIT_POLICY": "PASSIVE"}
    before = len(RunStore(server["home"]).list())
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(3)]
    pages = [c.new_page() for c in contexts]
    try:
        for i, page in enumerate(pages):
            _open_ot(page, server["url"])
            page.get_by_text("Upload", exact=True).first.click()
            page.locator("input[type='file']").first.set_input_files(
                {
                    "name": f"user{i}.npz",
                    "mimeType": "application/octet-stream",
                    "buffer": _problem(3 + i),
                }
            )
            _wait_text(page, f"user{i}.npz", timeout=60_000)
        writers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "workbench.cli",
                    "solve",
                    "ot",
                    "--solver",
                    "sinkhorn",
                    "--problem",
                    "hist1d",
                    "--no-figure",
                    "--json",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )  # fmt: skip
            for _ in range(2)
        ]
        for page in pages:
            page.get_by_role("button", name="Run", exact=True).click()

        # A fourth user opens the page meanwhile: it draws (the server does not serialise
        # sessions behind the jobs) and shows no one else's upload.
        late = browser.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(late)
        fourth = late.new_page()
        fourth.set_default_navigation_timeout(180_000)  # the machine is busy with the jobs
        _open_ot(fourth, server["url"])
        fourth.get_by_role("button", name="Run", exact=True).wait_for(timeout=180_000)
        assert not any(f"user{j}.npz" in fourth.inner_text("body") for j in range(3))

        cli_runs = []
        for w in writers:
            out, err = w.communicate(timeout=600)
            assert w.returncode == 0, err.decode()[-500:]
            cli_runs.append(json.loads(out)["run_id"])
        for page in pages:
            _wait_gone(page, "Running", timeout=600_000)
            _wait_text(page, "L1 marginal error of the selected runs", timeout=300_000)

        for i, page in enumerate(pages):  # each session sees its own upload and no other
            body = page.inner_text("body")
            assert f"user{i}.npz" in body
            assert not any(f"user{j}.npz" in body for j in range(3) if j != i)

        store = RunStore(server["home"])
        runs = store.list()
        assert all(rid in {r.run_id for r in runs} for rid in cli_runs)
        uploaded = [r for r in runs if r.problem.startswith("user")]
        assert sorted({r.problem for r in uploaded}) == ["user0.npz", "user1.npz", "user2.npz"]
        assert len(runs) - before == len(uploaded) + 2
        for r in runs:  # every stored run reads back whole
            assert store.load_result(r.run_id).status in ("converged", "max_iter")
    finally:
        for c in contexts:
            c.close()
