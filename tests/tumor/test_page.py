"""AppTest of the tumour page: the sample patient, the database panel, a stored run with its views."""

import dataclasses
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

PAGE = Path(__file__).resolve().parents[2] / "app_pages" / "tumor.py"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    return tmp_path


def test_page_renders_sample(home):
    at = AppTest.from_file(str(PAGE), default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    assert "Tumour growth" in at.title[0].value
    assert len(at.get("plotly_chart")) >= 1


def test_page_shows_stored_cmaes_run(home):
    from workbench import registry
    from workbench.store import RunStore

    dom = registry.get_domain("tumor")
    problem = dom.sample(dom.samples[0].name)
    spec = registry.get_solver("tumor", "cmaes")
    params = spec.params({"max_iter": 2, "grid": 32})
    result = spec.solve(problem, params)
    RunStore(str(home)).save(problem, "cmaes", dataclasses.asdict(params), result)
    at = AppTest.from_file(str(PAGE), default_timeout=240)
    at.run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) >= 3  # patient, result slices, Dice vs time
    assert any("Parameters" in m.value for m in at.markdown)
