"""AppTest of the PDE page: preset, typed expression (good and unsafe), stored runs side by side."""

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from workbench import registry
from workbench.jobs import execute
from workbench.store import RunStore

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120


def test_pde_page_preset_and_stored_runs():
    at = AppTest.from_file(str(ROOT / "app_pages/pde.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.title[0].value == "PDEs"
    assert any("No finished runs" in c.value for c in at.caption)
    dom = registry.get_domain("pde")
    problem = dom.sample(dom.samples[0].name)
    store = RunStore()
    for name, kw in (("reference", {}), ("gp_hm", {"max_iter": 20, "q": 5})):
        spec = registry.get_solver("pde", name)
        execute(spec, problem, spec.params(kw), store=store)
    at = AppTest.from_file(str(ROOT / "app_pages/pde.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    assert len(specs) >= 3
    assert any("learned spectral mixture" in s for s in specs)
    assert any("exact" in s and "log10" in s for s in specs)


def test_pde_page_typed_expression_and_unsafe_input():
    at = AppTest.from_file(str(ROOT / "app_pages/pde.py"), default_timeout=TIMEOUT).run()
    at.radio(key="wb.pde.source").set_value("Typed expression").run()
    assert not at.exception
    assert any(m.label == "ground truth" for m in at.metric)
    at.text_input(key="wb.pde.t.exact").input("__import__('os').system('ls')").run()
    assert not at.exception
    assert any("not allowed" in e.value for e in at.error)
    at.text_input(key="wb.pde.t.exact").input("sin(3*x)").run()
    at.text_input(key="wb.pde.t.domain").input(json.dumps({"disk": 1})).run()
    assert any("box" in e.value for e in at.error)
