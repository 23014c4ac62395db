"""Inverse Workbench: solvers, views and a run store for scientific inverse problems.

The library, the ``workbench`` CLI and the Streamlit pages all drive the same solvers:

>>> from workbench import registry
>>> spec = registry.get_solver("ot", "sinkhorn")          # doctest: +SKIP
>>> problem = registry.get_domain("ot").sample("random_200")  # doctest: +SKIP
>>> result = spec.solve(problem, spec.params())           # doctest: +SKIP
"""

__version__ = "0.1.0"

from workbench import registry as _registry

# The composition root: the core's registry is told here which catalogs list the built-in solvers
# and domains. Nothing else below ui names them, so the core imports no domain code.
_registry.add_catalog(solvers="workbench.solvers", domains="workbench.datasets")
