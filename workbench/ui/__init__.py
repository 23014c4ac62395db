"""The UI layer: the only package below ``app_pages/`` that imports streamlit.

``common`` holds the widgets every domain page shares (problem picker, parameter forms built from
``Params``, the run panel with live progress, downloads, 3D embedding); ``runs``, ``compare`` and
``home`` are the bodies of the generic pages; ``<domain>.py`` are the domain pages' bodies.

The page scripts live in ``app_pages/``, not ``pages/``: a folder named ``pages`` beside the
entry script puts Streamlit in its legacy multipage mode for a session whose first request is a
deep link (``/ot``), which then shows a raw file list instead of the router's navigation.
"""

from pathlib import Path

PAGES_DIR = Path(__file__).resolve().parents[2] / "app_pages"
