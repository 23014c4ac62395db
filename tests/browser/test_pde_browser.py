"""End to end in a real Chromium on the PDE page: type an expression, run GP-HM beside the
reference solver, read the side-by-side table, look at the learned spectrum and download the
solution as NPZ; then type an expression that must be refused."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.browser.test_ot_browser import _wait_gone

pytestmark = pytest.mark.browser


def _open_pde(page, url):
    page.goto(url)
    page.get_by_text("Inverse Workbench").first.wait_for()
    page.get_by_role("link", name="PDEs").click()
    page.get_by_text("Problem from").wait_for()
    page.get_by_text("Typed expression").click()
    page.get_by_role("textbox", name="u(x[, y]) =").wait_for()


def test_typed_problem_run_spectrum_download(server, page):
    _open_pde(page, server["url"])
    box = page.get_by_role("textbox", name="u(x[, y]) =")
    box.fill("sin(30*x)")
    box.press("Enter")
    page.get_by_text("Equations").click()
    page.get_by_text("u = sin(30*x)").wait_for()
    # default solvers: GP-HM and the reference
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Running", exact=True).first.wait_for()
    _wait_gone(page, "Running")
    page.get_by_text("Side by side").wait_for(timeout=120_000)
    page.locator("span[data-tag][aria-label^='gp_hm ·']").wait_for(timeout=120_000)
    page.locator("span[data-tag][aria-label^='reference ·']").wait_for()

    page.get_by_role("tab", name="GP spectrum").click()
    page.get_by_text("learned spectral mixture").wait_for()

    page.get_by_label("Run to export").wait_for()
    with page.expect_download(timeout=120_000) as dl:
        page.get_by_role("button", name="NPZ").first.click()
    with open(dl.value.path(), "rb") as fh:
        data = np.load(io.BytesIO(fh.read()), allow_pickle=False)
    assert {"x", "output"} <= set(data.files)
    assert data["output"].shape == data["x"].shape and np.isfinite(data["output"]).all()
    # either run (reference or GP-HM) solves sin(30x) on [0, 1] well on the test grid
    assert np.linalg.norm(data["error"]) <= 1e-2 * np.linalg.norm(data["u_true"])


def test_unsafe_expression_is_refused(server, page):
    _open_pde(page, server["url"])
    box = page.get_by_role("textbox", name="u(x[, y]) =")
    box.fill("__import__('os').system('true')")
    box.press("Enter")
    page.get_by_text("not allowed").first.wait_for()
    # the error shows while the rerun is still going; the previous problem's Run button is a
    # stale element until the rerun ends, and then it must be gone
    page.get_by_role("button", name="Run", exact=True).wait_for(state="detached", timeout=60_000)
    assert page.get_by_role("button", name="Run", exact=True).count() == 0
