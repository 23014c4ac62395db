"""AppTest of the MRI page: sample, mask designer views, a stored run, side-by-side results."""

import dataclasses
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

PAGE = Path(__file__).resolve().parents[2] / "app_pages" / "mri.py"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    return tmp_path


def test_page_renders_sample_mask_and_zero_filled(home):
    at = AppTest.from_file(str(PAGE), default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    assert "MRI reconstruction" in at.title[0].value
    assert len(at.get("plotly_chart")) >= 2  # mask + zero-filled
    assert any("effective R" in m.label for m in at.metric)


def test_page_shows_stored_runs(home):
    from workbench import registry
    from workbench.store import RunStore

    dom = registry.get_domain("mri")
    problem = dom.sample(dom.samples[0].name, **dom.options({}))
    store = RunStore(str(home))
    for name in ("zero_filled", "cg_sense"):
        spec = registry.get_solver("mri", name)
        params = spec.Params()
        store.save(problem, name, dataclasses.asdict(params), spec.solve(problem, params))
    at = AppTest.from_file(str(PAGE), default_timeout=240)
    at.run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) >= 3  # mask, zero-filled, comparison
    assert len(at.dataframe) >= 1
