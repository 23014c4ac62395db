"""Why cvae3d's ratio score ranked a validation cube below chance: the white-line ratio of its
reconstruction inside and outside the anomalous discs, against pca_recon's and the truth's.

    python benchmarks/eels_ratio_cvae_diag.py [--seeds 20002]

Validation cube only (the benchmark's "L3/L2 ratio x1.6, dose 1x" condition at seed 20002; the
test seeds are 0-9). Per template: the mean log L3/L2 white-line area ratio inside / outside the
truth, the pooled maximum-likelihood ratio change (log rho) and the pooled ratio statistic inside
/ outside, and its ROC AUC. Measured 2026-12-07 by the same computation run ad hoc before this script was
written (the script itself not rerun, CPU time): cvae3d's template read 1.43 / 1.44 (it does NOT follow
the discs' ratio) against the truth's 1.34 / 1.29, so normal pixels' pooled statistic averaged
10.1 (about 1 expected) against 5.7 inside: AUC 0.43 (pca_recon 0.76, truth 0.98).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> int:
    import eels as B
    import eels_val as V
    import torch

    from workbench.physics.eels import spectra as SP
    from workbench.physics.eels.synth import generate
    from workbench.solvers.eels import common as C
    from workbench.solvers.eels import cvae3d, pca_recon

    torch.set_num_threads(1)
    ap = V.parser(__doc__)
    ap.set_defaults(seeds="20002")
    a = ap.parse_args(argv)
    for cond, seed, prob in V.cubes((V.RATIO,), V.seeds(a)):
        ny, nx = prob.data.shape[:2]
        t = prob.truth.ravel()
        energy = np.asarray(prob.energy, np.float64)
        kw = dict(B.BASE, **B.CONDITIONS[cond], seed=seed)
        l0 = generate(**dict(kw, keep_clean=True, ratio_factor=1.0))["clean"]
        l0 = l0.astype(np.float64).reshape(ny * nx, -1)
        for det in ("cvae3d", "pca_recon", "true"):
            if det == "true":
                sl = SP.window(energy, 680.0, 740.0)
                e, yhat = energy[sl], l0[:, sl]
            else:
                if det == "cvae3d":
                    p = cvae3d.Params(look_for="ratio", device="cpu", save=False)
                    r = cvae3d.solve(prob, p)
                else:
                    r = pca_recon.solve(prob, pca_recon.Params(look_for="ratio"))
                e = np.asarray(r.extras["recon_energy"], np.float64)
                yhat = np.asarray(r.extras["reconstruction"], np.float64).reshape(ny * nx, -1)
            counts = np.asarray(prob.data, np.float64)[..., SP.window(energy, e[0], e[-1])]
            counts = counts.reshape(ny * nx, -1)
            lines = C.white_line_windows(e, yhat.mean(0), 690.0, 730.0)
            a3 = C._white_line_excess(yhat, e, lines.l3).sum(-1)
            a2 = C._white_line_excess(yhat, e, lines.l2).sum(-1)
            logr = np.log(a3 / a2)
            rf = C.ratio_fit(counts, yhat, e, lines)
            T, best = C.pool_shift_glr(rf.ll.reshape(ny, nx, -1), rf.deltas, C.DEFAULT_POOL)
            T, best = T.ravel(), best.ravel()
            print(
                f"seed {seed} {det:9s} template log L3/L2 in/out {logr[t].mean():.3f} "
                f"{logr[~t].mean():.3f}; pooled log rho in/out {best[t].mean():.3f} "
                f"{best[~t].mean():.3f}; pooled statistic in/out {T[t].mean():.2f} "
                f"{T[~t].mean():.2f}; ROC AUC {V.judge(T.reshape(ny, nx), prob, 'ratio')[1]:.3f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
