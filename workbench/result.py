"""The one return type of every solver."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

KINDS = ("image", "volume", "field", "plan", "score_map", "parameters")
STATUSES = ("converged", "max_iter", "cancelled", "failed")


@dataclass
class Result:
    """Outcome of one solve.

    Attributes
    ----------
    output : ndarray
        The primary output (image, volume, field, plan, score map or parameter vector).
    kind : str
        One of :data:`KINDS`.
    status : str
        One of :data:`STATUSES`. A cancelled solve still carries its last iterate.
    iterations : int
        Iterations (or epochs, sampling steps) actually taken.
    metrics : dict
        Plain floats, e.g. ``{"marginal_error": 3e-9}``, or short lists of floats for vector
        quantities such as a position (``{"seed_mm": [12.0, -30.5, 8.1]}``). Tables show a
        vector as one text cell; plots use the scalar ones.
    history : dict
        Per-iteration columns of equal length, e.g. ``{"step": [...], "error": [...]}``.
        Numeric columns only; used for convergence curves.
    extras : dict
        Further named outputs: arrays (stored as arrays) or JSON-able values.
    meta : dict
        Seed, versions, device, wall time, and anything the solver wants recorded.
    message : str
        Human-readable explanation of the status (why it failed, what stopped it).
    """

    output: np.ndarray
    kind: str
    status: str = "converged"
    iterations: int = 0
    metrics: dict[str, float | list[float]] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        self.output = np.asarray(self.output)

    @property
    def ok(self) -> bool:
        return self.status in ("converged", "max_iter")

    @property
    def wall_s(self) -> float:
        return float(self.meta.get("wall_s", float("nan")))
