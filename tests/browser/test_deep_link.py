"""A deep link as the very first request of a fresh server opens the page inside the router.

Streamlit switches to its legacy multipage mode (a raw file list in the sidebar) when a folder
named ``pages/`` sits beside the entry script, and a session that arrives at ``/<page>`` before
the router has ever run then gets that mode. The page scripts therefore live in ``app_pages/``.
This module starts its own server so that its first request is the deep link."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_deep_link_first_request_gets_router_navigation(server, page):
    page.goto(f"{server['url']}/ot")
    page.get_by_text("Sinkhorn–Newton–Sparse").first.wait_for(timeout=120_000)
    nav = page.locator("[data-testid='stSidebarNav']")
    nav.get_by_text("Optimal transport").wait_for(timeout=30_000)
    names = [t.strip() for t in nav.locator("a").all_inner_texts()]
    # the router's titles, not the legacy list of file names (app, compare, ot, runs, ...)
    assert any("Compare" in n for n in names) and any("Tumour growth" in n for n in names)
    assert "app" not in names and "ot" not in names
