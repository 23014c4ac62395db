"""AppTests of the generic pages (Home, Runs, Compare) and the router."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from workbench import registry
from workbench.jobs import execute
from workbench.store import RunStore

TIMEOUT = 60
ROOT = Path(__file__).resolve().parents[1]


def _two_runs():
    dom = registry.get_domain("ot")
    problem = dom.sample(dom.samples[0].name)
    store = RunStore()
    ids = []
    for name in ("emd", "sinkhorn"):
        spec = registry.get_solver("ot", name)
        _, rid = execute(spec, problem, spec.params(), store=store)
        ids.append(rid)
    return problem, ids


def test_router_and_home():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    titles = [s.value for s in at.subheader]
    for dom in registry.domains():
        assert dom.title in titles


def test_runs_page_empty_then_lists_and_deletes():
    at = AppTest.from_file(str(ROOT / "app_pages/runs.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("No runs yet" in i.value for i in at.info)
    _, ids = _two_runs()
    at = AppTest.from_file(str(ROOT / "app_pages/runs.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    opened = at.selectbox(key="wb.runs.open")
    assert opened.options[0].startswith(f"sinkhorn · {ids[1][-6:]}")  # newest first
    assert opened.options[1].startswith(f"emd · {ids[0][-6:]}")
    table = at.dataframe[0].value
    assert list(table["run"]) == [ids[1], ids[0]]
    assert {"domain", "solver", "problem", "status", "verdict", "started"} <= set(table.columns)
    assert set(table["verdict"]) <= {"converged", "stopped at the limit"}
    badges = [m.value for m in at.markdown if "badge[" in m.value]
    assert badges and ("converged" in badges[0] or "limit" in badges[0])  # the opened run's
    at.selectbox(key="wb.runs.status").set_value("converged").run()
    assert not at.exception
    at.selectbox(key="wb.runs.status").set_value("all").run()
    at.selectbox(key="wb.runs.open").set_value(ids[0]).run()
    at.checkbox(key=f"wb.runs.confirm.{ids[0]}").check().run()
    at.button(key="wb.runs.delete").click().run()
    assert not at.exception
    assert [r.run_id for r in RunStore().list()] == [ids[1]]


def test_compare_page_two_runs():
    problem, ids = _two_runs()
    at = AppTest.from_file(str(ROOT / "app_pages/compare.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    picked = [m for m in at.multiselect if m.label == "Runs to compare"][0]
    assert sorted(picked.value) == sorted(ids)
    table = at.dataframe[0].value
    assert len(table) == 2 and {"emd", "sinkhorn"} == set(table["solver"])
    charts = at.get("plotly_chart")
    assert len(charts) >= 2  # side by side + convergence


@pytest.mark.parametrize("page", ["home", "runs", "compare"])
def test_pages_are_thin_wrappers(page):
    text = (ROOT / "app_pages" / f"{page}.py").read_text()
    assert f"{page}.render()" in text


def test_runs_export_of_a_selection_holds_each_bundle_and_the_table():
    import csv
    import io
    import zipfile

    from workbench.ui.runs import _bundles

    _, ids = _two_runs()
    # figures=False: each bundle's figures render through Chromium (tested in test_export)
    with zipfile.ZipFile(io.BytesIO(_bundles(RunStore(), ids, figures=False))) as z:
        names = set(z.namelist())
        assert names == {f"{i}.zip" for i in ids} | {"runs.csv"}
        rows = list(csv.DictReader(io.StringIO(z.read("runs.csv").decode())))
    assert [r["run"] for r in rows] == ids
    assert all(r["verdict"] in ("converged", "stopped at the limit") for r in rows)
    assert {r["key metric"] for r in rows} == {"marginal_error"}


def _facts_page():
    from workbench.ui import common

    common.facts([("n", "64"), ("cost", "sqeuclidean", "the ground cost"), None, ("m", "48")])


def _five_long_facts():
    from workbench.ui import common

    common.facts([(str(i), "sqeuclidean") for i in range(5)])


def test_facts_show_a_long_value_whole_instead_of_a_cut_metric():
    at = AppTest.from_function(_facts_page, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    # 44 // 4 = 11 characters fit a metric in a row of four: "sqeuclidean" (11) is one
    assert [m.label for m in at.metric] == ["n", "cost", "m"]
    at = AppTest.from_function(_five_long_facts, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    # five to a row: 8 characters fit, so every value is shown as bold text that wraps
    assert len(at.metric) == 0
    assert sum("**sqeuclidean**" in m.value for m in at.markdown) == 5
