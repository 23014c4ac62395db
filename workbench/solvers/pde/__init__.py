"""PDE solvers: reference (Chebyshev / finite differences), GP-HM, GP baselines and PINNs."""
