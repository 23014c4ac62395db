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
        Seed, versions, device, wall time, and anything the solver wants recorded;
        ``meta["verdict"]`` is the run verdict (:func:`judge`), added by ``jobs.execute``.
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


# ---- the run verdict ---------------------------------------------------------------------------

#: Verdict codes and the words the pages and the CLI show for them.
VERDICTS = {
    "converged": "converged",
    "at_limit": "stopped at the limit",
    "by_design": "stopped by design",
    "suspect": "suspect",
    "cancelled": "cancelled",
    "failed": "failed",
}

#: Metrics that are errors relative to the truth's size (‖x̂ − x‖ / ‖x‖ or its square): a value
#: of 1 is what the zero output scores, so a run at or above it learnt nothing about the answer.
RELATIVE_ERRORS = ("rel_l2", "rel_l2_final", "nmse", "relative_error")

#: History columns that an optimiser drives down, in order of preference for the flatness test.
LOSS_COLUMNS = ("loss", "objective", "residual", "misfit", "e")

#: A run of at least this many recorded iterations whose loss fell by less than
#: :data:`FLAT_DROP` (last / first above ``1 - FLAT_DROP``) did not optimise: its output is
#: whatever the initial guess became after nothing happened.
FLAT_MIN_STEPS = 10
FLAT_DROP = 0.1


@dataclass(frozen=True)
class Verdict:
    """How a run ended, judged from its Result rather than from the solver's own status alone.

    ``code`` is a key of :data:`VERDICTS`; ``reason`` is one sentence with the numbers behind it.
    """

    code: str
    reason: str = ""

    @property
    def label(self) -> str:
        return VERDICTS.get(self.code, self.code)

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "label": self.label, "reason": self.reason}


def _finite(values: Any) -> np.ndarray:
    a = np.asarray(values, dtype=float).ravel()
    return a[np.isfinite(a)]


def loss_trend(history: dict[str, Any]) -> tuple[str, float, float, int] | None:
    """``(column, first, last, n)`` of the history's loss-like column, or None.

    The column is the first of :data:`LOSS_COLUMNS` present with at least two finite values,
    all positive (a ratio of signed objectives, such as a log-likelihood, means nothing).
    """
    for name in LOSS_COLUMNS:
        if name not in history:
            continue
        v = _finite(history[name])
        if len(v) >= 2 and np.all(v > 0):
            return name, float(v[0]), float(v[-1]), len(v)
    return None


def judge(
    result: Result,
    *,
    planned_stop: bool = False,
    key_metric: str | None = None,
    higher_is_better: bool = True,
    baseline: tuple[str, float] | None = None,
) -> Verdict:
    """The verdict on one run: converged, stopped at the limit, stopped by design, or suspect.

    The rules, in order (the first that applies decides):

    1. ``failed`` and ``cancelled`` runs keep their status.
    2. **Suspect** when any of these holds:

       - the solver flagged itself (``metrics["suspect"]`` true, reasons in
         ``extras["suspect_reasons"]``), e.g. a PINN whose residual on a fixed check grid did
         not fall;
       - the output holds NaN or ±inf;
       - a relative error against the truth (:data:`RELATIVE_ERRORS`) is ≥ 1: the run is no
         closer to the answer than the zero output, ``‖x̂ − x‖ ≥ ‖x‖``;
       - the loss is flat: at least :data:`FLAT_MIN_STEPS` recorded values and
         ``last > (1 − FLAT_DROP) · first`` while the run did not converge (not applied to a
         run that started from a trained state, ``meta["init"]`` naming a checkpoint:
         fine-tuning near an optimum moves the loss little);
       - ``key_metric`` is worse than a classical ``baseline = (solver, value)`` on the same
         problem (e.g. a reconstruction whose PSNR is below zero-filled's).

    3. ``max_iter``: **stopped by design** when ``planned_stop`` (the iteration count is part of
       the method: early stopping that regularises, a fixed number of cascades or sampling
       steps), otherwise **stopped at the limit**, with the loss trend in the reason.
    4. ``converged``: **converged**.

    Parameters
    ----------
    result : Result
        The run, with its metrics (the domain's ground-truth ones included) and history.
    planned_stop : bool
        The solver's iteration count is by design (``SolverSpec.planned_stop``).
    key_metric, higher_is_better : str, bool
        The domain's main quality metric and its direction (``DomainSpec.key_metric``).
    baseline : (str, float), optional
        The classical baseline's name and its ``key_metric`` on the same problem.
    """
    status = result.status
    if status in ("failed", "cancelled"):
        return Verdict(status, result.message)
    reasons: list[str] = []
    if result.metrics.get("suspect"):
        own = result.extras.get("suspect_reasons") if isinstance(result.extras, dict) else None
        reasons.append(str(own or "the solver flagged its own result"))
    out = np.asarray(result.output)
    if out.size and np.issubdtype(out.dtype, np.number) and not np.all(np.isfinite(out)):
        reasons.append("the output holds NaN or infinite values")
    for name in RELATIVE_ERRORS:
        v = result.metrics.get(name)
        if isinstance(v, (int, float)) and np.isfinite(v) and v >= 1.0:
            reasons.append(f"{name} = {v:.3g} ≥ 1: no closer to the truth than the zero output")
            break
    trend = loss_trend(result.history)
    warm = str((result.meta or {}).get("init", "scratch") or "scratch") != "scratch"
    if trend is not None and status != "converged" and not warm:
        col, first, last, n = trend
        if n >= FLAT_MIN_STEPS and last > (1.0 - FLAT_DROP) * first:
            reasons.append(f"the {col} is flat ({first:.3g} → {last:.3g} over {n} recorded steps)")
    if key_metric and baseline is not None:
        name, ref = baseline
        v = result.metrics.get(key_metric)
        if isinstance(v, (int, float)) and np.isfinite(v) and np.isfinite(ref):
            worse = v < ref if higher_is_better else v > ref
            if worse:
                reasons.append(
                    f"{key_metric} {v:.4g} is worse than the baseline {name}'s {ref:.4g}"
                )
    if reasons:
        return Verdict("suspect", "; ".join(reasons))
    if status == "max_iter":
        tail = ""
        if trend is not None:
            col, first, last, _ = trend
            tail = f"; {col} {first:.3g} → {last:.3g}"
        if planned_stop:
            return Verdict(
                "by_design",
                f"ran its planned {result.iterations} iterations (the count is part of the method)"
                + tail,
            )
        return Verdict(
            "at_limit",
            f"reached its iteration limit ({result.iterations}) before its tolerance" + tail,
        )
    return Verdict("converged", result.message)
