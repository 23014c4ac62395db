"""The UI layer: the only package below ``pages/`` that imports streamlit.

``common`` holds the widgets every domain page shares (problem picker, parameter forms built from
``Params``, the run panel with live progress, downloads, 3D embedding); ``runs``, ``compare`` and
``home`` are the bodies of the generic pages; ``<domain>.py`` are the domain pages' bodies.
"""
