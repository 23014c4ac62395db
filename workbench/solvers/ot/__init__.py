"""Optimal transport solvers: log-domain Sinkhorn, Sinkhorn–Newton–Sparse and exact EMD (POT)."""
