"""GP-HM: spectral-mixture GP solver on a Kronecker grid (Fang et al., ICLR 2024)."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.problems import PDEProblem
from workbench.progress import Progress
from workbench.registry import SolverSpec, param
from workbench.result import Result
from workbench.solvers.pde.gp import Config, solve_gp


# FROZEN DEFAULTS (issue 20, frozen 2026-12-07). adam_beta2 = 0.99, exact_rounds = 2 and
# exact_every = -1 (automatic: every 1000 Adam steps on 2-D grids, only at the end in 1-D) were
# chosen by looking at the errors on three problems, which are therefore *validation* problems:
# poisson1d_sin100 (1-D), poisson2d_sin6cos20 at 128² (2-D) and sin(3x) + x² on 32 points (a smooth
# case with non-zero boundary data). They are frozen: no value is retuned on any other problem,
# and the held-out table of `workbench bench pde` (group HO: other frequencies, mixed scales,
# other operators) is scored with them unchanged. lr = 1e-2 and q = 30 are the paper's; F is
# derived from the source term (workbench.physics.pde.frequency), never from an exact solution.
# SECOND ROUND (issue 20, 2026-12-07): the first held-out set exposed a failure on mixed scales
# and was then used for diagnosis (Adam's U stays near 0 for thousands of steps and the kernel,
# fitted to it, loses the low-frequency components). An opt-in fix, warm_start = "on" (1-D: the
# exact U-minimiser before Adam, spectrum_init = solution, exact steps with the precision sweep
# every 1000 Adam steps), was chosen on validation problems only (5000 steps each): the new
# mixed-scale x² − x/2 + 0.02 sin(120x) on [0, 1]: defaults 1.0, periodic exact steps alone
# 2.1e-2, + warm start and spectrum init 2.4e-2, + the precision sweep 6.5e-3 (chosen);
# sin(x) + 0.1 sin(40x) on [0, 2π]: periodic steps alone 0.995, chosen 4.8e-4; Allen–Cahn
# cos(2x) + 0.1 sin(60x) on [0, 3]: 1.8e-3; sin(3x) + x² on 32 points: 9.1e-2 → 1.3e-4. But on
# the first-round validation problem poisson1d_sin100 (8000 steps) it gave 2.9e-3 against the
# defaults' 5.6e-7, so it is NOT the default: the defaults stay as frozen in the first round.
# THIRD ROUND (issue 20, 2026-12-07): the 1-D default is a rule, warm_start = "select": both
# starts run in lockstep and, among their final states and their probes (the exact U at the
# kernel of every 1000th Adam step, and of step 0 for the paper's start), the candidate with the
# smallest a-posteriori error estimate is kept (gp.error_estimate_1d: the residual against the
# source on a 4× finer check grid, carried to an error by the linearised equation with the
# boundary misfit; data a user has, never the exact solution). It has no threshold to tune. The
# probes were added after a 300-step development run on two problems of the second held-out set
# (already not clean) showed the paper's start ahead early and behind at 5000 steps; the rule
# was then fixed and checked on validation problems only (VALIDATION_MIX, VALIDATION_SINGLE in
# benchmarks/pde.py) before the third held-out set was run. Cost: two runs (≈ 2× time).
# FOURTH ROUND (issue 20, 2026-12-07): the third held-out set's chirp missed (4.3e-3; learning
# the kernel made every later candidate worse there, and the finish's two sweeps left τ_b far
# from its optimum at the initial kernel). Two step-0 candidates join the rule's pool: the
# joint minimiser over (U, v, τ_b) with sweeps run to convergence at the paper's initial
# kernel and at half its inverse length-scales (gp.INITIAL_VARIANTS; chosen on the validation
# chirps VALIDATION_CHIRP only, checked on the other validation problems). Nothing else changed.
@dataclass(frozen=True)
class Params:
    kernel: str = param(
        "stm",
        "stm: Student-t mixture (Matérn-5/2 × cos); gm: Gaussian mixture (SE × cos)",
        choices=("stm", "gm"),
    )
    q: int = param(30, "mixture components per dimension", min=1, max=200)
    max_iter: int = param(5000, "Adam steps", min=1, max=10_000_000)
    lr: float = param(1e-2, "Adam learning rate", min=1e-6, max=1.0, log=True)
    adam_beta2: float = param(
        0.99,
        "Adam's second-moment decay β₂ (0.99 forgets the large gradients of the first steps "
        "within a few hundred steps, so the kernel keeps learning in a 10³–10⁴-step CPU run; "
        "0.999, Adam's usual value, freezes it there)",
        min=0.0,
        max=0.99999,
        advanced=True,
    )
    lr_final: float = param(
        0.0,
        "learning rate reached at max_iter by exponential decay (0 = constant, as the paper)",
        min=0.0,
        max=1.0,
        advanced=True,
    )
    decay_start: float = param(
        0.0,
        "fraction of max_iter after which the learning rate starts decaying to lr_final",
        min=0.0,
        max=1.0,
        advanced=True,
    )
    exact_u: bool = param(
        True,
        "finish with the exact minimiser of the same loss in U at the final kernel and "
        "precisions (linear operators: one least-squares solve; nonlinear: Gauss–Newton)",
    )
    exact_every: int = param(
        -1,
        "also replace U by that minimiser every this many Adam steps (0 = only at the end; "
        "-1 = automatic: every 1000 steps)",
        min=-1,
        advanced=True,
    )
    exact_rounds: int = param(
        2,
        "block-coordinate sweeps of the finish: U exact, then (from the second sweep on) the "
        "precisions v = N_c/‖𝒩[U] − f‖², τ_b = N_b/‖U_∂ − g‖² at their closed-form optimum "
        "before U again; 1 = U only (measured after 3000 and 4000 Adam steps: 1-D sin(100x) "
        "3.5e-6 → 4.0e-7 with the second sweep, 2-D poisson2d_sin6cos20 at 128² 0.17 → 1.0e-2)",
        min=1,
        max=10,
        advanced=True,
    )
    warm_start: str = param(
        "select",
        "select (1-D default): run GP-HM twice in lockstep, from U = 0 on the paper's frequency "
        "grid (off) and with the warm start (on), and keep the run with the smaller "
        "a-posteriori error estimate, computed from the source and boundary data on a 4× finer "
        "check grid (twice the cost; on 2-D grids select = off). on: before Adam, replace U = 0 "
        "by the exact minimiser of the loss in U at the initial kernel, re-initialise the "
        "spectrum from it, and take exact steps with the precision sweep every 1000 Adam steps "
        "(1-D; rescues mixed scales, loses accuracy on single-frequency problems). off: the "
        "paper's start",
        choices=("select", "on", "off"),
        advanced=True,
    )
    spectrum_init: str = param(
        "solution",
        "initial spectral mixture: grid = the paper's linspace(0, F, Q) with equal weights; "
        "solution = (with warm_start) one component at each of the strongest spectral lines of "
        "the warm-start U, weighted by its power, the rest on the grid",
        choices=("grid", "solution"),
        advanced=True,
    )
    every_rounds: int = param(
        0,
        "block-coordinate sweeps of each periodic exact step (exact_every), as exact_rounds "
        "(0 = automatic: exact_rounds in 1-D after a warm start, else 1)",
        min=0,
        max=10,
        advanced=True,
    )
    jitter: float = param(
        1e-6, "diagonal jitter added to each K_d", min=0.0, max=1.0, log=True, advanced=True
    )
    llk_weight: float = param(
        0.0,
        "boundary likelihood weight λ_b (0 = the problem's: 200, advection 500)",
        min=0.0,
        advanced=True,
    )
    freq_scale: float = param(
        0.0,
        "upper end F of the initial frequencies (cycles per unit; 0 = the problem's freq_scale when "
        "a user gave one below the grid's Nyquist frequency, else chosen by freq_init)",
        min=0.0,
    )
    freq_init: str = param(
        "source",
        "F when neither freq_scale nor the problem gives a usable one: source = 1.25 × the highest "
        "significant frequency of the source term's spectrum (clipped to [2/L, Nyquist]; the "
        "boundary data's when the source vanishes); nyquist = the grid's Nyquist frequency 1/(2h)",
        choices=("source", "nyquist"),
        advanced=True,
    )
    inv_ls_init: float = param(
        1.0,
        "initial inverse length-scale ρ (Matérn) or s (SE) of every component",
        min=1e-6,
        log=True,
        advanced=True,
    )
    n_col: int = param(0, "collocation points per dimension (0 = the problem's)", min=0, max=4096)
    n_checkpoints: int = param(
        50,
        "test-grid evaluations during the run (best error = oracle over these)",
        min=1,
        max=10_000,
        advanced=True,
    )
    tol: float = param(
        0.0,
        "stop when the relative loss change is below tol (0 = never, as the paper)",
        min=0.0,
        advanced=True,
    )
    seed: int = param(0, "recorded only: the initialisation is deterministic", advanced=True)
    device: str = param("auto", "auto, cpu or cuda", advanced=True)


def default_llk(problem: PDEProblem) -> float:
    return float(
        problem.meta.get("llk_weight", 500.0 if problem.operator == "advection" else 200.0)
    )


def solve(problem: PDEProblem, params: Params, progress: Progress | None = None) -> Result:
    """Minimise the GP-HM negative log joint with Adam in float64; see :mod:`workbench.solvers.pde.gp`.

    Metrics: ``rel_l2_final`` and, separately, ``rel_l2_best`` (oracle: minimum over checkpoints)
    with its step; ``extras`` holds the learned spectrum (``weights_x``, ``freqs_x``, ...).
    """
    cfg = Config(
        kind=params.kernel,
        q=params.q,
        max_iter=params.max_iter,
        lr=params.lr,
        adam_beta2=params.adam_beta2,
        jitter=params.jitter,
        llk_weight=params.llk_weight or default_llk(problem),
        freq_scale=params.freq_scale,
        freq_init=params.freq_init,
        n_col=params.n_col,
        inv_ls_init=params.inv_ls_init,
        lr_final=params.lr_final,
        decay_start=params.decay_start,
        exact_u=params.exact_u,
        exact_every=params.exact_every,
        exact_rounds=params.exact_rounds,
        warm_start=params.warm_start,
        every_rounds=params.every_rounds,
        spectrum_init=params.spectrum_init,
        n_checkpoints=params.n_checkpoints,
        tol=params.tol,
        device=params.device,
        seed=params.seed,
    )
    return solve_gp(problem, cfg, progress)


SPEC = SolverSpec(
    name="gp_hm",
    domain="pde",
    title="GP-HM (spectral-mixture GP, Kronecker grid)",
    Params=Params,
    solve=solve,
    description=(
        "Gaussian-process solver for high-frequency and multi-scale PDEs: the grid values are "
        "unknowns under a GP prior with a per-dimension spectral-mixture kernel (Student-t or "
        "Gaussian mixture, weights in the log domain so spurious frequencies are pruned), the PDE "
        "enters through the conditional-mean derivatives, and Kronecker/Toeplitz algebra keeps "
        "every step at O(N³) per dimension. Reports the final and, separately, the best error."
    ),
    reference="S. Fang, M. Cooley, D. Long, S. Li, R. Kirby, S. Zhe, Solving High Frequency and Multi-Scale PDEs with Gaussian Processes, ICLR 2024 (arXiv 2311.04465).",
    paper=True,
)
