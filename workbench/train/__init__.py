"""Training entry points of the learned solvers (``workbench train <solver> ...``)."""
