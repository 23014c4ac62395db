"""pca_recon's trimmed template with one refit round against none (its default), on validation
cubes only (issue 14: the 1 eV target).

    python benchmarks/eels_trimmed_refit_val.py 20001,20002,...,20012

One JSON line per cube and setting: ROC AUC of the default score map on the 0.5 and 1 eV / 0.3x
cubes, the fraction of pixels flagged at the default threshold on the 0.3 eV drift null. Rule,
fixed before the run: refit = 1 becomes the trimmed template's default only if the mean AUC at
1 eV rises by >= 0.005, the mean AUC at 0.5 eV falls by < 0.002 and no null cube flags more than
2 %. Log: benchmarks/results/eels_template_kept_val.log (last section).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str]) -> None:
    import eels_val as V
    import numpy as np
    import torch

    from workbench.physics.eels import metrics as EM
    from workbench.solvers.eels import pca_recon

    torch.set_num_threads(1)
    seeds = [int(s) for s in argv[0].split(",")]
    if min(seeds) < 10_000:
        raise SystemExit("validation seeds must be >= 10000")
    for cond, seed, prob in V.cubes([*V.SHIFT, V.NULL], seeds):
        for rounds in (0, 1):
            t = time.process_time()
            r = pca_recon.solve(prob, pca_recon.Params(refit=rounds))
            row = {"cond": cond, "seed": seed, "refit": rounds}
            if prob.truth is not None and prob.truth.any():
                row["auc"] = float(EM.roc_auc(np.asarray(r.output), prob.truth))
            else:
                row["flagged"] = float(np.asarray(r.extras["mask"]).mean())
            print(json.dumps({**row, "cpu": time.process_time() - t}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
