"""How far a staged PINN's fit on its own collocation set carries to the rest of the box (issue 15
diagnosis, validation problems only; see ``pinn_staged``).

A fixed uniform set of N points trains ``pinn_uniform`` at the AS budget (5 × 300 Adam, 25 stage
LM, 50 LM finish); before each stage's (no-op) update the mean r² on the training set is
compared with the mean r² on 40 000 fresh uniform points::

    OMP_NUM_THREADS=1 python benchmarks/pde_as_gap.py valC 1 [N]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pde_as_validate as V  # noqa: E402
import torch  # noqa: E402

from workbench.solvers.pde import pinn, pinn_uniform  # noqa: E402
from workbench.solvers.pde import pinn_samplers as PS  # noqa: E402


class Watch(PS.Sampler):
    """The fixed uniform set, reporting the training-set and fresh-point residuals."""

    def update(self, ctx: PS.Context, stage: int, X):
        tr = float(ctx.residual2(X).mean())
        fresh = float(ctx.residual2(ctx.uniform(40_000)).mean())
        print(
            f"stage {stage}: mean r² training set {tr:.3e}, fresh uniform {fresh:.3e}, ratio {fresh / tr:.3g}"
        )
        return X


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    pname, seed = argv[0], int(argv[1])
    n = int(argv[2]) if len(argv) > 2 else 1000
    kw = dict(
        n_points=n,
        stage_steps=300,
        adam_iter=1500,
        max_iter=1550,
        n_checkpoints=31,
        stage_lm=25,
        seed=seed,
    )
    r = pinn.train(V.problem(pname), pinn_uniform.Params(**kw), None, Watch(n))
    stages = ", ".join(f"{float(v):.3g}" for v in r.extras["stage_rel_l2"])
    print(f"final rel L2 {r.metrics['rel_l2_final']:.4g}; at the stage ends {stages}")


if __name__ == "__main__":
    main(sys.argv[1:])
