"""The Runs page: history of every stored run; filter, open, export, delete."""

from __future__ import annotations

import time

import streamlit as st

from workbench import registry
from workbench.export import run_bundle
from workbench.ui import PAGES_DIR, common


def render() -> None:
    st.title("Runs")
    store = common.store()
    domains = registry.domain_names()
    c1, c2, c3 = st.columns(3)
    domain = c1.selectbox("Domain", ["all", *domains], key="wb.runs.domain")
    solver_names = sorted({s.name for s in registry.solvers(None if domain == "all" else domain)})
    solver = c2.selectbox("Solver", ["all", *solver_names], key="wb.runs.solver")
    status = c3.selectbox(
        "Status", ["all", "converged", "max_iter", "cancelled", "failed"], key="wb.runs.status"
    )
    runs = store.list(
        domain=None if domain == "all" else domain,
        solver=None if solver == "all" else solver,
        status=None if status == "all" else status,
    )
    st.caption(f"{len(runs)} run(s) in `{store.home}`")
    if not runs:
        st.info("No runs yet. Open a domain page, pick a sample and press Run.")
        return
    rows = [
        {
            "run": r.run_id,
            "when": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created)),
            "domain": r.domain,
            "solver": r.solver,
            "problem": r.problem,
            "status": r.status,
            "iterations": r.iterations,
            "wall_s": None if r.wall_s is None else round(r.wall_s, 3),
            "label": r.label,
        }
        for r in runs
    ]
    st.dataframe(rows, hide_index=True, width="stretch")
    run_id = st.selectbox("Open run", [r.run_id for r in runs], key="wb.runs.open")
    info = store.get(run_id)
    st.subheader(f"{info.solver} on {info.problem}")
    c1, c2 = st.columns(2)
    with c1:
        st.markdown(
            f"**Status:** {info.status}  \n**Iterations:** {info.iterations}  \n"
            f"**Wall time:** {info.wall_s if info.wall_s is None else f'{info.wall_s:.3g} s'}"
        )
        if info.message:
            st.warning(info.message) if info.status == "failed" else st.caption(info.message)
        st.markdown("**Parameters**")
        st.json(info.params, expanded=False)
    with c2:
        st.markdown("**Metrics**")
        st.json(info.metrics, expanded=True)
        st.markdown("**Versions**")
        st.json(info.versions, expanded=False)
    if info.status != "failed":
        try:
            result = common.load_result(run_id)
            problem = common.load_problem(info.problem_id)
            fig = registry.resolve(registry.get_domain(info.domain).figure)(problem, result)
            common.show_figure(fig, f"{info.solver}-{run_id}", f"wb.runs.fig.{run_id}")
        except Exception as exc:
            st.error(f"Could not draw this run: {type(exc).__name__}: {exc}")
    c0, c1, c2, c3 = st.columns([2, 2, 2, 3])
    if c0.button("Compare with its siblings", key="wb.runs.compare", icon=":material/compare:"):
        st.session_state["wb.compare.domain"] = info.domain
        st.session_state["wb.compare.problem"] = info.problem_id
        st.switch_page(str(PAGES_DIR / "compare.py"))
    c1.download_button(
        "Run bundle (zip)",
        data=lambda: run_bundle(store, run_id),
        file_name=f"run-{run_id}.zip",
        mime="application/zip",
        key="wb.runs.bundle",
        on_click="ignore",
        icon=":material/archive:",
    )
    confirm = c3.checkbox("Yes, delete this run", key=f"wb.runs.confirm.{run_id}")
    if c2.button(
        "Delete run", disabled=not confirm, key="wb.runs.delete", icon=":material/delete:"
    ):
        store.delete(run_id)
        st.toast(f"Deleted {run_id}")
        st.rerun()
