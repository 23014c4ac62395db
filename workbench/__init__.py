"""Inverse Workbench: solvers, views and a run store for scientific inverse problems.

The library, the ``workbench`` CLI and the Streamlit pages all drive the same solvers:

>>> from workbench import registry
>>> spec = registry.get_solver("ot", "sinkhorn")          # doctest: +SKIP
>>> problem = registry.get_domain("ot").sample("random_200")  # doctest: +SKIP
>>> result = spec.solve(problem, spec.params())           # doctest: +SKIP
"""

__version__ = "0.1.0"
