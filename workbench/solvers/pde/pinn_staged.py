"""Shared parameters of the staged PINN solvers ``pinn_uniform``, ``pinn_rar``, ``pinn_rad`` and
``pinn_aas``: one network, optimiser and budget, only the sampler differs (spec pde.md §4.2).

Defaults that differ from ``pinn`` (chosen on two validation problems, a peak
exp(−500|x − (−0.3, 0.25)|²) and a front tanh(30(x + y/2 − 0.3)) on [−1, 1]², never on the
benchmark's peak2d_single, peak2d_double or ring2d_front; one seed, 3 stages × 200 Adam + 50
finish iterations, N = 500, uniform and RAD samplers):

- ``output_norm="sup"``: u's size from max|f| / k̄², not the rms. On a narrow peak the rms
  estimate is the height times √(area fraction), 0.013 for a peak of 1, and every sampler ended
  at rel L2 ≥ 1 (2.3 uniform, 4.5 RAD on the validation peak; 1.0–6.5 on the benchmark peaks).
- ``zero_output_init=True``: with the sup scale a Xavier output layer starts as an O(1) field
  everywhere, rel L2 ~10 against a peak that covers 0.3 % of the box.
- ``finish="lm"``: Levenberg–Marquardt on the last set instead of L-BFGS-B (see :mod:`.pinn`:
  Gauss–Newton does not see the (k/κ_min)⁴ spread between the error's smooth and sharp parts).
- ``input_scale=0`` (auto, as before): with the three changes above it beat inputs on [−1, 1]
  (geometric mean of the four validation errors 0.64 against 0.96).

With all four, the validation errors were 0.14 (RAD) and 0.89 (uniform) on the peak, against
4.5 and 2.3 with the old defaults; 0.85 and 1.5 on the front, against 0.58 and 1.07.

- ``lr_decay=0.01`` (Adam's rate falls exponentially from lr to lr/100 over the Adam phase;
  added 2026-12-07 after the AS run where every sampler ended above rel L2 1 on both peaks).
  Diagnosed on the validation peak exp(−500|x − (−0.3, 0.25)|²) with N = 1000, 5 stages × 300
  Adam + 50 LM, one seed: the loss falls, but at a constant rate Adam first builds a smooth
  error of 20× ‖u‖ (rel L2 22 after ~120 steps) that the residual hardly sees. For a peak of
  width w the error e of a residual r obeys Δe = r, so its smoothest mode (κ_min = π/2 on
  [−1, 1]², e ≈ r/κ_min²) weighs ‖e‖/‖u‖ ≈ 200·‖r‖/‖f‖ here: u covers 0.3 % of the box and
  ‖u‖/‖f‖ ≈ 1e-3. Adam at a constant rate keeps moving that mode; it was still at rel L2 1.1
  (oracle points, half of them around the peak) after 1500 steps, and the LM finish brought
  it to 0.20. With the decay the same run ends at 0.090 (Adam phase 2.7, LM 0.09); 150 LM
  iterations instead of 50 at a constant rate gave 0.11. On uniform points the decay gave rel
  L2 1.41 against 1.96 (still worse than N ≡ 0: 1000 uniform points put about one point on the
  peak, and the network's fit to it leaves a spurious bump). Inputs on [−1, 1] instead of the
  auto scale (8.8 here) were worse: 1.39 (oracle) and 16.8 (uniform). Not fixed: on the
  second validation peak exp(−1000|x − (0.2, −0.4)|²), the benchmark peaks' width, the same
  oracle run ended at 0.78 (Adam phase 7.8, residual on the check grid 0.86 of the source's
  size), so at this budget the Adam phase still leaves more smooth error than 50 LM
  iterations remove; AAS there ended at 0.29 with 0.7 %, 31 %, 0.1 %, 33 %, 22 % of its points
  within 0.1 of the centre at stages 0–4 (the flow reaches the peak within one stage, loses
  it for one stage after the network has fitted it, and comes back).

- Why the AS runs of 2026-12-07 15:44 ended at rel L2 > 1 (RAR 7.5–60, RAD 1.8–32, AAS
  0.66–27), diagnosed on the validation peak exp(−1000|x − (0.2, −0.4)|²), seed 0, N = 1000,
  5 stages × 300 Adam + 50 LM (that run's budget; ``benchmarks/pde_as_validate.py``, rows in
  ``benchmarks/results/pde_as_validation.jsonl``): every sampler's Adam phase builds the same smooth error, rel L2 5.7 after the first
  300 steps (the same for all, the set is uniform then) and 5–15 at the stage ends after (RAR
  15.4 after stage 2); the 50-iteration LM finish then has to remove it all, and does so only
  partly (uniform 1.05, RAD 0.137, AAS 0.293, RAR 0.018). Error maps after the finish: AAS
  99 % of its squared error farther than 0.1 from the centre and 98 % of it below 2 cycles per
  unit (smooth), i.e. the leftover of the Adam phase, not a missed peak; uniform 78 % at the
  peak (1000 uniform points put ~1 on it). A larger Adam error at the finish's start (the
  benchmark seeds) leaves more after 50 iterations. ``stage_lm`` = 25 (LM at the end of
  stages 1–4, before the sampler acts; 150 LM iterations in all) keeps every stage's error
  near or below 1 (the first stage's 5.7 → 1.06) and ended at uniform 0.993, RAD 0.071,
  AAS 0.040, RAR 0.121 (RAR's leftover is again 95 % smooth, from its last Adam stage):
  better for three samplers of four, so the AS benchmark passes it (as_stage_lm) and the
  default stays 0. Not run for time: the same 150 LM iterations as one finish.

- Why AAS loses a peak for a stage (AS4), from the stage point sets of the same validation runs:
  on the single peak (no stage LM) AAS put 66 % of its stage-1 points in the quarter-cell
  holding the peak, then 47 % of its stage-2 points around (−0.3, 0.25), far from it, where
  the Adam phase had built a spurious bump (the final error map's maximum was at (−0.4, 0.24)),
  and went back to the peak at stage 3 (67 %). After the network fits the peak, the largest
  residual is its own artefact, and the flow, maximising E_p[r²], follows it: the adversary
  chases the optimiser's smooth-error side effects, not the solution's features. With stage LM
  the artefact is smaller (the stage-2 share at the peak 8 % instead of 0 %). On the
  validation two-peak problem (drift operator, centres (0.35, −0.6), (−0.6, 0.3), with stage
  LM) AAS had 21 % / 14 % of its stage-1 points at the centres and 0 % / 0 % at stage 2
  (rel L2 6.5–7.5 at the stage ends there: stage LM did not remove that operator's smooth
  error). Keeping half of each set (``keep`` = 0.5) did not help (final shares 2 % / 3 %,
  rel L2 3.01 against 1.27), so the default stays 0. Not tried for time: more flow steps,
  ζ, and a longer finish.

- Averaging the adversary (``pinn_aas`` ``average``, 2026-12-07; rows tagged ``avg-false`` /
  ``avg-true`` / ``f64`` in ``benchmarks/results/pde_as_validation.jsonl``). Alternating best
  responses in a min-max game cycle, which is what the stage shares above show; fictitious play
  (each stage's set drawn from the mean of every stage's flow) is the standard remedy. Rule
  fixed before the runs: adopt it if the geometric mean of the final rel L2 over valA and valC ×
  seeds 0, 1 (the AS budget: 5 × 300 Adam, 25 stage LM, 50 LM finish) falls by ≥ 20 % and
  valC's smaller last-stage share at a centre does not fall. It kept the peaks (valC: that
  share 0.2 % → 4.8 %, mean of the seeds) but the errors rose: geometric mean 0.451 → 0.510
  (valA 0.040 / 0.074 → 0.054 / 0.167; valC 1.27 / 10.9 → 1.93 / 3.90). Not adopted; the
  option stays off. The same runs show where the valC errors come from: the LM steps on 1000
  points (fewer than the network's ~12.7k weights, so each step fits the set) can raise the
  error off the set, e.g. seed 1 from 3.38 before the finish to 10.9 after it (stage LM: 2.8 →
  10.8 at step 1250 of another run), and a float64 network changed nothing (valC 2.64 /
  12.0).

- The fit does not carry off the set (``benchmarks/pde_as_gap.py``, same budget, a fixed
  uniform set): the mean r² on 40 000 fresh uniform points exceeds that on the 1000 training
  points 33× after stage 1 and 1400× after stage 4 on valC seed 1 (2e5–2e8× on valA, whose
  peak the set misses), while the error grows (stage ends 8.8, 13.7, 13.2, 10.7). With
  ~12.7k weights for 1000 points each LM phase interpolates the set. Neither cure tried here
  helped: 2000 points (valC seed 1: AAS 3.63, uniform 11.1, against 10.9 / 3.06 at 1000) or a
  3 × 32 network on 3000 points, more points than weights (AAS valA 0.83 / 0.10, valC 9.6 /
  16.8; uniform valA 0.23 / 0.47, valC 0.78 / 12.5; seeds 0 / 1; rows tagged ``n2000`` and
  ``small``). So at this budget the first Adam stage already leaves an error of 5–14× ‖u‖ on
  the drift problem whatever the points, and the samplers are ranked by how much of it the LM
  phases happen to remove."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.registry import param


@dataclass(frozen=True)
class StagedParams:
    width: int = param(64, "hidden units per layer", min=4, max=1024)
    depth: int = param(4, "hidden layers", min=1, max=12)
    activation: str = param("tanh", "activation", choices=("tanh", "sin"))
    n_points: int = param(1000, "interior collocation points N", min=4, max=1_000_000)
    stage_steps: int = param(
        500, "Adam steps per stage n_θ (the sampler acts between stages)", min=1, max=1_000_000
    )
    max_iter: int = param(
        5500,
        "optimisation steps in all: Adam, then the finish (LM or L-BFGS) after adam_iter",
        min=1,
        max=10_000_000,
    )
    adam_iter: int = param(
        5000,
        "Adam steps (stages = adam_iter / stage_steps); the finish on the last set follows",
        min=0,
        max=10_000_000,
    )
    stage_lm: int = param(
        0,
        "Levenberg–Marquardt iterations at the end of every stage but the last, before the "
        "sampler acts (0 = none; needs finish = lm)",
        min=0,
        max=100_000,
    )
    lr: float = param(1e-3, "Adam learning rate", min=1e-6, max=1.0, log=True)
    lr_decay: float = param(
        0.01,
        "the Adam rate falls exponentially to lr·lr_decay by the end of the Adam phase (1 = constant)",
        min=1e-6,
        max=1.0,
        log=True,
    )
    bc: str = param(
        "exact",
        "boundary conditions: exact (lift + distance function), adaptive (annealed weight) or penalty (fixed γ)",
        choices=("exact", "adaptive", "penalty"),
    )
    gamma: float = param(
        100.0, "boundary weight γ (penalty; start value for adaptive)", min=0.0, log=True
    )
    finish: str = param(
        "lm",
        "optimiser on the last set after the Adam stages: lm (Levenberg–Marquardt; min(points, "
        "weights) <= 6000), lbfgs (scipy L-BFGS-B) or auto (lm up to 1024 points)",
        choices=("auto", "lbfgs", "lm"),
    )
    output_norm: str = param(
        "sup",
        "size of u that scales the network's output: sup (max|f| / k̄^q; right for localised "
        "solutions) or rms (‖f‖ / k̄^q, the `pinn` default)",
        choices=("sup", "rms"),
        advanced=True,
    )
    zero_output_init: bool = param(
        True,
        "start the network's output layer at zero (u = the boundary lift at step 0) instead of "
        "Xavier: with the sup output scale a random start is an O(peak) field everywhere (rel "
        "L2 ~10 on a narrow peak before any step)",
        advanced=True,
    )
    input_scale: float = param(
        0.0,
        "inputs mapped to [−s, s]: 1 = the box to [−1, 1]; 0 = auto, s = max(1, k·L/2π) from the source's spectrum",
        min=0.0,
        max=1000.0,
        advanced=True,
    )
    lbfgs_dtype: str = param(
        "float64",
        "precision of the L-BFGS phase (float32's 7 digits stop its line search early)",
        choices=("float32", "float64"),
        advanced=True,
    )
    dtype: str = param(
        "float32", "network precision", choices=("float32", "float64"), advanced=True
    )
    n_checkpoints: int = param(
        50, "test-grid evaluations during training", min=1, max=10_000, advanced=True
    )
    seed: int = param(0, "initialisation and sampling seed")
    device: str = param("auto", "auto, cpu or cuda", advanced=True)


def default_candidates(dim: int, n: int) -> int:
    """M uniform candidates for RAR/RAD: 10k in 1-D, 100k in 2-D (spec §4.2) unless given."""
    return n if n else (10_000 if dim == 1 else 100_000)
