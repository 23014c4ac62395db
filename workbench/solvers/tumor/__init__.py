"""Brain-tumour growth: Fisher–Kolmogorov forward model on the MNI152 atlas, database lookup, CMA-ES.

Modules: :mod:`.atlas` (tissue maps on working grids), :mod:`.forward` (batched FK solver),
:mod:`.database` (build, store, query), :mod:`.db_lookup`, :mod:`.db_lookup_fast`,
:mod:`.cmaes_fit` (the registered solvers).
"""
