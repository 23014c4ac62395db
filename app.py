"""Inverse Workbench: the Streamlit router. Run with `make run`."""

import streamlit as st

from workbench import registry
from workbench.ui import PAGES_DIR, common

common.setup()
domain_pages = [
    st.Page(str(PAGES_DIR / f"{d.name}.py"), title=d.title, url_path=d.name)
    for d in registry.domains()
    if (PAGES_DIR / f"{d.name}.py").exists()
]
nav = st.navigation(
    {
        "Workbench": [
            st.Page(str(PAGES_DIR / "home.py"), title="Home", icon=":material/home:", default=True)
        ],
        "Domains": domain_pages,
        "Results": [
            st.Page(str(PAGES_DIR / "runs.py"), title="Runs", icon=":material/history:"),
            st.Page(str(PAGES_DIR / "compare.py"), title="Compare", icon=":material/compare:"),
        ],
    }
)
nav.run()
