"""AppTest of the EELS page: sample, navigator, a stored run and its result views."""

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

PAGE = Path(__file__).resolve().parents[2] / "app_pages" / "eels.py"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    return tmp_path


def test_page_renders_sample_and_navigator(home):
    at = AppTest.from_file(str(PAGE), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert "EELS anomaly detection" in at.title[0].value
    assert len(at.get("plotly_chart")) >= 2  # navigator + spectrum


def test_page_shows_stored_run(home):
    import dataclasses

    from workbench import registry
    from workbench.store import RunStore

    dom = registry.get_domain("eels")
    problem = dom.sample(dom.samples[0].name)
    spec = registry.get_solver("eels", "pca_t2")
    result = spec.solve(problem, spec.Params())
    RunStore(str(home)).save(problem, "pca_t2", dataclasses.asdict(spec.Params()), result)
    at = AppTest.from_file(str(PAGE), default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    charts = at.get("plotly_chart")
    assert len(charts) >= 5  # navigator, spectrum, score maps, ROC/PR, histogram, ...
    assert np.isfinite(result.output).all()
