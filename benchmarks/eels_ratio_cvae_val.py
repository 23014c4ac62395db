"""Validation check of cvae3d's score for the ratio anomaly ('look for' = ratio).

    python benchmarks/eels_ratio_cvae_val.py [--seeds 20001,20002,20003,20004]

Validation cubes only (seeds 20001-20004 of the benchmark's "L3/L2 ratio x1.6, dose 1x" and
"null (no anomaly), drift 0.3 eV" conditions; the test seeds are 0-9). One default fine-tuning
run per cube gives every score; printed: ROC AUC of the pooled white-line ratio likelihood ratio
(common ratio change, the default threshold's map) and of the pooled Poisson deviance (the
previous default), and the null cubes' flagged fractions. Rule, fixed before the run: the ratio
score is cvae3d's default for this anomaly only if its mean AUC beats the deviance's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> int:
    import eels_val as V
    import torch

    from workbench.physics.eels import metrics as EM
    from workbench.solvers.eels import common as C
    from workbench.solvers.eels import cvae3d

    torch.set_num_threads(1)
    a = V.parser(__doc__).parse_args(argv)
    out: dict[str, list[float]] = {}
    for _, seed, prob in V.cubes((V.RATIO, V.NULL), V.seeds(a)):
        r = cvae3d.solve(prob, cvae3d.Params(look_for="ratio", device="cpu", save=False))
        rc = np.asarray(r.extras["ratio_common"], np.float64)
        nll = C.pool_score(np.asarray(r.extras["score_nll"], np.float64), C.DEFAULT_POOL)
        if prob.truth is not None and prob.truth.any():
            va, vn = EM.roc_auc(rc, prob.truth), EM.roc_auc(nll, prob.truth)
            out.setdefault("ratio", []).append(va)
            out.setdefault("nll", []).append(vn)
            print(f"seed {seed}: AUC ratio {va:.3f}, nll {vn:.3f}", flush=True)
        else:
            f = float(r.metrics["flagged_fraction"])
            out.setdefault("null", []).append(f)
            print(f"null seed {seed}: ratio score flags {f:.4f}", flush=True)
    print({k: (round(float(np.mean(v)), 3), [round(x, 3) for x in v]) for k, v in out.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
