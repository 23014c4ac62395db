"""PDE physics: safe expression compiler, compiled problems, and the discretisations
(Chebyshev collocation, finite differences) shared by the reference solver, the GPs and the PINNs."""
