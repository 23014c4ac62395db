"""Brain-tumour growth inversion: database lookup (brute force, PCA embedding) and CMA-ES.

Modules: :mod:`.database` (build, store, query), :mod:`.db_lookup`, :mod:`.db_lookup_fast`,
:mod:`.cmaes_fit` (the registered solvers). The atlas and the Fisher–Kolmogorov forward solver they
all run are in :mod:`workbench.physics.tumor`.
"""
