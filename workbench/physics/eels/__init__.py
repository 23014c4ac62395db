"""EELS physics: the core-loss spectrum-image generator (power-law background, edges, Poisson counts)."""
