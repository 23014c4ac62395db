"""AppTest of the OT page: sample, recommendation, stored runs side by side, bad upload."""

import io
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from workbench import registry
from workbench.jobs import execute
from workbench.store import RunStore

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 90


def test_ot_page_sample_runs_and_recommendation():
    at = AppTest.from_file(str(ROOT / "app_pages/ot.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.title[0].value == "Optimal transport"
    assert any("No finished runs" in c.value for c in at.caption)
    at.button(key="wb.ot.rec_btn").click().run()
    assert not at.exception
    assert any("Recommended" in s.value for s in at.success)

    dom = registry.get_domain("ot")
    problem = dom.sample(dom.samples[0].name)
    store = RunStore()
    for name in ("sinkhorn_newton", "emd"):
        spec = registry.get_solver("ot", name)
        execute(spec, problem, spec.params(), store=store)
    at = AppTest.from_file(str(ROOT / "app_pages/ot.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    charts = at.get("plotly_chart")
    assert len(charts) >= 4  # measures, convergence, two plans (+ sparsity, histograms)
    assert any("L1 marginal error" in c.proto.spec for c in charts)


def test_ot_page_bad_upload_shows_error():
    at = AppTest.from_file(str(ROOT / "app_pages/ot.py"), default_timeout=TIMEOUT).run()
    at.radio(key="wb.ot.picker.source").set_value("Upload").run()
    assert not at.exception
    buf = io.BytesIO()
    np.savez(buf, a=np.array([0.5, np.nan]), b=np.array([1.0]), C=np.ones((2, 1)))
    up = at.file_uploader(key="wb.ot.picker.upload") if hasattr(at, "file_uploader") else None
    if up is None:
        return
    up.upload("bad.npz", buf.getvalue(), "application/octet-stream").run()
    assert not at.exception
    assert any("NaN" in e.value for e in at.error)


def test_ot_page_shows_benchmark_error_time_curves(tmp_path, monkeypatch):
    import json

    import workbench.bench

    (tmp_path / "results").mkdir()
    curves = {
        "random_500": {
            "sns": {"t": [0.1, 0.4], "e": [1e-2, 1e-9], "passes": [3, 60]},
            "POT sinkhorn": {"t": [0.5, 9.0], "e": [1e-3, 9e-9], "passes": [40, 30000]},
        }
    }
    (tmp_path / "results" / "ot_curves.json").write_text(json.dumps(curves))
    monkeypatch.setattr(workbench.bench, "benchmarks_dir", lambda: tmp_path)
    at = AppTest.from_file(str(ROOT / "app_pages/ot.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("error against time" in s and "POT sinkhorn" in s for s in specs)
