"""The Compare page: one problem, N of its runs side by side."""

from __future__ import annotations

import streamlit as st

from workbench import registry
from workbench.ui import common
from workbench.ui.paper import paper_panel
from workbench.viz.common import compare_figure


def compare_view(problem, runs, key: str) -> None:
    """Side-by-side figure, metrics table and convergence curves of ``runs`` on ``problem``."""
    if not runs:
        st.info("Pick at least one run.")
        return
    dom = registry.get_domain(problem.domain)
    labelled = [(info.title, result) for info, result in runs]
    try:
        if dom.compare_figure:
            fig = registry.resolve(dom.compare_figure)(problem, labelled)
        else:
            fig = compare_figure({label: r.output for label, r in labelled})
        common.show_figure(fig, f"compare-{problem.name}", f"{key}.side")
    except Exception as exc:
        st.error(f"Could not draw the comparison: {type(exc).__name__}: {exc}")
    paper_panel(problem, runs, f"{key}.paper")
    st.markdown("**Metrics**")
    common.metrics_table(runs, key)
    st.markdown("**Convergence**")
    common.convergence_panel(runs, key)


def render() -> None:
    st.title("Compare runs")
    store = common.store()
    domains = registry.domain_names()
    domain = st.selectbox("Domain", domains, key="wb.compare.domain")
    problems = store.problems(domain)
    if not problems:
        st.info("No stored runs in this domain yet.")
        return
    # the sample's own name (the one the domain page showed), and the content id's head when
    # one name covers several problems (the same sample built with other options)
    counts: dict[str, int] = {}
    for p in problems:
        counts[p["name"]] = counts.get(p["name"], 0) + 1
    labels = {
        p["problem_id"]: p["name"]
        + (f" · {p['problem_id'][:6]}" if counts[p["name"]] > 1 else "")
        + f" ({p['runs']} runs)"
        for p in problems
    }
    pid = st.selectbox("Problem", list(labels), format_func=labels.get, key="wb.compare.problem")
    problem = common.load_problem(pid)
    runs = common.pick_runs(common.finished_runs(pid), key=f"wb.compare.runs.{pid}")
    compare_view(problem, runs, key="wb.compare")
