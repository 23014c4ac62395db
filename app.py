"""Inverse Workbench: the Streamlit router. Run with `make run`."""

from pathlib import Path

import streamlit as st

from workbench import registry
from workbench.ui import common

common.setup()
here = Path(__file__).parent
domain_pages = [
    st.Page(str(here / "pages" / f"{d.name}.py"), title=d.title, url_path=d.name)
    for d in registry.domains()
    if (here / "pages" / f"{d.name}.py").exists()
]
nav = st.navigation(
    {
        "Workbench": [
            st.Page(
                str(here / "pages" / "home.py"), title="Home", icon=":material/home:", default=True
            )
        ],
        "Domains": domain_pages,
        "Results": [
            st.Page(str(here / "pages" / "runs.py"), title="Runs", icon=":material/history:"),
            st.Page(str(here / "pages" / "compare.py"), title="Compare", icon=":material/compare:"),
        ],
    }
)
nav.run()
