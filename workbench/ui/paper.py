"""The paper-figure panel of the Compare page: one lettered multi-panel figure of the chosen
runs, one or two journal columns wide, downloaded as PDF, SVG or 300-dpi PNG."""

from __future__ import annotations

from typing import Any

import streamlit as st

from workbench.export import MIME
from workbench.ui import common


def paper_panel(problem: Any, runs: list[tuple[Any, Any]], key: str) -> None:
    """A preview of the paper figure of ``runs`` on ``problem`` and its three downloads."""
    from workbench.viz.paper import COLUMN_CM, DPI, paper_bytes, paper_figure_for

    with st.expander("Paper figure", icon=":material/article:"):
        columns = st.radio(
            "Journal width",
            list(COLUMN_CM),
            format_func=lambda c: (
                f"{'one column' if c == 1 else 'two columns'} ({COLUMN_CM[c]} cm)"
            ),
            horizontal=True,
            key=f"{key}.cols",
        )
        labelled = [(info.title, result) for info, result in runs]
        try:
            fig = paper_figure_for(problem, labelled, columns=columns)
        except (ValueError, KeyError) as exc:
            st.info(f"No paper figure for these runs: {exc}")
            return
        st.caption(
            f"{COLUMN_CM[columns]} cm wide; panel letters, one colour bar per row group, "
            f"metrics under each run; PNG at {DPI} dpi"
        )
        common.chart(fig, key=f"{key}.preview", width="content")
        cols = st.columns(3)
        for col, fmt in zip(cols, ("pdf", "svg", "png"), strict=True):
            col.download_button(
                f"Paper figure {fmt.upper()}",
                data=lambda fmt=fmt: paper_bytes(fig, fmt),
                file_name=f"paper-{getattr(problem, 'name', 'figure')}-{columns}col.{fmt}",
                mime=MIME[fmt],
                key=f"{key}.dl.{fmt}",
                on_click="ignore",
                icon=":material/download:",
                width="stretch",
            )
