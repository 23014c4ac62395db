"""Validation sweep behind the EELS detectors' default spatial pooling (``DEFAULT_POOL``).

    python benchmarks/eels_pool_sweep.py [OUT.json]

Validation cubes only (seeds 20001 and 20002: neither the benchmark's test seeds 0-9 nor its
validation seeds 10000+), six conditions of ``benchmarks/eels.py``; the three PCA detectors at
their defaults with ``pool = 0`` and their per-pixel scores pooled afterwards by
:func:`workbench.solvers.eels.common.pool_score` with sd 0, 0.7, 1, 1.5 and 2 px (at most 2 px,
fixed in advance, to keep anomalies a few pixels across visible). Prints the mean ROC AUC of each
detector's default score per sd; the default is the sd with the highest mean over detectors and
conditions. Result (2026-12-07, 6 conditions x 2 seeds x 3 detectors): 0.561 / 0.630 / 0.654 /
0.677 / 0.690 for sd 0 / 0.7 / 1 / 1.5 / 2, the largest sd best in every condition. The rows
(benchmarks/results/eels_pool_validation.json) come from the first version of this sweep, which
also kept the detectors' other scores ("<condition>|<detector> <score>|<sd>": AUC per seed).
The default was later raised to 3 px, with the shift score pooled as the likelihood ratio of a
common shift, by the validation sweep of ``benchmarks/eels_shift_pool_sweep.py``.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

import numpy as np

SIG = (0.0, 0.7, 1.0, 1.5, 2.0)
CONDS = [
    "shift 0.5 eV, dose 0.3x",
    "shift 1 eV, dose 0.3x",
    "shift 0.25 eV, dose 1x",
    "shift 2 eV, dose 0.1x",
    "L3/L2 ratio x1.6, dose 1x",
    "shift 0.5 eV, dose 1x, Mn-L ref, drift 0.3 eV",
]


def main(argv: list[str]) -> int:
    import torch

    from benchmarks.eels import BASE, CONDITIONS, _look_for
    from workbench.datasets.eels import synthetic
    from workbench.physics.eels import metrics as EM
    from workbench.solvers.eels import common as C
    from workbench.solvers.eels import pca_bulk, pca_recon, pca_t2

    torch.set_num_threads(1)
    res: dict[str, list[float]] = {}
    for cond in CONDS:
        for seed in (20001, 20002):
            prob = synthetic(dict(BASE, **CONDITIONS[cond], seed=seed), name="val")
            look = _look_for(cond)
            for name, mod in (("pca_recon", pca_recon), ("pca_t2", pca_t2), ("pca_bulk", pca_bulk)):
                kw = dict(pool=0.0) if name == "pca_t2" else dict(pool=0.0, look_for=look)
                r = mod.solve(prob, mod.Params(**kw))
                sc = r.meta.get("score") or "t2"
                s = np.asarray(r.extras[f"score_{sc}"], np.float64)
                for sg in SIG:
                    auc = EM.roc_auc(C.pool_score(s, sg), prob.truth)
                    res.setdefault(f"{cond}|{name} {sc}|{sg:g}", []).append(float(auc))
            print(cond, seed, flush=True)
    by = defaultdict(list)
    for k, v in res.items():
        by[k.rsplit("|", 1)[1]].append(np.mean(v))
    for sg in SIG:
        print(f"pool sd {sg:g} px: mean ROC AUC {np.mean(by[f'{sg:g}']):.3f}")
    if len(argv) > 1:
        with open(argv[1], "w") as fh:
            json.dump(res, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
