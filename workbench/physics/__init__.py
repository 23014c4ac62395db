"""The physics of each domain: forward models, measurement simulation and quality metrics.

One package per domain. What lives here is what any inversion method of that domain shares —
operators that know their adjoint, masks, coil maps, atlases and simulators, discretisations,
cost construction — and the domain's ground-truth metrics (``physics/<domain>/metrics.py``).
Physics imports only the core: never solvers, datasets, io, viz or ui (``tests/core/test_layering.py``).
"""
