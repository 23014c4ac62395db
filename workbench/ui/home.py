"""The Home page: what each domain does, its samples, a one-click example."""

from __future__ import annotations

import streamlit as st

from workbench import registry
from workbench.ui import PAGES_DIR, common

NOTICE = PAGES_DIR.parent / "NOTICE"


def render() -> None:
    st.title("Inverse Workbench")
    st.markdown(
        "Reconstruct, invert and compare: bundled sample problems or your own files, the anchor "
        "papers' methods (★) beside classical baselines, metrics against ground truth, 2D and 3D "
        "views, and exports for your paper. Every run is stored and can be reopened on **Runs** "
        "and set side by side on **Compare**."
    )
    with st.expander("About the data and licences"):
        st.markdown(NOTICE.read_text() if NOTICE.exists() else "See the NOTICE file.")
    for dom in registry.domains():
        with st.container(border=True):
            st.subheader(dom.title)
            st.markdown(dom.description)
            specs = registry.solvers(dom.name)
            st.markdown(
                "**Solvers:** "
                + ", ".join(f"**{s.title}** ★" if s.paper else s.title for s in specs)
            )
            st.markdown("**Samples:** " + ", ".join(f"`{s.name}`" for s in dom.samples))
            paper = [s for s in specs if s.paper] or specs
            if paper and st.button(
                f"Example: {paper[0].title} on {dom.samples[0].name}",
                key=f"wb.home.ex.{dom.name}",
                icon=":material/play_arrow:",
            ):
                problem = common._sample(dom.name, dom.samples[0].name, "{}")
                common.job_queue().submit(paper[0], problem, paper[0].params(), label="example")
                page = PAGES_DIR / f"{dom.name}.py"
                if page.exists():
                    st.switch_page(str(page))
                st.toast("Queued; see the Runs page.")
