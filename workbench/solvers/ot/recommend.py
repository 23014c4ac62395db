"""Which solver to use: probe Sinkhorn, fit its geometric rate, predict its iteration count.

Spec ``ot.md`` §4.3.10: run ``probe`` (50) log-domain Sinkhorn iterations, fit
``log e_k ≈ log e_0 + k log rho`` on the second half of the probe, and predict the number of
iterations needed to reach ``tol``. Sinkhorn–Newton–Sparse is recommended above ``threshold``
(2 000) predicted iterations, plain Sinkhorn below.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from workbench.solvers.ot import _core


@dataclass(frozen=True)
class Recommendation:
    solver: str  # "sinkhorn" or "sinkhorn_newton"
    predicted_iterations: float  # inf when the probe shows no decrease
    rate: float  # fitted geometric factor per iteration
    probe_error: float  # e after the probe
    probe_iterations: int
    reason: str
    errors: tuple[float, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def recommend(
    problem: Any,
    reg: float,
    tol: float = 1e-8,
    probe: int = 50,
    threshold: float = 2000.0,
    device: str = "cpu",
) -> Recommendation:
    """Probe ``probe`` Sinkhorn iterations and recommend ``sinkhorn`` or ``sinkhorn_newton``."""
    import torch

    with torch.no_grad():
        prep = _core.prepare(problem, reg, device)
        alpha = torch.zeros_like(prep.a)
        beta = torch.zeros_like(prep.b)
        errors = []
        for _ in range(probe):
            alpha = _core.sinkhorn_x(prep, beta)
            beta = _core.sinkhorn_y(prep, alpha)
            errors.append(_core.evaluate_state(prep, alpha, beta).e)
    e = np.array(errors)
    if e[-1] <= tol:
        k = int(np.argmax(e <= tol)) + 1
        return Recommendation(
            "sinkhorn",
            float(k),
            float("nan"),
            float(e[-1]),
            probe,
            f"Sinkhorn reached tol within the {probe}-iteration probe",
            tuple(errors),
        )
    # Geometric model from the last window; if the per-window factors are still growing the
    # decay is sublinear and a power law e ~ k^-p (fitted on the second half) is used instead.
    w = max(2, probe // 5)
    ratios = [e[i + w - 1] / e[i - 1] for i in range(w, probe - w + 1, w) if e[i - 1] > 0]
    rate = float((e[-1] / e[-1 - w]) ** (1.0 / w)) if e[-1 - w] > 0 else float("nan")
    sublinear = len(ratios) >= 3 and ratios[-1] - ratios[-3] > 0.03
    model = "geometric"
    if sublinear:
        ks = np.arange(probe // 2, probe) + 1
        p = -np.polyfit(np.log(ks), np.log(e[probe // 2 :]), 1)[0]
        predicted = probe * (e[-1] / tol) ** (1.0 / p) if p > 0 else float("inf")
        model = f"power law k^-{p:.2f}"
    elif rate >= 1.0 or not math.isfinite(rate):
        predicted = float("inf")
    else:
        predicted = probe + math.log(tol / e[-1]) / math.log(rate)
    solver = "sinkhorn_newton" if predicted > threshold else "sinkhorn"
    reason = (
        f"Sinkhorn's error decays ({model}; last factor x{rate:.4f} per iteration); about "
        f"{predicted:,.0f} iterations "
        f"predicted to reach {tol:g} ({'>' if predicted > threshold else '<='} {threshold:,.0f})"
        if math.isfinite(predicted)
        else "Sinkhorn's error is not decreasing over the probe"
    )
    return Recommendation(solver, predicted, rate, float(e[-1]), probe, reason, tuple(errors))
