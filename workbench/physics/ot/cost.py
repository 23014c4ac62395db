"""Ground costs between the supports of two measures (the C of ``min_P <C, P>``)."""

from __future__ import annotations

import numpy as np

from workbench.errors import InputError

COSTS = ("sqeuclidean", "euclidean")


def pairwise_cost(X: np.ndarray, Y: np.ndarray, cost: str) -> np.ndarray:
    """Squared Euclidean or Euclidean distances between the rows of X and Y."""
    d2 = np.sum(X**2, 1)[:, None] + np.sum(Y**2, 1)[None, :] - 2.0 * X @ Y.T
    np.maximum(d2, 0.0, out=d2)
    if cost == "sqeuclidean":
        return d2
    if cost == "euclidean":
        return np.sqrt(d2)
    raise InputError(f"unknown cost {cost!r}; use one of {', '.join(COSTS)}")
